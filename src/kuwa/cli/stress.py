"""``kuwa-cli stress``: load a Kuwa gateway and report like ``vllm bench serve``.

A thin wrapper around :func:`kuwa.stress.run_stress`: options in, a live progress line on
stderr, the report on stdout, the result as JSON with ``--output``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from kuwa.cli.options import option

if TYPE_CHECKING:
    from kuwa.stress import Progress, StressConfig, StressResult

DEFAULT_URL = "http://127.0.0.1:8000"
REDRAW_EVERY = 0.1
"""Seconds between two redraws of the progress line on a terminal."""
PLAIN_EVERY = 5.0
"""Seconds after which a plain progress line is written even without a tenth more done."""


@dataclass
class Display:
    """Progress on ``stream``: one self-updating line on a terminal, else plain lines (one
    per tenth of the requests, or every few seconds)."""

    stream: IO[str]
    tty: bool
    width: int = 30
    _last: Progress | None = field(default=None, repr=False)
    _drawn_at: float = field(default_factory=time.monotonic, repr=False)
    _step: int = field(default=0, repr=False)

    @staticmethod
    def text(p: Progress, width: int = 30) -> str:
        filled = min(width, width * p.done // p.total) if p.total else width
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} done, "
            f"{p.failed} failed, {p.elapsed:.1f} s, {rate:.1f} req/s"
        )

    def update(self, p: Progress) -> None:
        self._last = p
        now = time.monotonic()
        if self.tty:
            if now - self._drawn_at >= REDRAW_EVERY or p.done == p.total:
                self._drawn_at = now
                self.stream.write("\r" + self.text(p, self.width))
                self.stream.flush()
            return
        step = 10 * p.done // p.total if p.total else 10
        if step > self._step or now - self._drawn_at >= PLAIN_EVERY:
            self._step, self._drawn_at = max(step, self._step), now
            self.stream.write(self.text(p, self.width) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._last is None:
            return
        if self.tty:
            self.stream.write("\r" + self.text(self._last, self.width) + "\n")
        elif self._step < 10:
            self.stream.write(self.text(self._last, self.width) + "\n")
        self.stream.flush()


async def _run(config: StressConfig, display: Display) -> StressResult:
    """The run, with Ctrl-C (SIGINT) stopping it and keeping what was measured."""
    from kuwa.stress import run_stress

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        click.echo("\nstopping: cancelling the requests in flight (Ctrl-C again to quit)", err=True)
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    # Signal handlers belong to the main thread (a CliRunner in a test thread has none).
    handled = threading.current_thread() is threading.main_thread()
    if handled:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        return await run_stress(config, display.update, stop)
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)


def _envvar(name: str) -> str:
    return f"KUWA_STRESS_{name}"


@click.command("stress")
@option(
    "--model",
    "-m",
    "models",
    envvar=_envvar("MODEL"),
    multiple=True,
    required=True,
    help="Access code of a model to load; repeat for several, used in turn (in the variable: "
    "space-separated).",
)
@option(
    "--concurrency",
    "-c",
    envvar=_envvar("CONCURRENCY"),
    type=int,
    default=8,
    help="Requests in flight at once: the workers of a closed loop, or the cap under --rate "
    "(at most 1024).",
)
@option(
    "--requests",
    "-n",
    envvar=_envvar("REQUESTS"),
    type=int,
    default=100,
    help="Requests to send in all (at most 100000).",
)
@option(
    "--rate",
    "-r",
    envvar=_envvar("RATE"),
    type=float,
    help="Requests per second arriving as a Poisson process (at most 1000); unset: a closed "
    "loop, each worker sending its next request when the last one ended.",
)
@option(
    "--duration",
    "-d",
    envvar=_envvar("DURATION"),
    type=float,
    help="Seconds after which no new request starts (at most 3600); the run ends at "
    "--requests or --duration, whichever comes first.",
)
@option(
    "--prompt-file",
    envvar=_envvar("PROMPT_FILE"),
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='Prompts, one per line, or JSONL with a "prompt" string or a "messages" list per '
    "line; used in turn. Unset: a built-in set of short prompts.",
)
@option(
    "--max-tokens",
    envvar=_envvar("MAX_TOKENS"),
    type=int,
    help="max_tokens of every request (unset: the model's own limit).",
)
@option(
    "--timeout",
    envvar=_envvar("TIMEOUT"),
    type=float,
    default=120.0,
    help="Seconds one request may take before it counts as a timeout.",
)
@option(
    "--url",
    envvar="KUWA_URL",
    default=DEFAULT_URL,
    help="Base URL of the Kuwa gateway: this machine, KUWA_PUBLIC_URL's host or a host in "
    "KUWA_STRESS_TARGETS.",
)
@option(
    "--token",
    envvar="KUWA_TOKEN",
    required=True,
    help="Your API token (kuwa-cli user token, or the web profile page).",
)
@option(
    "--output",
    "-o",
    envvar=_envvar("OUTPUT"),
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the result as JSON to this file (the token is not in it).",
)
def command(
    models: tuple[str, ...],
    concurrency: int,
    requests: int,
    rate: float | None,
    duration: float | None,
    prompt_file: Path | None,
    max_tokens: int | None,
    timeout: float,
    url: str,
    token: str,
    output: Path | None,
) -> None:
    """Load a Kuwa gateway with streamed chat requests and report how it kept up.

    Each request is `POST URL/v1/chat/completions` with `stream` and
    `stream_options.include_usage`, asking the models in turn. The report (on stdout) gives,
    like `vllm bench serve`: successful and failed requests, duration, request throughput,
    output and total tokens per second, and the mean, median, P90 and P99 of TTFT (time to
    the first chunk with content), TPOT (time per output token after the first), ITL (gap
    between chunks) and end-to-end latency, then failures grouped by cause. Tokens are the
    gateway's `usage` (the report says when it had to count them itself).

    Only this machine (localhost, 127.0.0.1, ::1), the host of KUWA_PUBLIC_URL and hosts
    listed in KUWA_STRESS_TARGETS may be targeted. Ctrl-C stops the run and reports what
    ended. See docs/stress.md.

    Exit status: 0 when the run finished (some requests may have failed: see the report),
    1 when no request succeeded, 2 for a bad option or a refused target.
    """
    from kuwa.cli.common import build_settings, run_async
    from kuwa.errors import InvalidRequestError
    from kuwa.stress import StressConfig, load_prompts, targets_of

    settings = build_settings()
    try:
        prompts = load_prompts(prompt_file) if prompt_file is not None else ()
        config = StressConfig(
            url=url,
            token=token,
            models=tuple(dict.fromkeys(m.strip() for m in models if m.strip())),
            concurrency=concurrency,
            requests=requests,
            rate=rate,
            duration=duration,
            max_tokens=max_tokens,
            prompts=prompts,
            timeout=timeout,
        )
        config.validate(targets_of(settings))
    except InvalidRequestError as exc:
        raise click.UsageError(exc.message) from None
    shape = f"{rate:g} req/s (Poisson)" if rate else "closed loop"
    click.echo(
        f"stress: up to {requests} requests to {', '.join(config.models)} at {url} "
        f"({shape}, concurrency {concurrency}"
        + (f", at most {duration:g} s" if duration else "")
        + ")",
        err=True,
    )
    display = Display(sys.stderr, tty=sys.stderr.isatty())
    try:
        result = run_async(_run(config, display))
    except InvalidRequestError as exc:
        raise click.UsageError(exc.message) from None
    finally:
        display.close()
    click.echo(result.report())
    if output is not None:
        output.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
        click.echo(f"result written to {output}", err=True)
    if result.completed == 0:
        raise click.ClickException("no request succeeded; see the failures above")
