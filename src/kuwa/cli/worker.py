"""``kuwa-cli worker start``: the RQ worker for background work (an import's answers)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings, settings_environment, setup_logging

log = logging.getLogger("kuwa.worker")


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
    from redis.exceptions import RedisError
    from rq import Worker

    from kuwa.broker.connection import connect_sync
    from kuwa.web.background import QUEUE

    settings = build_settings(
        redis_url=redis_url, data_dir=data_dir, database_url=database_url, log_level=log_level
    )
    setup_logging(settings, "worker")
    settings.load_secret_key()
    os.environ.update(settings_environment(settings))  # the jobs rebuild settings from it
    connection = connect_sync(settings.effective_redis_url)
    pause = 1.0
    while True:  # every exit below is named and logged
        worker = Worker([QUEUE], connection=connection)
        began = time.monotonic()
        try:
            worker.work(burst=burst, logging_level=settings.log_level.upper(), with_scheduler=False)
        except RedisError as exc:  # before rq's loop began (registering the worker)
            log.warning("worker: Redis failed while starting (%s)", exc)
        else:
            if burst:
                log.info("worker: the queue is empty (--burst); exiting")
                return
            if worker._stop_requested:  # rq's flag for SIGINT/SIGTERM
                log.info("worker: stopped on request")
                return
        # rq's loop quits on an error outside its wait for a job (a heartbeat while Redis
        # restarts or fails over, above all): carry on, as a supervisor would restart it.
        if time.monotonic() - began > 60:
            pause = 1.0
        log.warning("worker: the RQ loop ended by itself; starting it again in %g s", pause)
        time.sleep(pause)
        pause = min(pause * 2, 30.0)
