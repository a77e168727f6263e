"""Ranking by meaning: passages and prompts as vectors from an embedding model, when one is
configured. Nothing is downloaded: the model lives where its server is.

- ``KUWA_EMBEDDING_MODEL`` alone names an embedding model Kuwa serves itself (its access
  code: an executor started with ``--backend embeddings``); the texts travel to it as
  embedding jobs through the broker, as ``POST /v1/embeddings``'s do (:class:`KuwaEmbedder`).
- ``KUWA_EMBEDDING_URL`` names any OpenAI-compatible ``/v1/embeddings`` instead (vLLM serving
  an embedding model, Text Embeddings Inference, Ollama, OpenAI), ``KUWA_EMBEDDING_MODEL``
  then the model's name there (:class:`HttpEmbedder`).

The worker embeds a document's passages when it indexes it (kept beside its BM25 index); a
prompt is embedded when it is asked. :func:`fuse` merges the two rankings by reciprocal rank
(RRF), so neither score's scale matters. Without a configured model, or when it fails, the
ranking is BM25 alone (a failure is logged, never shown to the person asking).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Sequence

import httpx
import numpy as np
from redis.exceptions import RedisError

from kuwa.broker import Hub, JobQueue, connect, submit
from kuwa.errors import KuwaError
from kuwa.schemas import Job
from kuwa.schemas.embedding import JOB_INPUTS, embedding_job, unpack_vectors
from kuwa.settings import Settings

log = logging.getLogger(__name__)

BATCH = 64
RRF_K = 60
MAGIC = b"KUWAVEC1"


class EmbeddingError(Exception):
    """The embedding model could not be reached or answered unexpectedly."""


class Embedder(abc.ABC):
    """Texts to unit vectors (float32, one row per text)."""

    where: str  # the model, for logs

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder | None:
        """The configured embedding model, or None (BM25 alone)."""
        if settings.embedding_url:
            return HttpEmbedder(
                settings.embedding_url,
                settings.embedding_model,
                settings.embedding_api_key,
                settings.embedding_timeout,
            )
        if settings.embedding_model:
            return KuwaEmbedder(settings, settings.embedding_model)
        return None

    @abc.abstractmethod
    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The texts' vectors as the model gives them; :class:`EmbeddingError` on failure."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (float32, one row per text); :class:`EmbeddingError` on failure."""
        vectors = np.asarray(self.vectors(texts), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise EmbeddingError(f"expected {len(texts)} vectors, got shape {vectors.shape}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def try_embed(self, texts: Sequence[str]) -> np.ndarray | None:
        try:
            return self.embed(texts)
        except EmbeddingError as exc:
            log.warning("embedding model %s failed, ranking by BM25 only: %s", self.where, exc)
            return None


class HttpEmbedder(Embedder):
    """Any OpenAI-compatible ``/v1/embeddings`` (``KUWA_EMBEDDING_URL``)."""

    def __init__(self, url: str, model: str | None, api_key: str | None, timeout: float) -> None:
        self.url = url.rstrip("/") + "/embeddings"
        self.where = self.url
        self.model = model
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        try:
            with httpx.Client(timeout=self.timeout, headers=self.headers) as client:
                for start in range(0, len(texts), BATCH):
                    body: dict[str, object] = {"input": list(texts[start : start + BATCH])}
                    if self.model:
                        body["model"] = self.model
                    r = client.post(self.url, json=body)
                    r.raise_for_status()
                    data = sorted(r.json()["data"], key=lambda d: d["index"])
                    rows += [d["embedding"] for d in data]
            return np.asarray(rows, dtype=np.float32)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"{type(exc).__name__}: {exc}") from exc


class KuwaEmbedder(Embedder):
    """An embedding model Kuwa's executors serve (``KUWA_EMBEDDING_MODEL`` = its access code):
    embedding jobs of :data:`~kuwa.schemas.embedding.JOB_INPUTS` texts, one after another,
    through the broker; ``KUWA_EMBEDDING_TIMEOUT`` bounds each.

    Callers are synchronous (the indexing worker, the gateway's thread pool), so each call
    runs its jobs on an event loop of its own, with its own Redis connections."""

    def __init__(self, settings: Settings, code: str) -> None:
        self.settings = settings
        self.code = code
        self.where = f"'{code}' (served by Kuwa)"

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        try:
            rows = asyncio.run(self._rows(list(texts)))
        except (KuwaError, RedisError, ValueError, OSError, RuntimeError) as exc:
            raise EmbeddingError(f"{type(exc).__name__}: {exc}") from exc
        if len({len(row) for row in rows}) != 1:  # executors of one code with other models
            raise EmbeddingError("the model's executors gave vectors of different sizes")
        return np.frombuffer(b"".join(rows), dtype="<f4").reshape(len(texts), -1)

    async def _rows(self, texts: list[str]) -> list[bytes]:
        s = self.settings
        redis = connect(s.effective_redis_url)
        hub = Hub(redis)
        try:
            await hub.start()
            queue = JobQueue(redis, state_ttl=s.transcript_ttl, fair_window=s.fair_window)
            rows: list[bytes] = []
            for start in range(0, len(texts), JOB_INPUTS):
                job = embedding_job(self.code, texts[start : start + JOB_INPUTS])
                rows += await self._run(hub, queue, job)
            return rows
        finally:
            await hub.stop()
            await redis.aclose()

    async def _run(self, hub: Hub, queue: JobQueue, job: Job) -> list[bytes]:
        sub = await submit(hub, queue, job)
        finished = False
        parts: list[str] = []
        try:
            async for chunk in sub.chunks(idle_timeout=self.settings.embedding_timeout):
                parts.append(chunk.text)
                if chunk.final:
                    finished = True
                    if chunk.error is not None:
                        raise EmbeddingError(chunk.error.get("message", "the model failed"))
            return unpack_vectors("".join(parts), len(job.inputs))
        finally:
            if not finished:
                await queue.cancel(job.id)
            await sub.close()


def to_bytes(vectors: np.ndarray) -> bytes:
    dim = int(vectors.shape[1])
    return MAGIC + dim.to_bytes(4, "little") + vectors.astype(np.float32).tobytes()


def from_bytes(raw: bytes) -> np.ndarray:
    if not raw.startswith(MAGIC):
        raise ValueError("not Kuwa passage vectors")
    dim = int.from_bytes(raw[len(MAGIC) : len(MAGIC) + 4], "little")
    flat = np.frombuffer(raw, dtype=np.float32, offset=len(MAGIC) + 4)
    return flat.reshape(-1, dim)


def nearest(
    matrices: Sequence[np.ndarray | None], query: np.ndarray, k: int
) -> list[tuple[int, int]]:
    """The ``k`` passages (source, passage) most similar to ``query``, best first."""
    scored: list[tuple[float, int, int]] = []
    for source, matrix in enumerate(matrices):
        if matrix is None or not len(matrix) or matrix.shape[1] != query.shape[0]:
            continue
        sims = matrix @ query
        top = np.argsort(-sims)[:k]
        scored += [(float(sims[i]), source, int(i)) for i in top]
    scored.sort(key=lambda s: -s[0])
    return [(source, i) for _, source, i in scored[:k]]


def fuse(*rankings: Sequence[tuple[int, int]], k: int) -> list[tuple[int, int]]:
    """Reciprocal rank fusion of rankings of (source, passage), best first."""
    score: dict[tuple[int, int], float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking):
            score[key] = score.get(key, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(score, key=lambda key: -score[key])[:k]
