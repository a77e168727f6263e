"""A snapshot of every queue and executor, read from Redis (for metrics and operators)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from kuwa import keys
from kuwa.broker.connection import text
from kuwa.broker.registry import ExecutorInfo, Registry


@dataclass(frozen=True, slots=True)
class QueueStats:
    model: str
    waiting: int  # queued, not yet taken by an executor
    running: int  # taken by an executor, not yet finished
    oldest_wait: float  # seconds the oldest waiting job has waited (0 when none waits)
    executors: int  # live (ready) executors
    slots: int  # their slots in all
    totals: dict[str, int] = field(default_factory=dict)  # tokens, jobs, failed (since start)
    latency: dict[str, float] = field(default_factory=dict)  # ttft/tpot p50 and p95, seconds

    @property
    def desired_executors(self) -> int:
        """Executors that would run every waiting and running job at once (a scaling hint).

        One per ``slots`` of the executors seen (16 when none is live); at least one while
        any job waits or runs, zero when the queue is idle."""
        per = self.slots / self.executors if self.executors else 16
        demand = self.waiting + self.running
        return math.ceil(demand / per) if demand else 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    queues: list[QueueStats]
    executors: list[ExecutorInfo] = field(default_factory=list)


async def snapshot(redis: aioredis.Redis, registry: Registry) -> Snapshot:
    executors = await registry.executors()
    models = sorted(await registry.known_models())
    queues = []
    for code in models:
        stream = keys.queue_stream(code)
        length, group = await _length_and_group(redis, stream)
        running = int(group.get("pending", 0)) if group else 0
        in_line = max(length - running, 0)
        oldest = 0.0
        if in_line and group:
            after = "(" + text(group.get("last-delivered-id", "0-0"))
            first: Any = await redis.xrange(stream, after, "+", count=1)
            if first:  # now, not when the snapshot began: the job may have come since
                now_ms = time.time() * 1000
                oldest = max(now_ms - int(text(first[0][0]).split("-")[0]), 0) / 1000
        backlogged, backlog_oldest = await _backlogs(redis, code, time.time() * 1000)
        waiting = in_line + backlogged
        oldest = max(oldest, backlog_oldest)
        live = [e for e in executors if code in e.access_codes and e.state == "ready"]
        totals, latency = await _history(redis, code)
        queues.append(
            QueueStats(
                code,
                waiting,
                running,
                oldest,
                len(live),
                sum(e.slots for e in live),
                totals,
                latency,
            )
        )
    return Snapshot(queues, executors)


async def _length_and_group(redis: aioredis.Redis, stream: str) -> tuple[int, dict[str, Any]]:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(stream)
        pipe.xinfo_groups(stream)
        length, groups = await pipe.execute(raise_on_error=False)
    if isinstance(groups, ResponseError) or not groups:  # no stream or group yet
        return (0 if isinstance(length, ResponseError) else int(length)), {}
    for group in groups:
        info = {text(k): v for k, v in group.items()}
        if text(info.get("name", b"")) == keys.CONSUMER_GROUP:
            return int(length), info
    return int(length), {}


async def _backlogs(redis: aioredis.Redis, code: str, now_ms: float) -> tuple[int, float]:
    """Jobs in the users' backlogs, and how long the oldest of them has waited."""
    count = int(text(await redis.get(keys.queue_backlogged(code)) or b"0"))
    if count <= 0:
        return 0, 0.0
    oldest = 0.0
    for user in await redis.lrange(keys.queue_ring(code), 0, -1):
        head: Any = await redis.lindex(keys.queue_backlog(code, text(user)), 0)
        if head:
            created = orjson.loads(bytes(head).split(b"\n", 1)[1]).get("created", 0.0)
            oldest = max(oldest, now_ms / 1000 - float(created))
    return count, oldest


async def _history(redis: aioredis.Redis, code: str) -> tuple[dict[str, int], dict[str, float]]:
    """Running totals and TTFT/TPOT percentiles of the latest finished jobs of a queue."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.queue_counters(code))
        pipe.lrange(keys.queue_latency(code), 0, -1)
        raw_totals, raw_latency = await pipe.execute()
    totals = {text(k): int(v) for k, v in raw_totals.items()}
    samples = [tuple(float(x) for x in text(r).split()) for r in raw_latency]
    latency: dict[str, float] = {}
    for i, name in enumerate(("ttft", "tpot")):
        values = sorted(s[i] for s in samples)
        if values:
            for q in (50, 95):
                latency[f"{name}_p{q}"] = values[min(len(values) - 1, len(values) * q // 100)]
    return totals, latency
