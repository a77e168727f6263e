"""Database fixtures: a fresh SQLite file or a fresh PostgreSQL database per test.

PostgreSQL is the local server (``postgresql://postgres@127.0.0.1:5432``, trust auth) unless
``KUWA_TEST_POSTGRES`` names another server URL (without a database name). Each test gets its
own database ``kuwa_test_<hex>``, dropped afterwards. No server is a failure, not a skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

DEFAULT_POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"


def postgres_server_url() -> str:
    return os.environ.get("KUWA_TEST_POSTGRES", DEFAULT_POSTGRES_SERVER).rstrip("/")


def _admin(statements: list[tuple[sql.Composable, tuple[str, ...]]]) -> None:
    server = postgres_server_url()
    try:
        conn = psycopg2.connect(f"{server}/postgres")
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {server} is not reachable (set KUWA_TEST_POSTGRES): {exc}")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for statement, params in statements:
                cur.execute(statement, params)
    finally:
        conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'db' / 'kuwa.db').resolve()}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"kuwa_test_{secrets.token_hex(6)}"
    ident = sql.Identifier(name)
    _admin([(sql.SQL("CREATE DATABASE {}").format(ident), ())])
    try:
        yield f"{postgres_server_url()}/{name}"
    finally:
        _admin(
            [
                (
                    sql.SQL(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()"
                    ),
                    (name,),
                ),
                (sql.SQL("DROP DATABASE IF EXISTS {}").format(ident), ()),
            ]
        )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database: once SQLite, once PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url
