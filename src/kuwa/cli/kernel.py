"""``kuwa-cli kernel start``."""

from __future__ import annotations

import asyncio
import signal

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings, run_async, setup_logging


@click.group("kernel")
def command() -> None:
    """The kernel: executor health and job recovery."""


@command.command("start")
@options.redis_url
@options.log_level
@options.burst
def start(redis_url: str | None, log_level: str | None, burst: bool) -> None:
    """Watch executors and recover jobs whose executor died (one leader at a time)."""
    from kuwa.broker import connect
    from kuwa.kernel import Kernel

    settings = build_settings(redis_url=redis_url, log_level=log_level)
    setup_logging(settings, "kernel")

    async def main() -> None:
        redis = connect(settings.effective_redis_url)
        kernel = Kernel(settings, redis)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, kernel.request_stop)
        try:
            await kernel.run(burst=burst)
        finally:
            await redis.aclose()

    run_async(main(), settings.event_loop)
