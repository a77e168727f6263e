"""Send a stress run's requests and measure them: :func:`run_stress`.

Each request is one streamed ``POST /v1/chat/completions`` (httpx, the stream read with
httpx-sse) asking for ``usage``; every failure (an HTTP status, a timeout, a connection error,
an error event inside the stream) becomes the request's cause, never an exception of the run.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from httpx_sse import SSEError, aconnect_sse

from kuwa.stress.config import StressConfig, configured_targets, messages_of
from kuwa.stress.result import StressResult
from kuwa.stress.stats import TOKENIZE, Sample, figures, token_counting

CONNECT_TIMEOUT = 10.0
PROGRESS_EVERY = 0.5
"""Seconds between progress calls while no request ends."""
MAX_CAUSE = 300


@dataclass
class Progress:
    """How far a run is: ``done`` requests ended (``failed`` of them failed) of ``total``."""

    done: int
    failed: int
    total: int
    elapsed: float


async def run_stress(
    config: StressConfig,
    on_progress: Callable[[Progress], None] | None = None,
    stop: asyncio.Event | None = None,
) -> StressResult:
    """Run ``config`` and return its result.

    The target is checked first (:meth:`StressConfig.validate` with the hosts this deployment
    allows: ``KUWA_PUBLIC_URL`` and ``KUWA_STRESS_TARGETS``). ``on_progress`` is called as
    requests end and every half second. Setting ``stop`` ends the run at once: requests in
    flight are cancelled (counted as ``cancelled``) and the result covers what ended.
    """
    config.validate(configured_targets())
    run = _Run(config, on_progress)
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(config.timeout, connect=min(CONNECT_TIMEOUT, config.timeout)),
        limits=httpx.Limits(
            max_connections=config.concurrency, max_keepalive_connections=config.concurrency
        ),
        trust_env=False,  # no proxy from the environment: the load goes where the URL says
        follow_redirects=False,
    )
    async with client:
        run.client = client
        load = asyncio.create_task(run.load())
        ticker = asyncio.create_task(run.tick())
        stopper = asyncio.create_task(stop.wait()) if stop is not None else None
        try:
            await asyncio.wait(
                [t for t in (load, stopper) if t is not None], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (load, ticker, stopper):
                if task is not None and not task.done():
                    task.cancel()
            others = [t for t in (ticker, stopper, load) if t is not None]
            await asyncio.gather(*others, return_exceptions=True)
        if not load.cancelled():
            load.result()  # a bug in the load loop surfaces here
    return run.result()


class _Run:
    def __init__(
        self, config: StressConfig, on_progress: Callable[[Progress], None] | None
    ) -> None:
        self.config = config
        self.on_progress = on_progress
        self.prompts = config.prompt_set
        self.client: httpx.AsyncClient | None = None
        self.samples: list[Sample] = []
        self.started = 0
        self.failed = 0
        self.started_at = time.time()
        self.t0 = time.perf_counter()
        self.ended: float | None = None
        self.deadline = None if config.duration is None else self.t0 + config.duration
        self.headers = {"Authorization": f"Bearer {config.token}"}

    # --- the clock and progress -----------------------------------------------------------
    def now(self) -> float:
        return time.perf_counter() - self.t0

    def progress(self) -> None:
        if self.on_progress is not None:
            done = len(self.samples)
            self.on_progress(Progress(done, self.failed, self.config.requests, self.now()))

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            self.progress()

    def over(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def record(self, sample: Sample) -> None:
        self.samples.append(sample)
        self.failed += 0 if sample.ok else 1
        self.progress()

    # --- load shapes ----------------------------------------------------------------------
    async def load(self) -> None:
        try:
            if self.config.rate is None:
                await self.closed_loop()
            else:
                await self.open_loop(self.config.rate)
        finally:
            self.ended = self.now()

    async def closed_loop(self) -> None:
        """``concurrency`` workers, each sending its next request when the last one ended."""
        counter = itertools.count()

        async def worker() -> None:
            while not self.over():
                index = next(counter)
                if index >= self.config.requests:
                    return
                self.started += 1
                self.record(await self.send(index))

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.config.concurrency, self.config.requests)):
                group.create_task(worker())

    async def open_loop(self, rate: float) -> None:
        """Poisson arrivals of ``rate`` per second; at most ``concurrency`` in flight (an
        arrival waits for a free place, later ones keep their schedule and catch up)."""
        places = asyncio.Semaphore(self.config.concurrency)
        draw = random.Random()  # arrival times, not secrets
        due = time.perf_counter()

        async def one(index: int) -> None:
            try:
                self.record(await self.send(index))
            finally:
                places.release()

        async with asyncio.TaskGroup() as group:
            for index in range(self.config.requests):
                if self.deadline is not None and due >= self.deadline:
                    return
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                await places.acquire()
                if self.over():
                    places.release()
                    return
                self.started += 1
                group.create_task(one(index))
                due += draw.expovariate(rate)

    # --- one request ----------------------------------------------------------------------
    async def send(self, index: int) -> Sample:
        config = self.config
        model = config.models[index % len(config.models)]
        messages = messages_of(self.prompts[index % len(self.prompts)])
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if config.max_tokens is not None:
            body["max_tokens"] = config.max_tokens
        sample = Sample(model, start=self.now())
        parts: list[str] = []
        try:
            async with asyncio.timeout(config.timeout):
                await self._stream(body, sample, parts)
        except TimeoutError:
            sample.cause = f"timeout: no complete answer within {config.timeout:g} s"
        except httpx.TimeoutException as exc:
            sample.cause = f"timeout: {_timeout_kind(exc)}"
        except httpx.TransportError as exc:
            sample.cause = f"connection error: {type(exc).__name__}: {exc}"
        except SSEError as exc:
            sample.cause = f"bad stream: {exc}"
        except (httpx.HTTPError, ValueError, LookupError, TypeError, AttributeError) as exc:
            sample.cause = f"client error: {type(exc).__name__}: {exc}"
        sample.end = self.now()
        if sample.cause is not None:
            sample.cause = sample.cause[:MAX_CAUSE]
        elif sample.counted_by == TOKENIZE:
            _count_tokens(sample, "".join(parts), messages)
        return sample

    async def _stream(self, body: dict[str, Any], sample: Sample, parts: list[str]) -> None:
        """Read one answer into ``sample`` (its ``cause`` set when the gateway said no)."""
        assert self.client is not None
        headers = dict(self.headers)
        last: float | None = None
        finished = usage_seen = False
        async with aconnect_sse(
            self.client, "POST", self.config.endpoint, json=body, headers=headers
        ) as source:
            response = source.response
            if response.status_code != 200:
                await response.aread()
                sample.cause = _http_cause(response)
                return
            async for event in source.aiter_sse():
                if event.data == "[DONE]":
                    finished = True
                    break
                try:
                    payload = orjson.loads(event.data)
                except ValueError:
                    sample.cause = "bad stream: an event is not JSON"
                    return
                if not isinstance(payload, dict):
                    continue
                if "error" in payload:
                    sample.cause = "stream error " + _error_text(payload["error"])
                    return
                now = self.now()
                for choice in payload.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        parts.append(content)
                        if last is None:
                            sample.ttft = now - sample.start
                        else:
                            sample.itl.append(now - last)
                        last = now
                usage = payload.get("usage")
                if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                    sample.output_tokens = usage["completion_tokens"]
                    sample.input_tokens = int(usage.get("prompt_tokens") or 0)
                    usage_seen = True
        if not finished:
            sample.cause = "stream error: the stream ended without [DONE]"
        elif not usage_seen:
            sample.counted_by = TOKENIZE

    def result(self) -> StressResult:
        config = self.config
        duration = self.ended if self.ended is not None else self.now()
        whole = figures(self.samples, duration)
        per_model = {
            model: figures([s for s in self.samples if s.model == model], duration)
            for model in dict.fromkeys(config.models)
        }
        return StressResult(
            config=config.to_json(),
            started_at=self.started_at,
            duration=duration,
            completed=whole["completed"],
            failed=whole["failed"],
            request_throughput=whole["request_throughput"],
            output_tokens_per_s=whole["output_tokens_per_s"],
            total_output_tokens=whole["total_output_tokens"],
            ttft=whole["ttft"],
            tpot=whole["tpot"],
            itl=whole["itl"],
            e2e=whole["e2e"],
            failures=whole["failures"],
            per_model=per_model,
            token_counting=token_counting(self.samples),
            cancelled=self.started - len(self.samples),
            total_input_tokens=whole["total_input_tokens"],
            total_tokens_per_s=whole["total_tokens_per_s"],
        )


# --- helpers ----------------------------------------------------------------------------------
def _count_tokens(sample: Sample, answer: str, messages: list[dict[str, str]]) -> None:
    """The fallback when the gateway reported no usage: the debug backend's tokenizer."""
    from kuwa.executors.debug import tokenize

    sample.output_tokens = len(tokenize(answer))
    sample.input_tokens = sum(len(tokenize(m["content"])) for m in messages)


def _error_text(error: object) -> str:
    """``code: message`` of a ``{"message", "type", "code"}`` error object."""
    if isinstance(error, dict):
        code = error.get("code") or error.get("type") or "error"
        return f"{code}: {error.get('message', '')}"
    return str(error)


def _http_cause(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return f"HTTP {response.status_code} {_error_text(body['error'])}"
    text = " ".join(response.text.split())[:120]
    return f"HTTP {response.status_code}: {text or response.reason_phrase}"


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    kinds = {
        httpx.ConnectTimeout: "could not connect in time",
        httpx.ReadTimeout: "no data for too long",
        httpx.WriteTimeout: "could not send in time",
        httpx.PoolTimeout: "no free connection in time",
    }
    return next((text for cls, text in kinds.items() if isinstance(exc, cls)), str(exc))
