"""Options shared by several commands, each also read from its ``KUWA_*`` variable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _opt(*names: str, envvar: str, **kw: Any) -> Callable[[F], F]:
    return click.option(*names, envvar=envvar, show_envvar=True, default=None, **kw)


redis_url = _opt(
    "--redis-url",
    envvar="KUWA_REDIS_URL",
    help="Redis URL (redis://, rediss:// or unix://). [default: redis://127.0.0.1:6379/0]",
)
data_dir = _opt(
    "--data-dir",
    envvar="KUWA_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the SQLite database and secret key. [default: ./kuwa-data]",
)
database_url = _opt(
    "--database-url",
    envvar="KUWA_DATABASE_URL",
    help="Database URL (sqlite:///… or postgresql://…). [default: DATA_DIR/kuwa.db]",
)
host = _opt("--host", envvar="KUWA_HOST", help="Address to listen on. [default: 127.0.0.1]")
port = _opt("--port", envvar="KUWA_PORT", type=int, help="Port to listen on. [default: 8000]")
log_level = _opt(
    "--log-level",
    envvar="KUWA_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="How much to log. [default: info]",
)
burst = click.option(
    "--burst",
    envvar="KUWA_BURST",
    show_envvar=True,
    is_flag=True,
    help="Exit when there is no more work (for tests and batch runs).",
)
