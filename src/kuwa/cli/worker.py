"""``kuwa-cli worker start``: the RQ worker for background work (an import's answers)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings, settings_environment, setup_logging


@click.group("worker")
def command() -> None:
    """Background work on Kuwa's Redis (RQ): the answers of imported prompts and the
    dashboard's stress runs."""


@command.command("start")
@options.redis_url
@options.data_dir
@options.database_url
@options.log_level
@options.burst
def start(
    redis_url: str | None,
    data_dir: Path | None,
    database_url: str | None,
    log_level: str | None,
    burst: bool,
) -> None:
    """Run background jobs (RQ queue kuwa-rooms) until stopped; with --burst, until the queue
    is empty. It needs the database and Redis the gateways use."""
    from rq import Worker

    from kuwa.web.background import QUEUE, rq_connection

    settings = build_settings(
        redis_url=redis_url, data_dir=data_dir, database_url=database_url, log_level=log_level
    )
    setup_logging(settings, "worker")
    settings.load_secret_key()
    os.environ.update(settings_environment(settings))  # the jobs rebuild settings from it
    worker = Worker([QUEUE], connection=rq_connection(settings.effective_redis_url))
    worker.work(burst=burst, logging_level=settings.log_level.upper(), with_scheduler=False)
