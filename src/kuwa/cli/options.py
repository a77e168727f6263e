"""Options shared by several commands, each also read from its ``KUWA_*`` variable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def option(*names: str, envvar: str, **kw: Any) -> Callable[[F], F]:
    """An option that is also read from ``envvar`` (shown in ``--help``): None when not given
    (unless ``default`` says otherwise), () for a ``multiple`` one."""
    if not kw.get("multiple"):
        kw.setdefault("default", None)
    return click.option(*names, envvar=envvar, show_envvar=True, **kw)


def flag(name: str, *, envvar: str, help: str) -> Callable[[F], F]:
    """An on/off option, off unless given (or its ``envvar`` is set)."""
    return option(name, envvar=envvar, is_flag=True, default=False, help=help)


def list_deleted(envvar: str, what: str) -> Callable[[F], F]:
    """The ``--deleted`` flag of a ``list`` command that can also show deleted ``what``."""
    return flag(
        "--deleted", envvar=envvar, help=f"Also list deleted {what} (marked in a DELETED column)."
    )


def deleted_column(
    headers: list[str], rows: list[list[object]], items: Sequence[Any], deleted: bool
) -> None:
    """With ``--deleted`` (``list_deleted``), add the DELETED column: yes or no per item."""
    if deleted:
        headers.append("DELETED")
        for row, item in zip(rows, items, strict=True):
            row.append("yes" if item.deleted_at else "no")


redis_url = option(
    "--redis-url",
    envvar="KUWA_REDIS_URL",
    help="Redis URL (redis://, rediss:// or unix://). [default: the Redis of a `kuwa-cli up` "
    "running on DATA_DIR, else redis://127.0.0.1:6379/0]",
)
up_redis_url = option(
    "--redis-url",
    envvar="KUWA_REDIS_URL",
    help="Redis URL (redis://, rediss:// or unix://). [default: a private redis-server on a "
    "unix socket in DATA_DIR, stopped on exit]",
)
data_dir = option(
    "--data-dir",
    envvar="KUWA_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the SQLite database and secret key. [default: ./kuwa-data]",
)
redis_data_dir = option(
    "--data-dir",
    envvar="KUWA_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder of a running `kuwa-cli up` whose Redis to join when --redis-url is "
    "unset. [default: ./kuwa-data]",
)
database_url = option(
    "--database-url",
    envvar="KUWA_DATABASE_URL",
    help="Database URL (sqlite:///… or postgresql://…). [default: DATA_DIR/kuwa.db]",
)
host = option("--host", envvar="KUWA_HOST", help="Address to listen on. [default: 127.0.0.1]")
port = option("--port", envvar="KUWA_PORT", type=int, help="Port to listen on. [default: 8000]")
log_level = option(
    "--log-level",
    envvar="KUWA_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="How much to log. [default: info]",
)
access_log = option(
    "--access-log/--no-access-log",
    envvar="KUWA_ACCESS_LOG",
    help="Log every HTTP request the gateway answers. [default: off]",
)
burst = click.option(
    "--burst",
    envvar="KUWA_BURST",
    show_envvar=True,
    is_flag=True,
    help="Exit when there is no more work (for tests and batch runs).",
)


def database(f: F) -> F:
    """``--data-dir`` and ``--database-url``: the database a command works on."""
    return data_dir(database_url(f))
