"""The embeddings backend: a local Hugging Face encoder that turns texts into vectors.

``--model`` is a folder (a sentence-transformers model as saved, or any model
``transformers.AutoModel`` loads) or a Hugging Face id already in the local cache; the
executor serves its access code to ``POST /v1/embeddings`` and to document retrieval
(``KUWA_EMBEDDING_MODEL``). A chat sent to it is refused (400, ``wrong_model_type``).

A vector is the model's last hidden state pooled over the text's tokens and scaled to length
1. The pooling is the one the model was trained with when its folder says so
(sentence-transformers' ``modules.json`` and its Pooling module's ``config.json``: ``cls``,
``mean``, ``max`` or ``lasttoken``), else ``mean``; a text longer than the model's context
(``--max-model-len``, the folder's ``sentence_bert_config.json``, or the model's own) is cut
to fit. sentence-transformers itself is not needed, and nothing is downloaded:
``HF_HUB_OFFLINE`` is set before transformers loads.

Jobs run one at a time on one worker thread, each in batches of :data:`BATCH` texts; the
event loop never waits on torch. torch and transformers are imported only when this backend
starts (``pip install 'kuwa[transformers]'``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from kuwa.executors.base import (
    Backend,
    BackendError,
    Completion,
    Embeddings,
    Emit,
)
from kuwa.executors.transformers_backend import load_engine, torch_dtype
from kuwa.schemas import Job, JobKind

log = logging.getLogger(__name__)

BATCH = 32  # texts through the model at once
# sentence-transformers' Pooling config.json: the flag of each pooling this backend knows
_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "lasttoken",
}
_CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length")


class EmbeddingsBackend(Backend):
    name: ClassVar[str] = "embeddings"

    torch: Any = None
    hf_model: Any = None
    tokenizer: Any = None
    device: str = "cpu"
    pooling: str = "mean"
    max_len: int = 512

    async def start(self) -> None:
        if not self.settings.model:
            raise BackendError(
                "the embeddings backend needs --model (a folder, or a Hugging Face id "
                "already in the local cache)"
            )
        os.environ["HF_HUB_OFFLINE"] = "1"  # never download
        torch, transformers, self.device = load_engine()
        self.torch = torch
        folder = Path(self.settings.model)
        self.pooling = pooling_of(folder)
        dtype = torch_dtype(torch, self.settings.dtype)
        log.info("embeddings: loading %s on %s", self.settings.model, self.device)
        self.tokenizer, self.hf_model = await asyncio.to_thread(self._load, transformers, dtype)
        self.max_len = self._max_len(folder)
        self.model = self.settings.model
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kuwa-embed")
        self._in_flight = 0
        log.info(
            "embeddings: %s ready on %s, %d dimensions, %s pooling, up to %d tokens a text",
            self.model,
            self.device,
            self.hf_model.config.hidden_size,
            self.pooling,
            self.max_len,
        )

    def _load(self, transformers: Any, dtype: Any) -> tuple[Any, Any]:
        name, trust = self.settings.model, self.settings.trust_remote_code
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(name, trust_remote_code=trust)
            model = transformers.AutoModel.from_pretrained(
                name, dtype=dtype, trust_remote_code=trust
            )
        except OSError as exc:  # not a folder and not in the cache: say so, never download
            raise BackendError(f"cannot load {name}: {exc}") from None
        tokenizer.padding_side = "right"  # lasttoken pooling counts on it
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model.to(self.device).eval()
        return tokenizer, model

    def _max_len(self, folder: Path) -> int:
        if self.settings.max_model_len:
            return self.settings.max_model_len
        limits: list[int] = []
        st = _read_json(folder / "sentence_bert_config.json")
        if isinstance(st.get("max_seq_length"), int):
            limits.append(st["max_seq_length"])
        config = self.hf_model.config
        for field in _CONTEXT_FIELDS:
            value = getattr(config, field, None)
            if isinstance(value, int) and value > 0:
                limits.append(value)
                break
        own = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(own, int) and 0 < own < 1_000_000:  # unset is a huge number
            limits.append(own)
        return min(limits) if limits else 512

    async def stop(self) -> None:
        if self.hf_model is None:
            return
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)
        self.hf_model = self.tokenizer = None
        if self.device == "cuda":
            self.torch.cuda.empty_cache()

    def stats(self) -> dict[str, float | int]:
        if self.hf_model is None:
            return {}
        return {"running": min(self._in_flight, 1), "waiting": max(self._in_flight - 1, 0)}

    def job_kinds(self) -> tuple[str, ...]:
        return (JobKind.EMBED.value,)

    async def generate(self, job: Job, emit: Emit) -> Completion:
        self.refuse_chat()

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        cancel = threading.Event()
        self._in_flight += 1
        try:
            work = self._pool.submit(self._encode, list(texts), cancel)
            done = asyncio.wrap_future(work)
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:
                cancel.set()  # stops before the next batch
                if not work.cancel():
                    await asyncio.wait([done])
                raise
        finally:
            self._in_flight -= 1

    def _encode(self, texts: list[str], cancel: threading.Event) -> Embeddings:
        """The texts' unit vectors, in the worker thread (the only one that touches the
        model)."""
        torch = self.torch
        rows: list[bytes] = []
        tokens = 0
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                if cancel.is_set():
                    break
                batch = self.tokenizer(
                    texts[start : start + BATCH],
                    padding=True,
                    truncation=True,
                    max_length=self.max_len,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.hf_model(**batch).last_hidden_state
                mask = batch["attention_mask"]
                vectors = pool(torch, self.pooling, hidden, mask)
                vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
                rows.append(vectors.cpu().numpy().astype("<f4").tobytes())
                tokens += int(mask.sum())
        return Embeddings(b"".join(rows), tokens)


def pool(torch: Any, how: str, hidden: Any, mask: Any) -> Any:
    """One vector per text from the last hidden state (batch, tokens, width) and the
    attention mask (padding on the right)."""
    if how == "cls":
        return hidden[:, 0]
    if how == "lasttoken":
        last = mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if how == "max":
        return hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def pooling_of(folder: Path) -> str:
    """The pooling a sentence-transformers folder names (``modules.json``, then its Pooling
    module's ``config.json``); ``mean`` when there is none."""
    modules = _read_json(folder / "modules.json", [])
    for module in modules if isinstance(modules, list) else []:
        if isinstance(module, dict) and str(module.get("type", "")).endswith("Pooling"):
            config = _read_json(folder / str(module.get("path", "")) / "config.json")
            for key, name in _POOLING_KEYS.items():
                if config.get(key) is True:
                    return name
    return "mean"


def _read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {} if default is None else default
