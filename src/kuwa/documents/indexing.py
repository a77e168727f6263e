"""Indexing an uploaded document in the background (RQ, ``kuwa-cli worker start``).

The upload stores the file (``queued``) and enqueues :func:`index_document`; the worker
reads its text in a child process with a time and memory limit (progress, page by page, in
the document's row), cuts it into passages, builds its BM25 index (and, with an embedding
model configured, embeds the passages) and keeps them (``ready``), or records why it could
not (``failed``: "no text found in this file", a password, a damaged file, too long to
read). Either way the job ends: nothing a file holds can keep a worker.
"""

from __future__ import annotations

import logging
import time

import peewee
from rq import Callback, Queue
from rq.job import Job

from kuwa.accounts import close_database, open_database
from kuwa.broker.connection import connect_sync
from kuwa.documents import embeddings, sandbox
from kuwa.documents.embeddings import Embedder
from kuwa.documents.extract import ExtractError
from kuwa.documents.lexical import FileIndex
from kuwa.documents.passages import split_pages
from kuwa.documents.service import Documents
from kuwa.settings import Settings

log = logging.getLogger(__name__)

QUEUE = "kuwa-rooms"  # the queue `kuwa-cli worker start` serves
PROGRESS_EVERY = 0.5  # seconds between two progress updates in the database


def enqueue_indexing(settings: Settings, document_id: int) -> str:
    """Queue the indexing of a stored document; the RQ job's id."""
    queue = Queue(QUEUE, connection=connect_sync(settings.effective_redis_url))
    job = queue.enqueue(
        index_document,
        document_id,
        job_timeout=int(settings.files_extract_timeout) + 120,
        description=f"index document {document_id}",
        on_failure=Callback(indexing_failed),
    )
    return str(job.id)


def indexing_failed(
    job: Job, connection: object, kind: type[BaseException], value: BaseException, tb: object
) -> None:
    """RQ's failure callback (the job raised, ran out of time, or its worker died and another
    cleaned up after it): the document says it failed instead of "indexing" for ever."""
    document_id = int(job.args[0])
    settings = Settings.from_env()
    db = open_database(settings)
    try:
        docs = Documents(db, settings)
        row = docs.by_id(document_id)
        if row is not None and row["status"] != "ready":
            reason = f"Indexing stopped unexpectedly ({kind.__name__}); upload the file again."
            docs.mark(document_id, status="failed", error=reason)
    finally:
        close_database(db)


def index_document(document_id: int) -> str:
    """The RQ job: index one document; its final status."""
    settings = Settings.from_env()
    db = open_database(settings)
    try:
        return Indexer(Documents(db, settings)).run(document_id)
    finally:
        close_database(db)


class Indexer:
    def __init__(self, documents: Documents) -> None:
        self.documents = documents
        self.settings = documents.settings
        self.embedder = Embedder.from_settings(self.settings)

    def run(self, document_id: int) -> str:
        docs = self.documents
        row = docs.by_id(document_id)
        if row is None:
            return "deleted"
        docs.mark(document_id, status="indexing", done=0, error=None)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                docs.mark(document_id, done=done, pages=total)

        try:
            data = docs.content(row)
            pages = sandbox.read(
                data,
                str(row["kind"]),
                self.settings.files_max_pages,
                self.settings.files_extract_timeout,
                progress,
            )
            pieces = split_pages(pages)
            texts = [p.text for p in pieces]
            index = FileIndex.build(texts)
            vectors = self.embedder.try_embed(texts) if self.embedder is not None else None
            total = max((p.number or 0 for p in pages), default=0) or int(row["pages"]) or 1
            saved = docs.save_index(
                document_id,
                pieces,
                total,
                index.to_bytes(),
                embeddings.to_bytes(vectors) if vectors is not None else None,
            )
        except ExtractError as exc:
            log.info("document %s: %s", document_id, exc.message)
            self._fail(document_id, exc.message)
            return "failed"
        except peewee.PeeweeException:
            raise
        except Exception as exc:
            log.exception("document %s could not be indexed", document_id)
            self._fail(document_id, f"The file could not be indexed ({type(exc).__name__}).")
            return "failed"
        if not saved:
            return "deleted"
        log.info("document %s: %s passages indexed", document_id, len(pieces))
        return "ready"

    def _fail(self, document_id: int, message: str) -> None:
        self.documents.mark(document_id, status="failed", error=message)
