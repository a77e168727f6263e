"""``kuwa-cli gateway start``."""

from __future__ import annotations

from pathlib import Path

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings, setup_logging


@click.group("gateway")
def command() -> None:
    """The HTTP gateway (API, web UI, SSE streams)."""


@command.command("start")
@options.host
@options.port
@options.redis_url
@options.data_dir
@options.database_url
@options.log_level
def start(
    host: str | None,
    port: int | None,
    redis_url: str | None,
    data_dir: Path | None,
    database_url: str | None,
    log_level: str | None,
) -> None:
    """Serve the API and web UI with uvicorn."""
    import uvicorn

    from kuwa.gateway import create_app

    settings = build_settings(
        host=host,
        port=port,
        redis_url=redis_url,
        data_dir=data_dir,
        database_url=database_url,
        log_level=log_level,
    )
    setup_logging(settings, "gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,
        timeout_graceful_shutdown=5,
    )
