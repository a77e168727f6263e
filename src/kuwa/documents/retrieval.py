"""Ranking a set of documents' passages for a prompt: the citations a job carries.

Indexes are immutable once built, so each process keeps the ones it used (least recently
used first out, within :data:`CACHE_BYTES`); which documents count is read from the database
on every search, so a deleted document is never searched, on any gateway.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from kuwa.documents.lexical import FileIndex, search
from kuwa.documents.service import Documents

CACHE_BYTES = 512 * 1024 * 1024
SNIPPET_CHARS = 2000  # most characters of a passage a citation carries


class IndexCache:
    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.budget = budget
        self.used = 0
        self.items: OrderedDict[int, FileIndex] = OrderedDict()
        self.lock = threading.Lock()

    def get_many(self, documents: Documents, ids: list[int]) -> list[tuple[int, FileIndex]]:
        with self.lock:
            found = {i: self.items[i] for i in ids if i in self.items}
            for i in found:
                self.items.move_to_end(i)
        missing = [i for i in ids if i not in found]
        if missing:
            for i, raw in documents.index_bytes(missing).items():
                index = FileIndex.from_bytes(raw)
                found[i] = index
                self._put(i, index)
        return [(i, found[i]) for i in ids if i in found]

    def _put(self, key: int, index: FileIndex) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = index
            self.used += index.size
            while self.used > self.budget and len(self.items) > 1:
                _, old = self.items.popitem(last=False)
                self.used -= old.size


CACHE = IndexCache()


def retrieve(
    documents: Documents, document_ids: list[int], query: str, k: int
) -> list[dict[str, Any]]:
    """The ``k`` best passages of the documents for ``query``, as citations numbered from 1:
    ``{"n", "file", "name", "page", "text"}``."""
    if not document_ids or not query.strip():
        return []
    ids = sorted(set(document_ids))
    indexes = CACHE.get_many(documents, ids)
    hits = search([index for _, index in indexes], query, k)
    wanted = [(indexes[h.source][0], h.passage) for h in hits]
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
