"""The dashboard's time series: one sample per model every few seconds, an hour kept.

A sample holds the queue's state at that moment (waiting, running, oldest wait, live
executors) and what finished since the previous sample, read from the job log (requests,
failures, output tokens, TTFT and TPOT percentiles). Each model's samples are a Redis list,
newest first, trimmed to ``window / interval`` entries and expiring after the window when
nothing is added, so the memory used is bounded (about 150 bytes a sample: 720 samples, about
100 KB, per model at the defaults).

Any process may call :meth:`Sampler.maybe_sample` as often as it likes: one ``SET NX`` per
time bucket lets exactly one caller take each sample. The leading kernel calls it every tick;
a gateway serving the dashboard calls it too, so the charts fill even without a kernel.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kuwa import keys
from kuwa.broker.connection import text
from kuwa.broker.joblog import JobRecord
from kuwa.broker.registry import Registry
from kuwa.broker.stats import snapshot
from kuwa.settings import Settings

log = logging.getLogger(__name__)

MAX_READ = 200_000  # job-log entries one sample reads at most (the rest are skipped)
READ_BATCH = 10_000


def percentile(values: list[float], q: int) -> float | None:
    """The nearest-rank ``q``-th percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(math.ceil(len(ordered) * q / 100) - 1, 0))]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # when it was taken (unix seconds)
    span: float  # seconds of finished jobs it counts (since the previous sample)
    waiting: int = 0
    running: int = 0
    oldest_wait: float = 0.0
    executors: int = 0
    requests: int = 0  # jobs finished in the span
    failed: int = 0
    tokens: int = 0  # output tokens of those jobs
    ttft_p50: float | None = None
    ttft_p95: float | None = None
    tpot_p50: float | None = None
    tpot_p95: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.span if self.span > 0 else 0.0

    _SHORT = (
        ("t", "t"),
        ("s", "span"),
        ("w", "waiting"),
        ("r", "running"),
        ("o", "oldest_wait"),
        ("e", "executors"),
        ("n", "requests"),
        ("f", "failed"),
        ("k", "tokens"),
        ("a", "ttft_p50"),
        ("b", "ttft_p95"),
        ("c", "tpot_p50"),
        ("d", "tpot_p95"),
    )

    def encode(self) -> bytes:
        out: dict[str, Any] = {}
        for short, name in self._SHORT:
            value = getattr(self, name)
            if value is None or value == 0:
                continue
            out[short] = round(value, 4) if isinstance(value, float) else value
        return orjson.dumps(out)

    @classmethod
    def decode(cls, raw: bytes | str) -> Sample:
        data = orjson.loads(raw)
        values: dict[str, Any] = {}
        for short, name in cls._SHORT:
            if short in data:
                values[name] = data[short]
        values.setdefault("t", 0.0)
        values.setdefault("span", 0.0)
        return cls(**values)


@dataclass(slots=True)
class _Finished:
    requests: int = 0
    failed: int = 0
    tokens: int = 0
    ttft: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)


class Sampler:
    def __init__(
        self,
        redis: aioredis.Redis,
        registry: Registry,
        *,
        interval: float = 5.0,
        window: int = 3600,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.interval = interval
        self.window = window

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: aioredis.Redis, registry: Registry
    ) -> Sampler:
        return cls(
            redis,
            registry,
            interval=settings.timeseries_interval,
            window=settings.timeseries_window,
        )

    @property
    def kept(self) -> int:
        """Samples kept per model."""
        return max(math.ceil(self.window / self.interval), 1)

    async def maybe_sample(self, now: float | None = None) -> bool:
        """Take this time bucket's sample unless another process did; whether this one did."""
        now = time.time() if now is None else now
        bucket = int(now // self.interval)
        ttl = max(math.ceil(self.interval * 3), 2)
        if not await self.redis.set(keys.timeseries_tick(bucket), b"1", nx=True, ex=ttl):
            return False
        try:
            await self.sample(now)
        except (RedisError, OSError):
            raise
        except Exception:  # a bad sample must never stop the kernel that takes it
            log.exception("could not take the dashboard's sample")
            return False
        return True

    async def sample(self, now: float | None = None) -> dict[str, Sample]:
        """Take one sample of every known model now (callers see :meth:`maybe_sample`)."""
        now = time.time() if now is None else now
        snap = await snapshot(self.redis, self.registry)
        finished, span = await self._finished_since_last(now)
        queues = {q.model: q for q in snap.queues}
        samples: dict[str, Sample] = {}
        for code in sorted({*queues, *finished}):
            if not keys.valid_access_code(code):
                continue
            q = queues.get(code)
            done = finished.get(code, _Finished())
            samples[code] = Sample(
                t=round(now, 3),
                span=round(span, 3),
                waiting=q.waiting if q else 0,
                running=q.running if q else 0,
                oldest_wait=round(q.oldest_wait, 3) if q else 0.0,
                executors=q.executors if q else 0,
                requests=done.requests,
                failed=done.failed,
                tokens=done.tokens,
                ttft_p50=_rounded(percentile(done.ttft, 50)),
                ttft_p95=_rounded(percentile(done.ttft, 95)),
                tpot_p50=_rounded(percentile(done.tpot, 50)),
                tpot_p95=_rounded(percentile(done.tpot, 95)),
            )
        ttl = int(self.window + self.interval * 2)
        async with self.redis.pipeline(transaction=False) as pipe:
            for code, s in samples.items():
                key = keys.queue_timeseries(code)
                pipe.lpush(key, s.encode())
                pipe.ltrim(key, 0, self.kept - 1)
                pipe.expire(key, ttl)
            await pipe.execute()
        return samples

    async def _finished_since_last(self, now: float) -> tuple[dict[str, _Finished], float]:
        """Jobs finished since the previous sample (at most two intervals back), per model,
        and the seconds that covers; moves the cursor on."""
        cursor: Any = await self.redis.hgetall(keys.TIMESERIES_CURSOR)
        floor = now - self.interval * 2
        last_t = float(text(cursor.get(b"t", b"0")))
        start_t = max(last_t, floor)
        low = f"{int(start_t * 1000)}"
        entry = text(cursor[b"entry"]) if b"entry" in cursor else ""
        if entry and int(entry.split("-")[0]) >= int(start_t * 1000):
            low = f"({entry}"
        high = str(int(now * 1000))
        per: dict[str, _Finished] = {}
        read = 0
        last_entry = entry
        while read < MAX_READ:
            batch: Any = await self.redis.xrange(keys.JOB_LOG, low, high, count=READ_BATCH)
            if not batch:
                break
            for raw_id, fields in batch:
                record = JobRecord.parse(raw_id, fields)
                f = per.setdefault(record.model, _Finished())
                f.requests += 1
                f.failed += record.status == "failed"
                f.tokens += record.completion_tokens
                if record.ttft is not None:
                    f.ttft.append(record.ttft)
                if record.tpot is not None:
                    f.tpot.append(record.tpot)
            read += len(batch)
            last_entry = text(batch[-1][0])
            low = f"({last_entry}"
            if len(batch) < READ_BATCH:
                break
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.TIMESERIES_CURSOR, "t", repr(now))
            if last_entry:
                pipe.hset(keys.TIMESERIES_CURSOR, "entry", last_entry)
            await pipe.execute()
        return per, max(now - start_t, 0.001)


async def series(
    redis: aioredis.Redis, codes: list[str], *, since: float, limit: int = 100_000
) -> dict[str, list[Sample]]:
    """Each model's samples taken at or after ``since``, oldest first."""
    async with redis.pipeline(transaction=False) as pipe:
        for code in codes:
            pipe.lrange(keys.queue_timeseries(code), 0, limit - 1)
        raws = await pipe.execute()
    out: dict[str, list[Sample]] = {}
    for code, raw in zip(codes, raws, strict=True):
        samples = [Sample.decode(r) for r in raw]
        out[code] = [s for s in reversed(samples) if s.t >= since]
    return out


@dataclass(frozen=True, slots=True)
class Recent:
    """A model's figures over the latest samples (the dashboard's live table)."""

    requests_per_min: float
    tokens_per_s: float
    error_rate: float

    @classmethod
    def of(cls, samples: list[Sample], now: float, *, window: float = 60.0) -> Recent:
        """From samples oldest first: tokens/s of the newest sample, requests and errors of
        those within ``window`` seconds."""
        fresh = [s for s in samples if s.t >= now - window]
        if not fresh:
            return cls(0.0, 0.0, 0.0)
        span = sum(s.span for s in fresh)
        requests = sum(s.requests for s in fresh)
        failed = sum(s.failed for s in fresh)
        newest = fresh[-1]
        return cls(
            requests_per_min=requests * 60 / span if span > 0 else 0.0,
            tokens_per_s=newest.tokens_per_s if newest.t >= now - 3 * newest.span else 0.0,
            error_rate=failed / requests if requests else 0.0,
        )
