"""The transformers backend: a local Hugging Face causal LM, generating in a worker thread.

``--model`` is a Hugging Face id or a local folder (``--trust-remote-code``, ``--dtype`` and
``--max-model-len`` apply). The model runs on CUDA when torch sees a GPU, else on the CPU.

Jobs run one at a time, in arrival order, on one worker thread: ``model.generate`` for a
single sequence, no batching. Batching jobs that arrive at different times with different
lengths and sampling settings needs continuous batching, which is what the vllm backend is
for; this backend aims at small models, CPUs and models vLLM cannot run. One worker thread
also makes per-job seeds exact (torch's RNG is global). The event loop never waits on torch:
tokens come back through ``loop.call_soon_threadsafe``.

Sampling: ``temperature`` > 0 samples (with ``top_p`` if given); ``temperature`` 0 is greedy;
unset follows the model's own ``generation_config.json`` (greedy when it sets nothing), and
``top_p`` alone turns sampling on. ``stop`` strings end the answer before the stop string;
``ignore_eos`` forbids the end-of-sequence token until ``max_tokens``. A cancelled job stops
the generation at the next token. torch and transformers are imported only when this backend
starts (``pip install 'kuwa[transformers]'``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from kuwa.executors.base import Backend, BackendError, Completion, Emit
from kuwa.executors.prompt import PromptBuilder
from kuwa.executors.stops import held_back, stop_index
from kuwa.schemas import GenerationParams, Job, Message, Usage

log = logging.getLogger(__name__)

_CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


class TransformersBackend(Backend):
    name: ClassVar[str] = "transformers"

    torch: Any = None
    hf_model: Any = None
    tokenizer: Any = None
    device: str = "cpu"

    async def start(self) -> None:
        if not self.settings.model:
            raise BackendError(
                "the transformers backend needs --model (a Hugging Face id or a path)"
            )
        torch, transformers, self.device = load_engine()
        self.torch = torch
        where = torch.cuda.get_device_name(0) if self.device == "cuda" else "no GPU found"
        log.info("transformers: loading %s on %s (%s)", self.settings.model, self.device, where)
        dtype = torch_dtype(torch, self.settings.dtype)
        self.tokenizer, self.hf_model = await asyncio.to_thread(self._load, transformers, dtype)
        self.prompts = PromptBuilder(self.tokenizer, self._max_len())
        self.eos_ids = _eos_ids(self.hf_model.generation_config, self.tokenizer)
        self.model = self.settings.model
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kuwa-generate")
        self._in_flight = 0
        log.info(
            "transformers: %s ready on %s, %s, context %d tokens",
            self.model,
            self.device,
            self.hf_model.dtype,
            self.prompts.max_len,
        )

    def _load(self, transformers: Any, dtype: Any) -> tuple[Any, Any]:
        name, trust = self.settings.model, self.settings.trust_remote_code
        tokenizer = transformers.AutoTokenizer.from_pretrained(name, trust_remote_code=trust)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            name, dtype=dtype, trust_remote_code=trust
        )
        model.to(self.device).eval()
        config = model.generation_config
        if config.pad_token_id is None:  # else generate() logs a warning on every call
            config.pad_token_id = tokenizer.pad_token_id
            if config.pad_token_id is None and isinstance(tokenizer.eos_token_id, int):
                config.pad_token_id = tokenizer.eos_token_id
        return tokenizer, model

    def _max_len(self) -> int:
        if self.settings.max_model_len:
            return self.settings.max_model_len
        config = self.hf_model.config
        for field in _CONTEXT_FIELDS:
            value = getattr(config, field, None)
            if isinstance(value, int) and value > 0:
                return value
        raise BackendError(
            f"{self.settings.model} does not say how long its context is; give --max-model-len"
        )

    async def stop(self) -> None:
        if self.hf_model is None:
            return
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)
        self.hf_model = self.tokenizer = None
        if self.device == "cuda":
            self.torch.cuda.empty_cache()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return self.prompts.count(messages)

    def stats(self) -> dict[str, float | int]:
        if self.hf_model is None:
            return {}
        return {"running": min(self._in_flight, 1), "waiting": max(self._in_flight - 1, 0)}

    async def generate(self, job: Job, emit: Emit) -> Completion:
        ids = self.prompts.encode(job.messages, job.chat_template)
        kwargs = generation_kwargs(job.params, self.prompts.room_for(len(ids)))
        loop = asyncio.get_running_loop()

        def emit_soon(text: str) -> None:
            loop.call_soon_threadsafe(emit, text)

        stream = _Stream(self.tokenizer, job.params.stop, emit_soon)
        self._in_flight += 1
        try:
            work = self._pool.submit(self._run, ids, kwargs, job.params.seed, stream)
            done = asyncio.wrap_future(work)
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                stream.cancel.set()  # the stopping criterion ends generate() at the next token
                if not work.cancel():  # already running: wait for the thread to let go
                    await asyncio.wait([done])
                raise
        finally:
            self._in_flight -= 1
        count = len(stream.tokens)
        ended_by_eos = bool(stream.tokens) and stream.tokens[-1] in self.eos_ids
        hit_limit = count >= kwargs["max_new_tokens"] and not stream.stopped
        finish = "length" if hit_limit and (job.params.ignore_eos or not ended_by_eos) else "stop"
        return Completion(finish, Usage(len(ids), count))

    def _run(self, ids: list[int], kwargs: dict[str, Any], seed: int | None, s: _Stream) -> None:
        """One generation, in the worker thread (the only one that touches the model)."""
        if s.cancel.is_set():
            return
        torch = self.torch
        with torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            else:
                torch.seed()  # a seeded job before must not make this one predictable
            input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
            self.hf_model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                streamer=s,
                stopping_criteria=[s],
                **kwargs,
            )


def load_engine() -> tuple[Any, Any, str]:
    """torch, transformers and the device to run on ("cuda" or "cpu"), imported when a
    backend starts (they come with the transformers extra), or a clear BackendError."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise BackendError(
            f"transformers is not installed ({exc}); "
            "install it with: pip install 'kuwa[transformers]'"
        ) from None
    return torch, transformers, "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(torch: Any, name: str | None) -> Any:
    """``--dtype`` as a torch dtype ("auto" or unset: what the model's config says)."""
    if name is None or name == "auto":
        return "auto"
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise BackendError(f"unknown dtype {name!r}; use auto, bfloat16, float16 or float32")
    return value


def generation_kwargs(p: GenerationParams, room: int) -> dict[str, Any]:
    """``model.generate`` keyword arguments. ``max_new_tokens`` is always set."""
    kwargs: dict[str, Any] = {"max_new_tokens": min(p.max_tokens or room, room)}
    if p.temperature is not None and p.temperature <= 0:
        kwargs["do_sample"] = False
    elif p.temperature is not None or p.top_p is not None or p.top_k is not None:
        kwargs["do_sample"] = True
        if p.temperature is not None:
            kwargs["temperature"] = p.temperature
        if p.top_p is not None:
            kwargs["top_p"] = p.top_p
        if p.top_k is not None:
            kwargs["top_k"] = p.top_k
    if p.repetition_penalty is not None:
        kwargs["repetition_penalty"] = p.repetition_penalty
    if p.ignore_eos:
        kwargs["min_new_tokens"] = kwargs["max_new_tokens"]
    return kwargs


def _eos_ids(generation_config: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)


class _Stream:
    """One generation's tokens and text, filled in the worker thread.

    It is the streamer ``generate`` calls (``put``, ``end``) and a stopping criterion
    (``__call__``: true once a stop string appeared or the job was cancelled). Text is
    decoded incrementally as vLLM does: new tokens are decoded together with a few before
    them, so words and multi-byte characters that span tokens come out whole.
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], emit: Callable[[str], None]):
        self.tokenizer = tokenizer
        self.stops = stops
        self.emit = emit
        self.cancel = threading.Event()
        self.stopped = False  # a stop string was found
        self.tokens: list[int] = []
        self._prompt_seen = False
        self._prefix = 0  # tokens[_prefix:_read] were decoded already; they give context
        self._read = 0
        self._text = ""  # everything decoded so far
        self._sent = 0  # how much of it was emitted (text that may begin a stop string waits)

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() streams the prompt first
            self._prompt_seen = True
            return
        self.tokens.extend(int(t) for t in value.reshape(-1).tolist())
        self._add(self._decode(final=False))

    def end(self) -> None:
        self._add(self._decode(final=True))
        if not self.stopped and not self.cancel.is_set() and self._sent < len(self._text):
            self.emit(self._text[self._sent :])
            self._sent = len(self._text)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        done = self.stopped or self.cancel.is_set()
        return input_ids.new_full((input_ids.shape[0],), done, dtype=bool)

    def _decode(self, final: bool) -> str:
        decode = self.tokenizer.decode
        before: str = decode(self.tokens[self._prefix : self._read], skip_special_tokens=True)
        text: str = decode(self.tokens[self._prefix :], skip_special_tokens=True)
        if len(text) <= len(before) or (text.endswith("\ufffd") and not final):
            return ""  # nothing yet, or half a character: wait for the next token
        self._prefix, self._read = self._read, len(self.tokens)
        return text[len(before) :]

    def _add(self, new: str) -> None:
        if not new or self.stopped or self.cancel.is_set():
            return
        self._text += new
        text, stops = self._text, self.stops
        cut = stop_index(text, stops, start=max(0, self._sent - 1))
        if cut is not None:
            self.stopped = True
            if cut > self._sent:
                self.emit(text[self._sent : cut])
            self._sent = len(text)
            return
        safe = len(text) - held_back(text, stops)
        if safe > self._sent:
            self.emit(text[self._sent : safe])
            self._sent = safe
