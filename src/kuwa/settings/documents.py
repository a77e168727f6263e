"""Settings of chat with documents: storing, limiting, extracting and ranking them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kuwa.settings.values import doc


@dataclass(frozen=True)
class DocumentSettings:
    """Uploaded documents and the embedding model that ranks their passages."""

    __slots__ = ()  # Settings holds the fields in slots of its own
    # --- chat with documents -------------------------------------------------------------
    files_dir: Path | None = field(
        default=None,
        metadata=doc(
            "Folder that keeps uploaded documents. Several gateways and workers need one "
            "folder they all reach (NFS, or an object store mounted with s3fs or gcsfuse). "
            "Unset: the documents are kept in the database, which they share already."
        ),
    )
    files_max_bytes: int = field(
        default=20 * 1024 * 1024,
        metadata=doc("Largest document one upload accepts, in bytes; larger ones get 413."),
    )
    files_max_pages: int = field(
        default=2000,
        metadata=doc("Most pages (PDF pages, slides, sheets) one document may have; more get 413."),
    )
    files_user_quota_bytes: int = field(
        default=500 * 1024 * 1024,
        metadata=doc(
            "Bytes of documents one user may keep, all rooms and bots (0: no limit); an "
            "upload beyond it gets 413."
        ),
    )
    files_user_quota_files: int = field(
        default=500,
        metadata=doc("Documents one user may keep (0: no limit); one more gets 413."),
    )
    files_extract_timeout: float = field(
        default=300.0,
        metadata=doc(
            "Seconds the text of one document may take to extract (in a child process with "
            "a memory limit) before it is stopped and the document marked failed."
        ),
    )
    files_passages: int = field(
        default=5,
        metadata=doc(
            "Passages of a room's documents put into each model's prompt (the best ranked)."
        ),
    )
    embedding_url: str | None = field(
        default=None,
        metadata=doc(
            "An OpenAI-compatible embeddings API up to /v1 (vLLM serving an embedding model, "
            "Text Embeddings Inference, Ollama, OpenAI, ...) to rank passages by meaning too, "
            "fused with BM25. Unset: embedding_model, if set, is served by Kuwa itself."
        ),
    )
    embedding_model: str | None = field(
        default=None,
        metadata=doc(
            "Alone: the access code of an embedding model Kuwa serves (an executor with "
            "--backend embeddings), which then ranks passages by meaning too, fused with "
            "BM25. With embedding_url: the model's name there. Neither set: BM25 only."
        ),
    )
    embedding_api_key: str | None = field(
        default=None,
        repr=False,
        metadata=doc("Bearer token for embedding_url, if it needs one; never logged."),
    )
    embedding_timeout: float = field(
        default=30.0,
        metadata=doc(
            "Seconds to wait for the embedding model (at embedding_url, or each embedding "
            "job of Kuwa's own) to answer."
        ),
    )
