"""``kuwa-cli executor start`` and ``kuwa-cli executor list``."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from kuwa.cli import options
from kuwa.cli.common import build_settings, run_async, setup_logging

F = TypeVar("F", bound=Callable[..., Any])


def _codes(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """Accept ``--access-code a --access-code b`` and ``KUWA_ACCESS_CODE=a,b``."""
    out = [part.strip() for item in value for part in item.split(",") if part.strip()]
    return tuple(dict.fromkeys(out))


@click.group("executor")
def command() -> None:
    """Executors: run a model and serve its queue(s)."""


def _setting_option(*flags: str, field: str, **kw: Any) -> Callable[[F], F]:
    """An option that sets the Settings field ``field`` (read from ``KUWA_<FIELD>`` too)."""
    return click.option(
        *flags, field, envvar="KUWA_" + field.upper(), show_envvar=True, default=None, **kw
    )


START_OPTIONS = [
    click.option(
        "--access-code",
        "access_code",
        multiple=True,
        envvar="KUWA_ACCESS_CODE",
        show_envvar=True,
        callback=_codes,
        help="Access code to serve; repeat for several (comma-separated in the variable). "
        "[default: a name derived from --model]",
    ),
    _setting_option(
        "--backend",
        field="backend",
        help="vllm, transformers, embeddings, openai, debug, or another kuwa.executors entry "
        "point. "
        "[default: vllm with a model, vLLM and a GPU; transformers with a model; else debug]",
    ),
    _setting_option("--model", field="model", help="Model: a Hugging Face id or a local path."),
    _setting_option(
        "--max-concurrency",
        field="max_concurrency",
        type=click.IntRange(min=1),
        help="Jobs run at once (vLLM batches them). [default: 16]",
    ),
    _setting_option("--system-prompt", field="system_prompt", help="System prompt for every job."),
    _setting_option(
        "--modelfile",
        field="modelfile",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The model's Modelfile (SYSTEM, PARAMETER, MESSAGE, TEMPLATE, BEFORE-PROMPT, …).",
    ),
    _setting_option(
        "--rules",
        field="rules",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Rule file (YAML or TOML): input/output filters, parameter bounds, trimming; "
        "see docs/rules.md.",
    ),
    _setting_option("--name", field="executor_name", help="Name to register under."),
    _setting_option(
        "--gpu-memory-utilization",
        field="gpu_memory_utilization",
        type=click.FloatRange(0, 1, min_open=True),
        help="vLLM: fraction of GPU memory to use.",
    ),
    _setting_option(
        "--tensor-parallel-size",
        field="tensor_parallel_size",
        type=click.IntRange(min=1),
        help="vLLM: GPUs to split the model over.",
    ),
    _setting_option(
        "--max-model-len",
        field="max_model_len",
        type=click.IntRange(min=16),
        help="Context window in tokens. [default: the model's]",
    ),
    _setting_option("--dtype", field="dtype", help="Weights dtype: auto, bfloat16, float16, …"),
    _setting_option("--quantization", field="quantization", help="vLLM quantization method."),
    _setting_option(
        "--trust-remote-code",
        field="trust_remote_code",
        is_flag=True,
        help="Allow the model's own Python code to run.",
    ),
    _setting_option(
        "--load-format", field="load_format", help="vLLM load format ('dummy': random weights)."
    ),
    _setting_option(
        "--enforce-eager/--no-enforce-eager",
        field="enforce_eager",
        help="vLLM: no CUDA graphs or compilation. [default: on for the CPU build, off on GPUs]",
    ),
    _setting_option(
        "--kv-cache-gib",
        field="kv_cache_gib",
        type=click.FloatRange(0, min_open=True),
        help="vLLM: memory for the KV cache in GiB. [default on CPU: 4, or a quarter of the "
        "free RAM if less]",
    ),
    _setting_option(
        "--base-url", field="upstream_base_url", help="openai backend: the upstream API URL."
    ),
    _setting_option(
        "--api-key",
        field="upstream_api_key",
        help="openai backend: the upstream API key (prefer the variable: ps shows arguments).",
    ),
    _setting_option(
        "--upstream-model", field="upstream_model", help="openai backend: the upstream's model."
    ),
    _setting_option(
        "--upstream-timeout",
        field="upstream_timeout",
        type=click.FloatRange(min=0, min_open=True),
        help="openai backend: seconds to wait for the upstream. [default: 60]",
    ),
    _setting_option(
        "--delay",
        field="debug_delay",
        type=click.FloatRange(min=0),
        help="Debug backend: seconds before each token. [default: 0]",
    ),
    _setting_option(
        "--debug-transform",
        field="debug_transform",
        type=click.Choice(["echo", "reverse", "upper", "history", "embed"]),
        help="Debug backend: what to do to the last user message (history: answer with the "
        "whole conversation; embed: be an embedding model of hashed words). [default: echo]",
    ),
    _setting_option(
        "--metrics-port",
        field="executor_metrics_port",
        type=click.IntRange(1, 65535),
        help="Serve Prometheus metrics at http://KUWA_METRICS_HOST:PORT/metrics. [default: off]",
    ),
    options.redis_url,
    options.redis_data_dir,
    options.log_level,
    options.burst,
]


def _apply(decorators: list[Callable[[F], F]]) -> Callable[[F], F]:
    def wrap(fn: F) -> F:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return wrap


@command.command("start")
@_apply(START_OPTIONS)
def start(burst: bool, **values: Any) -> None:
    """Pull jobs for the access codes and stream answers until SIGTERM (which drains).

    \b
    Examples:
      kuwa-cli executor start --model Qwen/Qwen2.5-7B-Instruct
      kuwa-cli executor start --backend openai --model gpt-4o-mini \\
          --base-url https://api.openai.com/v1 --api-key "$OPENAI_API_KEY"
      kuwa-cli executor start --backend embeddings --model ./bge-m3 --access-code bge-m3
      kuwa-cli executor start --backend debug --access-code echo
    """
    from kuwa.broker import connect
    from kuwa.errors import KuwaError
    from kuwa.executors import BackendError, access_code_for, default_backend, load_backend
    from kuwa.executors.runtime import ExecutorRuntime

    values["access_code"] = values["access_code"] or None
    for flag in ("trust_remote_code",):
        values[flag] = values[flag] or None
    settings = build_settings(**values)
    setup_logging(settings, "executor")
    log = logging.getLogger("kuwa.executor")
    if settings.backend is None:
        name, reason = default_backend(settings.model)
        log.info("%s", reason)
        settings = settings.replace(backend=name)
    if not settings.access_code:
        if not settings.model:
            raise click.UsageError("give --access-code (or --model, to derive one from it)")
        settings = settings.replace(access_code=(access_code_for(settings.model),))
    assert settings.backend is not None
    try:
        backend_cls = load_backend(settings.backend)
    except (LookupError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None

    async def main() -> None:
        redis = connect(settings.effective_redis_url)
        try:
            runtime = ExecutorRuntime(settings, backend_cls(settings, settings.model), redis)
        except (ValueError, KuwaError) as exc:  # bad access code, Modelfile or rule file
            await redis.aclose()
            raise click.UsageError(str(exc)) from None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.request_stop)
        server = None
        if settings.executor_metrics_port is not None:
            from kuwa.executors import metrics
            from kuwa.metrics_server import serve_metrics

            server = await serve_metrics(
                [metrics.REGISTRY],
                settings.metrics_host,
                settings.executor_metrics_port,
                settings.metrics_token,
            )
        try:
            await runtime.run(burst=burst)
        except BackendError as exc:
            raise click.ClickException(f"the {settings.backend} backend failed: {exc}") from None
        finally:
            if server is not None:
                await server.stop()
            await redis.aclose()

    run_async(main(), settings.event_loop)


@command.command("list")
@options.redis_url
@options.redis_data_dir
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar="KUWA_JSON",
    show_envvar=True,
    help="Print JSON instead of a table.",
)
def list_(redis_url: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Show live executors."""
    from kuwa.broker import Registry, connect

    settings = build_settings(redis_url=redis_url, data_dir=data_dir)

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
                    "rules": e.rules,
                    "heartbeat": e.heartbeat,
                }
                for e in await Registry(redis, ttl=settings.heartbeat_ttl).executors(
                    include_dead=True
                )
            ]
        finally:
            await redis.aclose()

    rows = run_async(main())
    if as_json:
        sys.stdout.write(orjson.dumps(rows).decode() + "\n")
        return
    if not rows:
        click.echo("no live executors")
        return
    header = (
        "ID",
        "ACCESS CODES",
        "BACKEND",
        "MODEL",
        "HOST",
        "SLOTS",
        "TOK/S",
        "HEARTBEAT",
        "STATE",
    )
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
            str(r["state"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
