"""``kuwa-cli executor start`` and ``kuwa-cli executor list``."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys

import click
import orjson

from kuwa.cli import options
from kuwa.cli.common import build_settings, setup_logging


def _codes(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """Accept ``--access-code a --access-code b`` and ``KUWA_ACCESS_CODE=a,b``."""
    out = [part.strip() for item in value for part in item.split(",") if part.strip()]
    return tuple(dict.fromkeys(out))


@click.group("executor")
def command() -> None:
    """Executors: run a model and serve its queue(s)."""


@command.command("start")
@click.option(
    "--access-code",
    "access_codes",
    multiple=True,
    envvar="KUWA_ACCESS_CODE",
    show_envvar=True,
    callback=_codes,
    help="Access code to serve; repeat for several (comma-separated in the variable).",
)
@click.option(
    "--backend",
    envvar="KUWA_BACKEND",
    show_envvar=True,
    default=None,
    help="Backend: an entry point of group kuwa.executors. [default: debug]",
)
@click.option(
    "--model", envvar="KUWA_MODEL", show_envvar=True, default=None, help="Model id or path."
)
@click.option(
    "--max-concurrency",
    envvar="KUWA_MAX_CONCURRENCY",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=None,
    help="Jobs run at once. [default: 16]",
)
@click.option(
    "--delay",
    envvar="KUWA_DEBUG_DELAY",
    show_envvar=True,
    type=click.FloatRange(min=0),
    default=None,
    help="Debug backend: seconds before each token. [default: 0]",
)
@click.option(
    "--debug-transform",
    envvar="KUWA_DEBUG_TRANSFORM",
    show_envvar=True,
    type=click.Choice(["echo", "reverse", "upper"]),
    default=None,
    help="Debug backend: what to do to the last user message. [default: echo]",
)
@click.option(
    "--name",
    envvar="KUWA_EXECUTOR_NAME",
    show_envvar=True,
    default=None,
    help="Name to register under. [default: HOST-PID-RANDOM]",
)
@click.option(
    "--gpu-memory-utilization",
    envvar="KUWA_GPU_MEMORY_UTILIZATION",
    show_envvar=True,
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="vLLM: fraction of GPU memory to use.",
)
@click.option(
    "--tensor-parallel-size",
    envvar="KUWA_TENSOR_PARALLEL_SIZE",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=None,
    help="vLLM: GPUs to split the model over.",
)
@click.option(
    "--max-model-len",
    envvar="KUWA_MAX_MODEL_LEN",
    show_envvar=True,
    type=click.IntRange(min=16),
    default=None,
    help="Context window in tokens.",
)
@click.option(
    "--dtype",
    envvar="KUWA_DTYPE",
    show_envvar=True,
    default=None,
    help="Weights dtype: auto, bfloat16, float16, float32.",
)
@click.option(
    "--quantization",
    envvar="KUWA_QUANTIZATION",
    show_envvar=True,
    default=None,
    help="vLLM quantization method.",
)
@click.option(
    "--trust-remote-code",
    envvar="KUWA_TRUST_REMOTE_CODE",
    show_envvar=True,
    is_flag=True,
    default=None,
    help="Allow the model's own Python code to run.",
)
@click.option(
    "--load-format",
    envvar="KUWA_LOAD_FORMAT",
    show_envvar=True,
    default=None,
    help="vLLM load format ('dummy': random weights, for benchmarks).",
)
@click.option(
    "--enforce-eager",
    envvar="KUWA_ENFORCE_EAGER",
    show_envvar=True,
    is_flag=True,
    default=None,
    help="vLLM: skip CUDA graph capture.",
)
@options.redis_url
@options.log_level
@options.burst
def start(
    access_codes: tuple[str, ...],
    backend: str | None,
    model: str | None,
    max_concurrency: int | None,
    delay: float | None,
    debug_transform: str | None,
    name: str | None,
    gpu_memory_utilization: float | None,
    tensor_parallel_size: int | None,
    max_model_len: int | None,
    dtype: str | None,
    quantization: str | None,
    trust_remote_code: bool | None,
    load_format: str | None,
    enforce_eager: bool | None,
    redis_url: str | None,
    log_level: str | None,
    burst: bool,
) -> None:
    """Pull jobs for the access codes and stream answers until SIGTERM (which drains)."""
    from kuwa.broker import connect
    from kuwa.executors import BackendError, load_backend
    from kuwa.executors.runtime import ExecutorRuntime

    settings = build_settings(
        access_code=access_codes or None,
        backend=backend,
        max_concurrency=max_concurrency,
        debug_delay=delay,
        debug_transform=debug_transform,
        executor_name=name,
        model=model,
        gpu_memory_utilization=gpu_memory_utilization,
        tensor_parallel_size=tensor_parallel_size,
        max_model_len=max_model_len,
        dtype=dtype,
        quantization=quantization,
        trust_remote_code=trust_remote_code or None,
        load_format=load_format,
        enforce_eager=enforce_eager or None,
        redis_url=redis_url,
        log_level=log_level,
    )
    if not settings.access_code:
        raise click.UsageError("give at least one --access-code (or KUWA_ACCESS_CODE)")
    setup_logging(settings, "executor")
    try:
        backend_cls = load_backend(settings.backend)
    except (LookupError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None

    async def main() -> None:
        redis = connect(settings.effective_redis_url)
        try:
            runtime = ExecutorRuntime(settings, backend_cls(settings, settings.model), redis)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.request_stop)
        try:
            await runtime.run(burst=burst)
        except BackendError as exc:
            raise click.ClickException(f"the {settings.backend} backend failed: {exc}") from None
        finally:
            await redis.aclose()

    asyncio.run(main())


@command.command("list")
@options.redis_url
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar="KUWA_JSON",
    show_envvar=True,
    help="Print JSON instead of a table.",
)
def list_(redis_url: str | None, as_json: bool) -> None:
    """Show live executors."""
    from kuwa.broker import Registry, connect

    settings = build_settings(redis_url=redis_url)

    async def main() -> list[dict[str, object]]:
        redis = connect(settings.effective_redis_url)
        try:
            return [
                {
                    "id": e.id,
                    "access_codes": list(e.access_codes),
                    "backend": e.backend,
                    "model": e.model,
                    "host": e.host,
                    "slots_used": e.used,
                    "slots": e.slots,
                    "tokens_per_s": e.tokens_per_s,
                    "state": e.state,
                    "engine": e.engine,
                    "heartbeat": e.heartbeat,
                }
                for e in await Registry(redis, ttl=settings.heartbeat_ttl).executors()
            ]
        finally:
            await redis.aclose()

    rows = asyncio.run(main())
    if as_json:
        sys.stdout.write(orjson.dumps(rows).decode() + "\n")
        return
    if not rows:
        click.echo("no live executors")
        return
    header = ("ID", "ACCESS CODES", "BACKEND", "MODEL", "HOST", "SLOTS", "TOK/S", "HEARTBEAT")
    table = [header] + [
        (
            str(r["id"]),
            ",".join(r["access_codes"]),  # type: ignore[arg-type]
            str(r["backend"]),
            str(r["model"]),
            str(r["host"]),
            f"{r['slots_used']}/{r['slots']}",
            str(r["tokens_per_s"]),
            dt.datetime.fromtimestamp(float(r["heartbeat"])).strftime("%H:%M:%S"),  # type: ignore[arg-type]
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
