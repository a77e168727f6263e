"""``kuwa-cli gateway start``."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings, settings_environment, setup_logging
from kuwa.cli.db import prepare_database


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
@options.access_log
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
    access_log: bool | None,
    workers: int | None,
) -> None:
    """Serve the API and web UI with uvicorn."""
    import uvicorn

    settings = build_settings(
        host=host,
        port=port,
        redis_url=redis_url,
        data_dir=data_dir,
        database_url=database_url,
        log_level=log_level,
        access_log=access_log,
        workers=workers,
    )
    setup_logging(settings, "gateway")
    prepare_database(settings)  # migrate (or refuse a database that is behind) before serving
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "log_config": None,
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": 5,
        # Forwarded headers are trusted only from KUWA_TRUSTED_PROXIES, by Kuwa itself.
        "proxy_headers": False,
    }
    with metrics_folder(settings.workers):
        if settings.workers == 1:
            from kuwa.gateway import create_app

            uvicorn.run(create_app(settings), **common)
            return
        # Worker processes build their own app from the environment: hand the options on.
        os.environ.update(settings_environment(settings))
        uvicorn.run(
            "kuwa.gateway.app:create_app_from_env",
            factory=True,
            workers=settings.workers,
            **common,
        )


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def metrics_folder(workers: int) -> Iterator[None]:
    """With several workers, a fresh folder where each keeps its metrics for /metrics to sum
    (prometheus_client's multiprocess mode), removed at exit. It is made inside
    ``PROMETHEUS_MULTIPROC_DIR`` when the operator set one (e.g. a tmpfs), else in the
    system's temporary folder; either way no stale files of an earlier run are counted.
    Set before anything imports prometheus_client: the mode is chosen at import."""
    parent = os.environ.get(MULTIPROC_ENV)
    if workers == 1 and not parent:
        yield
        return
    folder = tempfile.mkdtemp(prefix="kuwa-metrics-", dir=parent or None)
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if parent:
            os.environ[MULTIPROC_ENV] = parent
        else:
            os.environ.pop(MULTIPROC_ENV, None)
