"""``kuwa-cli worker start``: the RQ worker for background work (an import's answers)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings, settings_environment, setup_logging

if TYPE_CHECKING:
    from redis import Redis

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
    from kuwa.broker.connection import connect_sync

    settings = build_settings(
        redis_url=redis_url, data_dir=data_dir, database_url=database_url, log_level=log_level
    )
    setup_logging(settings, "worker")
    settings.load_secret_key()
    os.environ.update(settings_environment(settings))  # the jobs rebuild settings from it
    serve(connect_sync(settings.effective_redis_url), burst, settings.log_level.upper())


def serve(connection: Redis, burst: bool, level: str) -> None:
    """rq's worker loop, run again when it ends on a Redis failure. rq quits its loop on an
    error outside its wait for a job (a heartbeat while Redis restarts or fails over, above
    all), and its worker cannot be started twice: a new one carries on, as a supervisor would
    start it again. Every exit is named and logged."""
    from redis.exceptions import RedisError

    from kuwa.web.background import QUEUE

    worker_class = _worker_class()
    pause = 1.0
    while True:
        began = time.monotonic()
        try:
            worker = worker_class([QUEUE], connection=connection)  # it talks to Redis already
            worker.work(burst=burst, logging_level=level, with_scheduler=False)
        except RedisError as exc:
            log.warning("worker: Redis failed (%s)", exc)
        else:
            if burst:
                log.info("worker: the queue is empty (--burst); exiting")
                return
        if worker_class.stop_asked:
            log.info("worker: stopped on request")
            return
        if time.monotonic() - began > 60:
            pause = 1.0
        log.warning("worker: the RQ loop ended by itself; starting it again in %g s", pause)
        time.sleep(pause)
        pause = min(pause * 2, 30.0)


def _worker_class() -> Any:
    """rq's Worker, with two changes:

    - it remembers that SIGINT/SIGTERM asked it to stop (rq keeps no flag when the signal
      comes while it waits for a job, and ends its loop as it does on a Redis failure);
    - its command thread (rq's pub/sub listener) wakes every second, not every minute:
      stopping joins that thread, and with Redis gone (it stops at the same moment under
      `kuwa-cli up`) the thread waited its whole minute, so the worker took a minute to stop.
    """
    from rq import Worker

    class KuwaWorker(Worker):
        stop_asked = False

        def request_stop(self, signum: int, frame: Any) -> None:
            KuwaWorker.stop_asked = True
            super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

        def subscribe(self) -> None:
            channel = self.pubsub_channel_name
            self.log.info("Worker %s: subscribing to channel %s", self.name, channel)
            self.pubsub = self.connection.pubsub()
            self.pubsub.subscribe(**{channel: self.handle_payload})
            self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
                sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler
            )

    return KuwaWorker
