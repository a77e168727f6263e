"""Open the accounts database named by ``settings.effective_database_url``.

SQLite (``sqlite:///path``) runs in WAL mode with a busy timeout, so ``kuwa-cli user`` can
write while ``kuwa-cli up`` holds the same file open; write transactions begin IMMEDIATE so
they wait for the lock instead of failing half-way. PostgreSQL is
``postgresql://user:password@host:port/dbname``.

Opening brings the schema up to date with the numbered migrations (:mod:`kuwa.accounts.migrate`)
when ``settings.db_auto_migrate`` is on, else refuses a database that is behind.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import peewee
from playhouse.db_url import connect as connect_url

from kuwa.accounts.groups import Groups
from kuwa.accounts.migrate import ensure_schema, schema_lock
from kuwa.accounts.models import database_proxy
from kuwa.errors import ConfigError, KuwaError
from kuwa.settings import Settings

BUSY_TIMEOUT_MS = 10_000
SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_database(settings: Settings) -> peewee.Database:
    """Connect, bind the models, migrate (or check) the schema, seed the groups; return it."""
    url = settings.effective_database_url
    db = _make_database(url)
    try:
        db.connect(reuse_if_open=True)
        database_proxy.initialize(db)
        ensure_schema(db, auto_migrate=settings.db_auto_migrate)
        with schema_lock(db):  # two processes starting at once must not both seed
            Groups(db).seed()
    except (peewee.PeeweeException, KuwaError) as exc:
        close_database(db)
        raise ConfigError(f"cannot open database {redact_url(url)}: {exc}") from exc
    return db


def connect_database(settings: Settings) -> peewee.Database:
    """Connect without looking at the schema (``kuwa-cli db`` reads and migrates it)."""
    url = settings.effective_database_url
    db = _make_database(url)
    try:
        db.connect(reuse_if_open=True)
    except peewee.PeeweeException as exc:
        raise ConfigError(f"cannot open database {redact_url(url)}: {exc}") from exc
    return db


def close_database(db: peewee.Database) -> None:
    """Close this thread's connection (other threads' connections close with the object)."""
    if not db.is_closed():
        db.close()


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class _SqliteDatabase(peewee.SqliteDatabase):
    """SQLite that tries again when opening finds the file locked: switching a new file to
    WAL while another process creates its tables answers "database is locked" at once,
    without waiting for the busy timeout (seen with two gateways starting together)."""

    def _connect(self) -> Any:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return super()._connect()  # type: ignore[misc]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02 + random.random() * 0.03)


def _make_database(url: str) -> peewee.Database:
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) :]
        if not path:
            raise ConfigError(f"{url!r} names no file; use sqlite:///path/to/kuwa.db")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return _SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": BUSY_TIMEOUT_MS,
                "foreign_keys": 1,
            },
            timeout=BUSY_TIMEOUT_MS / 1000,
            lock_type="IMMEDIATE",
        )
    if urlsplit(url).scheme in POSTGRES_SCHEMES:
        try:
            db: peewee.Database = connect_url(url, unquote_user=True, unquote_password=True)
        except ValueError as exc:
            raise ConfigError(f"bad database URL {redact_url(url)}: {exc}") from None
        return db
    raise ConfigError(
        f"unsupported database URL {redact_url(url)}: use sqlite:///path or postgresql://..."
    )
