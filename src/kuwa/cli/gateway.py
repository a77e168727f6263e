"""``kuwa-cli gateway start``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings, settings_environment, setup_logging


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
@click.option(
    "--workers",
    envvar="KUWA_WORKERS",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes, each with its own event loop. [default: 1]",
)
def start(
    host: str | None,
    port: int | None,
    redis_url: str | None,
    data_dir: Path | None,
    database_url: str | None,
    log_level: str | None,
    workers: int | None,
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
        workers=workers,
    )
    setup_logging(settings, "gateway")
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "log_config": None,
        "timeout_graceful_shutdown": 5,
        # Forwarded headers are trusted only from KUWA_TRUSTED_PROXIES, by Kuwa itself.
        "proxy_headers": False,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Worker processes build their own app from the environment: hand the options on.
    os.environ.update(settings_environment(settings))
    uvicorn.run(
        "kuwa.gateway.app:create_app_from_env", factory=True, workers=settings.workers, **common
    )
