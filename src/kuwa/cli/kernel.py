"""``kuwa-cli kernel start``."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings, run_async, setup_logging


@click.group("kernel")
def command() -> None:
    """The kernel: executor health and job recovery."""


@command.command("start")
@options.redis_url
@options.redis_data_dir
@options.log_level
@options.burst
@click.option(
    "--pool",
    envvar="KUWA_POOL",
    show_envvar=True,
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Pool file (TOML/YAML): executors to start and stop on this node from the queue.",
)
@click.option(
    "--metrics-port",
    "kernel_metrics_port",
    envvar="KUWA_KERNEL_METRICS_PORT",
    show_envvar=True,
    default=None,
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics at http://KUWA_METRICS_HOST:PORT/metrics. [default: off]",
)
def start(
    redis_url: str | None,
    data_dir: Path | None,
    log_level: str | None,
    burst: bool,
    pool: Path | None,
    kernel_metrics_port: int | None,
) -> None:
    """Watch executors, recover jobs whose executor died, enforce deadlines, and (with
    --pool) scale executors on this node. One kernel leads; others wait as standbys."""
    from kuwa.broker import connect
    from kuwa.errors import KuwaError
    from kuwa.kernel import Kernel
    from kuwa.kernel.scaler import LocalScaler, Pool

    settings = build_settings(
        redis_url=redis_url,
        data_dir=data_dir,
        log_level=log_level,
        pool=pool,
        kernel_metrics_port=kernel_metrics_port,
    )
    setup_logging(settings, "kernel")
    scaler = None
    if settings.pool is not None:
        try:
            scaler = LocalScaler(Pool.load_all(settings.pool), dict(os.environ))
        except KuwaError as exc:
            raise click.UsageError(exc.message) from None

    async def main() -> None:
        redis = connect(settings.effective_redis_url)
        kernel = Kernel(settings, redis, scaler=scaler)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, kernel.request_stop)
        server = None
        if settings.kernel_metrics_port is not None:
            from kuwa.kernel import metrics
            from kuwa.metrics_server import serve_metrics

            server = await serve_metrics(
                [metrics.REGISTRY],
                settings.metrics_host,
                settings.kernel_metrics_port,
                settings.metrics_token,
            )
        try:
            await kernel.run(burst=burst)
        finally:
            if server is not None:
                await server.stop()
            await redis.aclose()

    run_async(main(), settings.event_loop)
