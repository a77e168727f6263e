"""Ranking by meaning: passages and prompts as vectors from an embedding model, when one is
configured (``KUWA_EMBEDDING_URL``: any OpenAI-compatible ``/v1/embeddings`` — vLLM serving
an embedding model, Text Embeddings Inference, Ollama, OpenAI). Nothing is downloaded: the
model lives where that server is.

The worker embeds a document's passages when it indexes it (kept beside its BM25 index); a
prompt is embedded when it is asked. :func:`fuse` merges the two rankings by reciprocal rank
(RRF), so neither score's scale matters. Without a configured model, or when it fails, the
ranking is BM25 alone (a failure is logged, never shown to the person asking).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import numpy as np

from kuwa.settings import Settings

log = logging.getLogger(__name__)

BATCH = 64
RRF_K = 60
MAGIC = b"KUWAVEC1"


class EmbeddingError(Exception):
    """The embedding model could not be reached or answered unexpectedly."""


class Embedder:
    def __init__(self, url: str, model: str | None, api_key: str | None, timeout: float) -> None:
        self.url = url.rstrip("/") + "/embeddings"
        self.model = model
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder | None:
        if not settings.embedding_url:
            return None
        return cls(
            settings.embedding_url,
            settings.embedding_model,
            settings.embedding_api_key,
            settings.embedding_timeout,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (float32, one row per text); :class:`EmbeddingError` on failure."""
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
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"{type(exc).__name__}: {exc}") from exc
        vectors = np.asarray(rows, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise EmbeddingError(f"expected {len(texts)} vectors, got shape {vectors.shape}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def try_embed(self, texts: Sequence[str]) -> np.ndarray | None:
        try:
            return self.embed(texts)
        except EmbeddingError as exc:
            log.warning("embedding model at %s failed, ranking by BM25 only: %s", self.url, exc)
            return None


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
