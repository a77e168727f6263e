"""Where a document's bytes live: the database (default) or a folder every process reaches.

In the database (table ``document_data``) they travel with its backups and need nothing
shared besides it, SQLite or PostgreSQL alike. With ``KUWA_FILES_DIR`` they are files named
by the document's public id in that folder, written whole and then renamed (a reader never
sees half a file): for large libraries, on a shared folder (NFS) or an object store mounted
as one (s3fs, gcsfuse) when several gateways and workers run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import peewee

from kuwa.accounts.models import DocumentData
from kuwa.accounts.repo import Repo, db_errors
from kuwa.errors import NotFoundError


class FileStore(Repo):
    def __init__(self, db: peewee.Database, folder: Path | None) -> None:
        super().__init__(db)
        self.folder = folder

    def _path(self, uid: str) -> Path:
        assert self.folder is not None
        return self.folder / uid[-2:] / uid  # public ids are file-<hex>: safe names

    def put(self, document_id: int, uid: str, data: bytes) -> None:
        if self.folder is None:
            with db_errors("saving a document"):
                self._q(DocumentData.insert(document=document_id, data=data)).execute()
            return
        path = self._path(uid)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, document_id: int, uid: str) -> bytes:
        if self.folder is None:
            with db_errors("reading a document"):
                rows = list(
                    self._q(
                        DocumentData.select(DocumentData.data)
                        .where(DocumentData.document == document_id)
                        .tuples()
                    )
                )
            if not rows:
                raise NotFoundError(f"The content of {uid} is gone.", param="file_id")
            return bytes(rows[0][0])
        try:
            return self._path(uid).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"The content of {uid} is gone.", param="file_id") from None

    def delete(self, uid: str) -> None:
        """Remove the file from the folder (rows in the database go with their document)."""
        if self.folder is not None:
            self._path(uid).unlink(missing_ok=True)
