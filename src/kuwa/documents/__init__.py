"""Chat with documents: files uploaded to a room (or a bot, or through ``/v1/files``), their
text extracted in a sandboxed child process, cut into passages, indexed for BM25 and ranked
for each prompt; the best passages travel in the job to every model of the room.

Parts: ``extract`` (text out of PDF, DOCX, PPTX, XLSX, CSV, TXT/Markdown, HTML), ``sandbox``
(that, in a child with limits), ``passages`` (cutting), ``lexical`` (BM25 over words and CJK
n-grams), ``embeddings`` (ranking by meaning, when a model is configured), ``storage`` (bytes
in the database or a shared folder), ``service`` (the database side and access), ``indexing``
(the background job), ``retrieval`` (ranking).

The public names load on first use: the sandbox's child process imports this package and
should not pay for the database and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kuwa.documents.embeddings import Embedder
    from kuwa.documents.indexing import enqueue_indexing, index_document
    from kuwa.documents.retrieval import retrieve
    from kuwa.documents.service import Documents, document_json

_WHERE = {
    "Embedder": "embeddings",
    "Documents": "service",
    "document_json": "service",
    "enqueue_indexing": "indexing",
    "index_document": "indexing",
    "retrieve": "retrieval",
}

__all__ = [
    "Documents",
    "Embedder",
    "document_json",
    "enqueue_indexing",
    "index_document",
    "retrieve",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kuwa.documents' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kuwa.documents.{module}"), name)
