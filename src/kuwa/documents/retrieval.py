"""Ranking a set of documents' passages for a prompt: the citations a job carries.

BM25 always; with an embedding model configured (:mod:`.embeddings`), also by meaning, the
two rankings fused by reciprocal rank. Indexes are immutable once built, so each process
keeps the ones it used (least recently used first out, within :data:`CACHE_BYTES`); which
documents count is read from the database on every search, so a deleted document is never
searched, on any gateway.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from kuwa.documents.embeddings import Embedder, from_bytes, fuse, nearest
from kuwa.documents.lexical import FileIndex, search
from kuwa.documents.service import Documents

CACHE_BYTES = 512 * 1024 * 1024
SNIPPET_CHARS = 2000  # most characters of a passage a citation carries
CANDIDATES = 50  # passages each ranking offers to the fusion


@dataclass(frozen=True, slots=True)
class Indexed:
    """A document's BM25 index and, when it was embedded, its passages' vectors."""

    lexical: FileIndex
    vectors: np.ndarray | None

    @property
    def size(self) -> int:
        return self.lexical.size + (self.vectors.nbytes if self.vectors is not None else 0)


class IndexCache:
    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.budget = budget
        self.used = 0
        self.items: OrderedDict[int, Indexed] = OrderedDict()
        self.lock = threading.Lock()

    def get_many(self, documents: Documents, ids: list[int]) -> list[tuple[int, Indexed]]:
        with self.lock:
            found = {i: self.items[i] for i in ids if i in self.items}
            for i in found:
                self.items.move_to_end(i)
        missing = [i for i in ids if i not in found]
        if missing:
            for i, (raw, vectors) in documents.index_bytes(missing).items():
                item = Indexed(FileIndex.from_bytes(raw), from_bytes(vectors) if vectors else None)
                found[i] = item
                self._put(i, item)
        return [(i, found[i]) for i in ids if i in found]

    def _put(self, key: int, item: Indexed) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = item
            self.used += item.size
            while self.used > self.budget and len(self.items) > 1:
                _, old = self.items.popitem(last=False)
                self.used -= old.size


CACHE = IndexCache()


def retrieve(
    documents: Documents,
    document_ids: list[int],
    query: str,
    k: int,
    embedder: Embedder | None = None,
) -> list[dict[str, Any]]:
    """The ``k`` best passages of the documents for ``query``, as citations numbered from 1:
    ``{"n", "file", "name", "page", "text"}``."""
    if not document_ids or not query.strip():
        return []
    ids = sorted(set(document_ids))
    indexes = CACHE.get_many(documents, ids)
    vectors = [item.vectors for _, item in indexes]
    query_vector = None
    if embedder is not None and any(v is not None for v in vectors):
        embedded = embedder.try_embed([query])
        query_vector = embedded[0] if embedded is not None else None
    if query_vector is None:
        hits = [(h.source, h.passage) for h in search([i.lexical for _, i in indexes], query, k)]
    else:
        lexical = search([i.lexical for _, i in indexes], query, CANDIDATES)
        by_meaning = nearest(vectors, query_vector, CANDIDATES)
        hits = fuse([(h.source, h.passage) for h in lexical], by_meaning, k=k)
    wanted = [(indexes[source][0], passage) for source, passage in hits]
    rows = documents.passages(wanted)
    out: list[dict[str, Any]] = []
    for key in wanted:
        row = rows.get(key)
        if row is None:
            continue
        out.append(
            {
                "n": len(out) + 1,
                "file": row["uid"],
                "name": row["name"],
                "page": row["page"],
                "text": str(row["text"])[:SNIPPET_CHARS],
            }
        )
    return out
