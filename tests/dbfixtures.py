"""Database fixtures: a fresh SQLite file or a fresh PostgreSQL database per test.

PostgreSQL is the local server (``postgresql://postgres@127.0.0.1:5432``, trust auth) unless
``KUWA_TEST_POSTGRES`` names another server URL (without a database name). Each test gets its
own database ``kuwa_test_<hex>``, dropped afterwards. No server is a failure, not a skip.

``pytest --db=postgres`` switches the suite's *default* database — the one a
:class:`tests.stack.Stack` (and so ``store_of``/``make_user`` of tests/web.py and every
gateway a test starts) uses — from SQLite in the stack's data folder to a fresh PostgreSQL
database per stack, made from a template that is migrated once per session. Tests that reach
that default database are marked ``db`` automatically (they use a fixture named ``stack``, or
their module uses ``store_of``/``make_user``); ``make test`` runs them a second time with
``pytest -m db --db=postgres``. Tests that pick their dialects themselves (``database_url``,
``sqlite_url``, ``postgres_url``) run both already and are not marked. Nor are tests marked
``any_db``: they need a database only as a means (a user with a token, a model's Modelfile in
the catalog) to test something else, a model engine, whose code paths into the database other
tests run on both; a second pass would repeat the engine, not the SQL.
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
DIALECTS = ("sqlite", "postgres")
# Module names that reach the default database, and fixtures that do.
DB_HELPERS = ("store_of", "make_user")
DB_FIXTURES = ("stack",)
EXPLICIT_FIXTURES = ("database_url", "sqlite_url", "postgres_url")

_state: dict[str, str | None] = {"dialect": "sqlite", "template": None}
_made: list[str] = []  # databases of this session still to drop


def postgres_server_url() -> str:
    return os.environ.get("KUWA_TEST_POSTGRES", DEFAULT_POSTGRES_SERVER).rstrip("/")


def default_dialect() -> str:
    """``sqlite`` or ``postgres``: what ``--db`` chose (``sqlite`` outside pytest)."""
    return _state["dialect"] or "sqlite"


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


def create_postgres_database(template: str | None = None) -> str:
    """A new, empty (or ``template``'s copy) database; returns its name."""
    name = f"kuwa_test_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    # A test database need not survive a crash of the server: commits skip the WAL flush.
    fast = sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name))
    _admin([(statement, ()), (fast, ())])
    return name


def drop_postgres_database(name: str) -> None:
    _admin(
        [
            (
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()"
                ),
                (name,),
            ),
            (sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)), ()),
        ]
    )


def default_database_url() -> str | None:
    """The database a new Stack uses: None (SQLite in its data folder) or, under
    ``--db=postgres``, the URL of a fresh PostgreSQL database, dropped when the session ends.

    It is a copy of a template migrated once per session (CREATE DATABASE … TEMPLATE), so a
    stack does not pay for the DDL again."""
    if default_dialect() != "postgres":
        return None
    name = create_postgres_database(_template())
    _made.append(name)
    return f"{postgres_server_url()}/{name}"


def _template() -> str:
    template = _state["template"]
    if template is None:
        from kuwa.accounts import close_database, open_database
        from kuwa.settings import Settings

        template = create_postgres_database()
        _made.append(template)
        url = f"{postgres_server_url()}/{template}"
        close_database(open_database(Settings(database_url=url, secret_key="template")))
        _state["template"] = template
    return template


# --- pytest hooks ------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=DIALECTS,
        default="sqlite",
        help="database of the tests' default store (tests/stack.py): sqlite (a file in the "
        "stack's data folder) or postgres (a fresh database on KUWA_TEST_POSTGRES's server)",
    )


def pytest_configure(config: pytest.Config) -> None:
    _state["dialect"] = config.getoption("--db")
    config.addinivalue_line(
        "markers",
        "db: reaches the suite's default database (a Stack, store_of, make_user); "
        "`pytest -m db --db=postgres` runs these on PostgreSQL",
    )
    config.addinivalue_line(
        "markers",
        "any_db: uses the default database only as a means; not marked db, so it runs on "
        "SQLite only (tests/dbfixtures.py says when that is right)",
    )


def touches_default_database(item: pytest.Item) -> bool:
    if item.get_closest_marker("db") is not None:
        return True
    if item.get_closest_marker("any_db") is not None:
        return False
    names = set(getattr(item, "fixturenames", ()))
    if names & set(EXPLICIT_FIXTURES):
        return False
    module = getattr(item, "module", None)
    helpers = module is not None and any(hasattr(module, name) for name in DB_HELPERS)
    return helpers or bool(names & set(DB_FIXTURES))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if touches_default_database(item) and item.get_closest_marker("db") is None:
            item.add_marker(pytest.mark.db)


def pytest_sessionfinish() -> None:
    while _made:
        drop_postgres_database(_made.pop())


# --- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'db' / 'kuwa.db').resolve()}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = create_postgres_database()
    try:
        yield f"{postgres_server_url()}/{name}"
    finally:
        drop_postgres_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database: once SQLite, once PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url
