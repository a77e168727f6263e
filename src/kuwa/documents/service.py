"""Documents in the database: upload (limits and quotas), access, listing, deletion, and
what indexing records (status, progress, passages, the lexical index).

Synchronous like the other database services (callers use a thread pool). Who may do what
is decided here, once (:meth:`Documents.require`): a room's documents are the room's (its
viewers read them, its participants add them, their uploader or the room's owner removes
them); a bot's are its knowledge (its editors manage them); a document uploaded through
``POST /v1/files`` is its owner's alone. Anything else is "no such file" (404), never 403,
so ids cannot be probed.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import peewee

from kuwa.accounts import UserInfo
from kuwa.accounts.models import Document, DocumentIndex, Passage, utcnow
from kuwa.accounts.repo import Repo, db_errors
from kuwa.bots.store import Bots
from kuwa.documents import sandbox
from kuwa.documents.extract import ExtractError, kind_of
from kuwa.documents.passages import Piece
from kuwa.documents.storage import FileStore
from kuwa.errors import (
    DocumentError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
)
from kuwa.rooms import Rooms
from kuwa.rooms.shapes import timestamp
from kuwa.settings import Settings

COUNT_TIMEOUT = 30.0  # seconds to count an upload's pages before it is accepted
MAX_NAME = 255
PAGED = ("pdf", "docx", "pptx", "xlsx")  # kinds whose pages are counted (and zips checked)


def new_uid() -> str:
    return f"file-{secrets.token_hex(12)}"


def document_json(row: dict[str, Any]) -> dict[str, Any]:
    """A document as the web API shows it (docs/web-app-api.md)."""
    return {
        "id": row["uid"],
        "name": row["name"],
        "kind": row["kind"],
        "bytes": row["size"],
        "room": row["room"],
        "bot": row["bot"],
        "owner": row["owner"],
        "status": row["status"],
        "pages": row["pages"],
        "done": row["done"],
        "passages": row["passages"],
        "error": row["error"],
        "created": timestamp(row["created_at"]),
    }


class Documents(Repo):
    def __init__(self, db: peewee.Database, settings: Settings) -> None:
        super().__init__(db)
        self.settings = settings
        self.store = FileStore(db, settings.files_dir)

    # --- access -------------------------------------------------------------------------
    def require(self, uid: str, user: UserInfo, action: str) -> dict[str, Any]:
        """The document ``uid`` if ``user`` may ``read`` or ``delete`` it; 404 otherwise."""
        row = self.row(uid)
        if row is not None and self._allowed(row, user, action):
            return row
        raise NotFoundError(f"There is no file {uid} of yours.", param="file_id")

    def _allowed(self, row: dict[str, Any], user: UserInfo, action: str) -> bool:
        if row["room"] is not None:
            role = Rooms(self._db).role(int(row["room"]), user.id, user.group)
            if role is None:
                return False
            if action == "read":
                return True
            return bool(row["owner"] == user.id or role == "owner")
        if row["bot"] is not None:
            try:
                Bots(self._db).check_editable(int(row["bot"]), user)
            except (NotFoundError, PermissionDeniedError):
                return False
            return True
        return bool(row["owner"] == user.id)

    def row(self, uid: str) -> dict[str, Any] | None:
        with db_errors("reading a file"):
            rows = self._rows(Document.select().where(Document.uid == uid))
        return rows[0] if rows else None

    def by_id(self, document_id: int) -> dict[str, Any] | None:
        with db_errors("reading a file"):
            rows = self._rows(Document.select().where(Document.id == document_id))
        return rows[0] if rows else None

    # --- upload -------------------------------------------------------------------------
    def check_size(self, size: int) -> None:
        limit = self.settings.files_max_bytes
        if size > limit:
            raise PayloadTooLargeError(
                f"The file is larger than the limit of {limit} bytes.", param="file"
            )

    def add(
        self,
        owner_id: int,
        name: str,
        data: bytes,
        *,
        room_id: int | None = None,
        bot_id: int | None = None,
        purpose: str = "assistants",
    ) -> dict[str, Any]:
        """Check and store a new document (status ``queued``: it still has to be indexed).

        Refused: an unknown type, a damaged or locked file (400), one over the size or page
        limit or the owner's quota (413)."""
        name = " ".join(name.replace("/", " ").replace("\\", " ").split())[:MAX_NAME]
        if not name:
            raise InvalidRequestError("The file needs a name.", param="file")
        self.check_size(len(data))
        if not data:
            raise DocumentError("The file is empty.", param="file")
        try:
            kind = kind_of(name, data[:8])
            pages = 1
            if kind in PAGED:
                timeout = min(COUNT_TIMEOUT, self.settings.files_extract_timeout)
                pages = sandbox.count(data, kind, timeout)
        except ExtractError as exc:
            error = PayloadTooLargeError if exc.too_large else DocumentError
            raise error(exc.message, param="file") from None
        if pages > self.settings.files_max_pages:
            raise PayloadTooLargeError(
                f"The file has {pages} pages; the limit is {self.settings.files_max_pages}.",
                param="file",
            )
        uid = new_uid()
        with db_errors("saving a file"), self._db.atomic():
            self._check_quota(owner_id, len(data))
            document_id = int(
                self._q(
                    Document.insert(
                        uid=uid,
                        owner=owner_id,
                        room=room_id,
                        bot=bot_id,
                        name=name,
                        kind=kind,
                        size=len(data),
                        sha256=hashlib.sha256(data).hexdigest(),
                        purpose=purpose,
                        status="queued",
                        pages=pages,
                        created_at=utcnow(),
                    )
                ).execute()
            )
            self.store.put(document_id, uid, data)
        row = self.by_id(document_id)
        assert row is not None
        return row

    def usage(self, owner_id: int) -> tuple[int, int]:
        """(bytes, files) the user keeps."""
        with db_errors("counting files"):
            rows = list(
                self._q(
                    Document.select(
                        peewee.fn.COALESCE(peewee.fn.SUM(Document.size), 0),
                        peewee.fn.COUNT(Document.id),
                    )
                    .where(Document.owner == owner_id)
                    .tuples()
                )
            )
        return int(rows[0][0]), int(rows[0][1])

    def _check_quota(self, owner_id: int, size: int) -> None:
        used, files = self.usage(owner_id)
        max_bytes, max_files = (
            self.settings.files_user_quota_bytes,
            self.settings.files_user_quota_files,
        )
        if max_files and files + 1 > max_files:
            raise QuotaExceededError(
                f"You keep {files} files, the most allowed; delete some first.", param="file"
            )
        if max_bytes and used + size > max_bytes:
            raise QuotaExceededError(
                f"This file would take your files to {used + size} bytes; the quota is "
                f"{max_bytes}. Delete some first.",
                param="file",
            )

    # --- lists and removal ----------------------------------------------------------------
    def of_room(self, room_id: int) -> list[dict[str, Any]]:
        return self._list(Document.room == room_id)

    def of_bot(self, bot_id: int) -> list[dict[str, Any]]:
        return self._list(Document.bot == bot_id)

    def of_owner(self, owner_id: int) -> list[dict[str, Any]]:
        return self._list(Document.owner == owner_id)

    def _list(self, where: Any) -> list[dict[str, Any]]:
        with db_errors("listing files"):
            return self._rows(Document.select().where(where).order_by(Document.id))

    def ready_ids(self, where: Any) -> list[int]:
        with db_errors("listing files"):
            return [
                int(i)
                for (i,) in self._q(
                    Document.select(Document.id)
                    .where(where & (Document.status == "ready"))
                    .order_by(Document.id)
                    .tuples()
                )
            ]

    def delete(self, row: dict[str, Any]) -> None:
        with db_errors("deleting a file"):
            self._q(Document.delete().where(Document.id == row["id"])).execute()
        self.store.delete(str(row["uid"]))

    def content(self, row: dict[str, Any]) -> bytes:
        return self.store.get(int(row["id"]), str(row["uid"]))

    # --- indexing -----------------------------------------------------------------------
    def mark(self, document_id: int, **changes: Any) -> None:
        with db_errors("updating a file"):
            self._q(Document.update(**changes).where(Document.id == document_id)).execute()

    def save_index(
        self,
        document_id: int,
        pieces: list[Piece],
        pages: int,
        index: bytes,
        vectors: bytes | None = None,
    ) -> bool:
        """Keep the passages, the index and the passages' vectors (if embedded); the document
        is ``ready``. False when the document was deleted meanwhile."""
        with db_errors("saving a file's passages"), self._db.atomic():
            if self.by_id(document_id) is None:
                return False
            self._q(Passage.delete().where(Passage.document == document_id)).execute()
            self._q(DocumentIndex.delete().where(DocumentIndex.document == document_id)).execute()
            rows = [
                {"document": document_id, "seq": i, "page": p.page, "text": p.text}
                for i, p in enumerate(pieces)
            ]
            for start in range(0, len(rows), 500):
                self._q(Passage.insert_many(rows[start : start + 500])).execute()
            self._q(
                DocumentIndex.insert(document=document_id, data=index, vectors=vectors)
            ).execute()
            self._q(
                Document.update(
                    status="ready", pages=pages, done=pages, passages=len(pieces), error=None
                ).where(Document.id == document_id)
            ).execute()
        return True

    def index_bytes(self, document_ids: list[int]) -> dict[int, tuple[bytes, bytes | None]]:
        """Each document's BM25 index and its passages' vectors (None: not embedded)."""
        with db_errors("reading file indexes"):
            return {
                int(d): (bytes(data), bytes(vectors) if vectors is not None else None)
                for d, data, vectors in self._q(
                    DocumentIndex.select(
                        DocumentIndex.document, DocumentIndex.data, DocumentIndex.vectors
                    )
                    .where(DocumentIndex.document.in_(document_ids))
                    .tuples()
                )
            }

    def passages(self, wanted: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
        """Passages by (document id, seq), with their document's public id and name."""
        if not wanted:
            return {}
        # Two IN lists use the (document, seq) index; the exact pairs are picked below (a
        # chain of ORs made SQLite scan the table).
        documents = sorted({d for d, _ in wanted})
        seqs = sorted({q for _, q in wanted})
        with db_errors("reading passages"):
            rows = self._rows(
                Passage.select(
                    Passage.document,
                    Passage.seq,
                    Passage.page,
                    Passage.text,
                    Document.uid,
                    Document.name,
                )
                .join(Document)
                .where(Passage.document.in_(documents) & Passage.seq.in_(seqs))
            )
        keep = set(wanted)
        rows = [r for r in rows if (int(r["document"]), int(r["seq"])) in keep]
        return {(int(r["document"]), int(r["seq"])): r for r in rows}
