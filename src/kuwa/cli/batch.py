"""``kuwa-cli batch``: run a file of prompts through several models of any Kuwa gateway.

An HTTP client only (the gateway's OpenAI API, streamed, through httpx and httpx-sse, which a
plain install has): no database, no Redis. Results are appended to a JSONL file as they
arrive, and a second run with the same output file only sends the (prompt, model) pairs that
are not in it yet.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 600.0
RETRIES = 2
"""Times a request is sent again when it could not connect or the gateway said 408, 409, 429
or 5xx before any answer came (after 0.5 s, then 1 s, or the Retry-After it sent)."""
RETRY_STATUS = frozenset({408, 409, 429})
MAX_ROWS = 10**9
"""No row limit of the chat import (the results are streamed to a file)."""


class BatchUsageError(click.ClickException):
    """``Error: …`` on stderr and exit code 2 (a bad file, model, token or gateway)."""

    exit_code = 2


@dataclass(frozen=True)
class Prompt:
    index: int  # 0-based among the prompts (the user rows) of the file
    line: int  # line of the input file it came from
    content: str


@dataclass
class Result:
    prompt: Prompt
    model: str
    answer: str = ""
    usage: dict[str, int] | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "index": self.prompt.index,
            "line": self.prompt.line,
            "model": self.model,
            "prompt": self.prompt.content,
            "answer": self.answer,
            "usage": self.usage,
            "ttft_s": self.ttft_s,
            "total_s": self.total_s,
            "finish_reason": self.finish_reason,
            "error": self.error,
        }


# --- input and earlier results ----------------------------------------------------------------
def read_prompts(path: Path) -> list[Prompt]:
    """The ``user`` rows of ``path`` (the import file rules), in file order."""
    from kuwa.rooms.formats import FormatError
    from kuwa.rooms.formats_parser import parse

    try:
        with path.open("rb") as stream:
            rows = [row for row in parse(stream, max_rows=MAX_ROWS) if row.role == "user"]
    except FormatError as exc:
        raise BatchUsageError(f"{exc.message} (in {path})") from None
    except OSError as exc:
        raise BatchUsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    prompts = [Prompt(i, row.line, row.content) for i, row in enumerate(rows)]
    if not prompts:
        raise BatchUsageError(f"{path} has no prompts (no user messages)")
    return prompts


def read_done(out: Path, prompts: Sequence[Prompt]) -> dict[tuple[int, str], str]:
    """(index, model) -> answer for every pair ``out`` already holds without an error.

    A line cut short (a run stopped while writing) is ignored; a line whose prompt differs from
    the prompt file is a usage error, so results of another file are never mixed in.
    """
    done: dict[tuple[int, str], str] = {}
    try:
        text = out.read_text(encoding="utf-8")
    except FileNotFoundError:
        return done
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchUsageError(f"cannot read {out}: {exc}") from None
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            rec = json.loads(raw)
            index, model, prompt = rec["index"], rec["model"], rec["prompt"]
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(index, int) or not isinstance(model, str) or rec.get("error"):
            continue
        if index < 0 or index >= len(prompts) or prompts[index].content != prompt:
            raise BatchUsageError(
                f"{out} line {number} holds a result for another prompt {index}; "
                "was it written for another prompt file? Choose another --out."
            )
        done[(index, model)] = str(rec.get("answer") or "")
    return done


# --- progress on stderr -----------------------------------------------------------------------
@dataclass
class Progress:
    total: int
    stream: IO[str]
    tty: bool
    width: int = 30
    finished: int = 0
    failed: int = 0
    _shown_step: int = field(default=-1, repr=False)

    def text(self) -> str:
        filled = self.width * self.finished // self.total if self.total else self.width
        bar = "#" * filled + " " * (self.width - filled)
        return f"[{bar}] {self.finished}/{self.total} done, {self.failed} failed"

    def update(self, ok: bool) -> None:
        self.finished += 1
        self.failed += 0 if ok else 1
        self.show()

    def show(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.text())
            self.stream.flush()
            return
        # Not a terminal: one plain line per tenth of the work (and at the end).
        step = 10 * self.finished // self.total if self.total else 10
        if step != self._shown_step:
            self._shown_step = step
            self.stream.write(self.text() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --- the run ----------------------------------------------------------------------------------
@dataclass
class Batch:
    client: httpx.AsyncClient
    prompts: list[Prompt]
    models: list[str]
    out: IO[str]
    progress: Progress
    done: dict[tuple[int, str], str]
    concurrency: int
    semaphore: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.semaphore = asyncio.Semaphore(self.concurrency)

    def pending(self, model: str) -> list[Prompt]:
        return [p for p in self.prompts if (p.index, model) not in self.done]

    def write(self, result: Result) -> None:
        self.out.write(json.dumps(result.record(), ensure_ascii=False) + "\n")
        self.out.flush()
        self.progress.update(result.error is None)

    async def ask(self, prompt: Prompt, model: str, history: list[dict[str, str]]) -> Result:
        """One streamed chat completion; any failure becomes the result's ``error``."""
        import httpx
        from httpx_sse import SSEError

        result = Result(prompt, model)
        body = {
            "model": model,
            "messages": [*history, {"role": "user", "content": prompt.content}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        parts: list[str] = []
        async with self.semaphore:
            start = time.perf_counter()
            try:
                await self.stream(body, result, parts, start)
            except httpx.TransportError as exc:
                result.error = f"cannot reach the gateway: {str(exc) or type(exc).__name__}"
            except SSEError as exc:
                result.error = f"bad stream: {exc}"
            result.total_s = round(time.perf_counter() - start, 6)
        result.answer = "".join(parts)
        return result

    async def stream(
        self, body: dict[str, Any], result: Result, parts: list[str], start: float
    ) -> None:
        """Send ``body`` (again on a connect failure or a busy answer, ``RETRIES`` times) and
        read its events into ``result`` and ``parts``."""
        import httpx
        from httpx_sse import aconnect_sse

        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES
            try:
                async with aconnect_sse(
                    self.client, "POST", "chat/completions", json=body
                ) as source:
                    response = source.response
                    if response.status_code != 200:
                        await response.aread()
                        if last or not _retryable(response.status_code):
                            result.error = f"HTTP {response.status_code}: {error_text(response)}"
                            return
                        delay = _retry_delay(response, attempt)
                    else:
                        async for event in source.aiter_sse():
                            if event.data == "[DONE]":
                                return
                            _read_chunk(event.data, result, parts, start)
                            if result.error is not None:
                                return
                        result.error = "the stream ended without [DONE]: the answer may be cut"
                        return
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if last:
                    raise
                delay = _retry_delay(None, attempt)
            await asyncio.sleep(delay)

    async def run(self, chained: bool) -> None:
        if chained:
            await asyncio.gather(*(self.chain(model) for model in self.models))
            return
        queue: asyncio.Queue[tuple[Prompt, str]] = asyncio.Queue()
        for prompt in self.prompts:  # prompt-major, so every model starts at once
            for model in self.models:
                if (prompt.index, model) not in self.done:
                    queue.put_nowait((prompt, model))
        workers = min(self.concurrency, queue.qsize())
        await asyncio.gather(*(self.worker(queue) for _ in range(workers)))

    async def worker(self, queue: asyncio.Queue[tuple[Prompt, str]]) -> None:
        while not queue.empty():
            prompt, model = queue.get_nowait()
            self.write(await self.ask(prompt, model, []))

    async def chain(self, model: str) -> None:
        """The prompts in file order, each with the earlier prompts and this model's answers."""
        history: list[dict[str, str]] = []
        broken: Prompt | None = None
        for prompt in self.prompts:
            saved = self.done.get((prompt.index, model))
            if saved is None:
                if broken is not None:
                    self.write(
                        Result(
                            prompt,
                            model,
                            error=f"not sent: prompt {broken.index} (line {broken.line}) "
                            "failed earlier in the chain",
                        )
                    )
                    continue
                result = await self.ask(prompt, model, history)
                self.write(result)
                if result.error is not None:
                    broken = prompt
                    continue
                saved = result.answer
            history += [
                {"role": "user", "content": prompt.content},
                {"role": "assistant", "content": saved},
            ]


def _read_chunk(data: str, result: Result, parts: list[str], start: float) -> None:
    """One event of the stream: text, finish reason and usage, or the error it carries."""
    try:
        chunk = json.loads(data)
    except ValueError:
        result.error = "bad stream: an event is not JSON"
        return
    if not isinstance(chunk, dict):
        return
    if chunk.get("error"):  # an error in the middle of the stream
        result.error = message_of(chunk) or str(chunk["error"])
        return
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            if result.ttft_s is None:
                result.ttft_s = round(time.perf_counter() - start, 6)
            parts.append(content)
        if choice.get("finish_reason"):
            result.finish_reason = choice["finish_reason"]
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        result.usage = {
            name: int(usage.get(name) or 0)
            for name in ("prompt_tokens", "completion_tokens", "total_tokens")
        }


def message_of(body: object) -> str | None:
    """The message of Kuwa's error shape (``{"error": {"message": …}}``), if ``body`` is one."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return None


def error_text(response: httpx.Response) -> str:
    """The gateway's own message when it sent one, else the HTTP reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return message_of(body) or response.reason_phrase or "no message"


def _retryable(status: int) -> bool:
    return status in RETRY_STATUS or status >= 500


def _retry_delay(response: httpx.Response | None, attempt: int) -> float:
    """Retry-After (seconds, up to a minute) when the gateway sent it, else 0.5 s, 1 s, …"""
    if response is not None:
        try:
            wait = float(response.headers.get("retry-after", ""))
            return min(60.0, max(0.0, wait))
        except ValueError:
            pass
    return 0.5 * 2.0**attempt


async def check_gateway(client: httpx.AsyncClient, url: str) -> None:
    """Fail fast (exit 2) when the gateway cannot be reached or refuses the token."""
    import httpx

    try:
        response = await client.get("models")
    except httpx.TransportError as exc:
        raise BatchUsageError(
            f"cannot reach the Kuwa gateway at {url} ({str(exc) or type(exc).__name__}); "
            "check --url / KUWA_URL"
        ) from None
    if response.status_code != 200:
        raise BatchUsageError(f"the gateway at {url} said: {error_text(response)}")


async def run_batch(
    prompts: list[Prompt],
    models: list[str],
    *,
    url: str,
    token: str,
    out: Path,
    chained: bool,
    concurrency: int,
) -> tuple[int, int, int]:
    """Send every pending pair; (skipped, sent, failed)."""
    import httpx

    done = read_done(out, prompts)
    total = len(prompts) * len(models)
    skipped = sum(1 for p in prompts for m in models if (p.index, m) in done)
    err = sys.stderr
    if skipped:
        click.echo(f"{skipped} of {total} pairs are already in {out}; skipping them", err=True)
    client = httpx.AsyncClient(
        base_url=url.rstrip("/") + "/v1/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
        limits=httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency),
    )
    async with client:
        await check_gateway(client, url)
        if skipped == total:
            return skipped, 0, 0
        _end_with_newline(out)
        progress = Progress(total - skipped, err, tty=err.isatty())
        with out.open("a", encoding="utf-8") as fh:
            batch = Batch(client, prompts, models, fh, progress, done, concurrency)
            try:
                await batch.run(chained)
            finally:
                progress.close()
        return skipped, progress.finished, progress.failed


def _end_with_newline(out: Path) -> None:
    """A run stopped mid-write may leave half a line; start the next record on its own line."""
    try:
        with out.open("rb") as fh:
            fh.seek(0, 2)
            if fh.tell() == 0:
                return
            fh.seek(-1, 2)
            last = fh.read(1)
    except FileNotFoundError:
        return
    if last != b"\n":
        with out.open("ab") as fh:
            fh.write(b"\n")


@click.command("batch")
@click.argument(
    "prompts_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE"
)
@click.option(
    "--model",
    "-m",
    "models",
    envvar="KUWA_BATCH_MODEL",
    show_envvar=True,
    multiple=True,
    required=True,
    help="Access code of a model to ask; repeat for several (in the variable: space-separated).",
)
@click.option(
    "--out",
    "-o",
    envvar="KUWA_BATCH_OUT",
    show_envvar=True,
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="JSONL file the results are appended to; pairs already in it are skipped.",
)
@click.option(
    "--chained",
    envvar="KUWA_BATCH_CHAINED",
    show_envvar=True,
    is_flag=True,
    default=False,
    help="One conversation per model: each prompt carries the earlier prompts and that "
    "model's answers (sequential per model; the models still run in parallel).",
)
@click.option(
    "--concurrency",
    "-c",
    envvar="KUWA_BATCH_CONCURRENCY",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=4,
    help="Most requests in flight at once, over all models.",
)
@click.option(
    "--url",
    envvar="KUWA_URL",
    show_envvar=True,
    default=DEFAULT_URL,
    help="Base URL of the Kuwa gateway.",
)
@click.option(
    "--token",
    envvar="KUWA_TOKEN",
    show_envvar=True,
    required=True,
    help="Your API token (kuwa-cli user token, or the web profile page).",
)
def command(
    prompts_file: Path,
    models: tuple[str, ...],
    out: Path,
    chained: bool,
    concurrency: int,
    url: str,
    token: str,
) -> None:
    """Run the prompts of FILE through several models of a Kuwa gateway, into a JSONL file.

    FILE follows the rules of the chat import: a file without a header has one prompt per line
    (blank lines skipped); a TSV file has a `content` header; a JSON file is
    `{"messages": [...]}`. Only the user messages are prompts: assistant rows in the file are
    ignored.

    Each (prompt, model) pair is one streamed request to `POST URL/v1/chat/completions`; its
    result is appended to `--out` as soon as it arrives, one JSON object per line, with
    `index` (0-based prompt number), `line` (of FILE), `model`, `prompt`, `answer`, `usage`
    (`prompt_tokens`, `completion_tokens`), `ttft_s` (seconds to the first text), `total_s`
    and `error` (null, or why the request failed; the run goes on).

    Running the same command again resumes: pairs already in `--out` without an error are
    skipped (with `--chained`, their saved answers are the history of the next prompts).

    Exit status: 0 when every pair succeeded, 1 when some failed (re-run to retry them),
    2 for a bad file, option, token or an unreachable gateway.
    """
    from kuwa.cli.common import run_async

    unique = list(dict.fromkeys(m for m in models if m.strip()))
    if not unique:
        raise click.UsageError("give at least one --model")
    prompts = read_prompts(prompts_file)
    started = time.monotonic()
    skipped, sent, failed = run_async(
        run_batch(
            prompts,
            unique,
            url=url,
            token=token,
            out=out,
            chained=chained,
            concurrency=concurrency,
        )
    )
    elapsed = time.monotonic() - started
    click.echo(
        f"batch: {len(prompts)} prompts x {len(unique)} models; {sent} sent, "
        f"{sent - failed} succeeded, {failed} failed, {skipped} skipped (already done) "
        f"in {elapsed:.1f}s -> {out}",
        err=True,
    )
    if failed:
        raise click.ClickException(
            f"{failed} of {sent} requests failed (see the error field in {out}); "
            "run the same command again to retry them (finished pairs are skipped)"
        )
