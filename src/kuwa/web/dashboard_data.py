"""The figures behind the dashboard's live overview and charts, gathered from Redis.

:func:`overview` is what ``GET /app/dashboard/overview`` answers (polled every two seconds by
the page): per model the queue, its executors, throughput, latency and errors; per executor
its slots and heartbeat; the kernels; Redis itself. :func:`series` is the last hour of
samples per model in columns, as the charts draw them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from kuwa.broker import kernels
from kuwa.broker.registry import ExecutorInfo, Registry
from kuwa.broker.stats import QueueStats, snapshot
from kuwa.broker.timeseries import Recent, Sample, Sampler
from kuwa.broker.timeseries import series as read_series

RECENT = 60.0  # seconds the "per minute" figures look back


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _model(q: QueueStats, executors: list[ExecutorInfo], recent: Recent) -> dict[str, Any]:
    serving = [e for e in executors if q.model in e.access_codes]
    return {
        "code": q.model,
        "waiting": q.waiting,
        "oldest_wait": round(q.oldest_wait, 3),
        "running": q.running,
        "executors_ready": sum(e.state == "ready" for e in serving),
        "executors_draining": sum(e.state == "draining" for e in serving),
        "executors_starting": sum(e.state == "starting" for e in serving),
        "slots": q.slots,
        "tokens_per_s": round(recent.tokens_per_s, 2),
        "requests_per_min": round(recent.requests_per_min, 2),
        "error_rate": round(recent.error_rate, 4),
        "ttft_p50": _round(q.latency.get("ttft_p50")),
        "ttft_p95": _round(q.latency.get("ttft_p95")),
        "tpot_p50": _round(q.latency.get("tpot_p50")),
        "tpot_p95": _round(q.latency.get("tpot_p95")),
        "jobs_total": q.totals.get("jobs", 0),
        "failed_total": q.totals.get("failed", 0),
        "tokens_total": q.totals.get("tokens", 0),
    }


def _executor(e: ExecutorInfo, now: float) -> dict[str, Any]:
    return {
        "id": e.id,
        "host": e.host,
        "pid": e.pid,
        "backend": e.backend,
        "model": e.model,
        "codes": list(e.access_codes),
        "slots": e.slots,
        "used": e.used,
        "tokens_per_s": round(e.tokens_per_s, 2),
        "heartbeat_age": round(max(now - e.heartbeat, 0.0), 3) if e.heartbeat else None,
        "state": e.state,
        "uptime": round(max(now - e.started, 0.0), 1),
    }


async def _redis_info(redis: aioredis.Redis) -> dict[str, Any]:
    info: Any = await redis.info()
    return {
        "used_memory": int(info.get("used_memory", 0)),
        "used_memory_human": str(info.get("used_memory_human", "")),
        "maxmemory": int(info.get("maxmemory", 0)),
        "connected_clients": int(info.get("connected_clients", 0)),
        "version": str(info.get("redis_version", "")),
        "uptime": int(info.get("uptime_in_seconds", 0)),
        "ops_per_sec": int(info.get("instantaneous_ops_per_sec", 0)),
    }


async def overview(redis: aioredis.Redis, registry: Registry, sampler: Sampler) -> dict[str, Any]:
    """Everything the live page shows, in one answer."""
    await sampler.maybe_sample()  # the charts fill while someone watches, kernel or not
    now = time.time()
    snap = await snapshot(redis, registry)
    executors = await registry.executors(include_dead=True)
    codes = [q.model for q in snap.queues]
    samples = await read_series(redis, codes, since=now - RECENT - sampler.interval, limit=64)
    models = [
        _model(q, executors, Recent.of(samples.get(q.model, []), now, window=RECENT))
        for q in snap.queues
    ]
    found = await kernels.kernels(redis)
    leader = await kernels.leader_id(redis)
    listed = [k.to_json(now) for k in found]
    if leader and all(k.id != leader for k in found):  # a kernel that does not heartbeat here
        listed.insert(0, {"id": leader, "role": "leader", "host": "", "pid": 0})
    return {
        "now": now,
        "interval": sampler.interval,
        "models": models,
        "executors": [_executor(e, now) for e in executors],
        "kernels": {"leader": leader, "list": listed},
        "redis": await _redis_info(redis),
    }


COLUMNS: dict[str, Callable[[Sample], Any]] = {
    "waiting": lambda s: s.waiting,
    "running": lambda s: s.running,
    "tokens_per_s": lambda s: round(s.tokens_per_s, 2),
    "ttft_p95": lambda s: s.ttft_p95,
    "errors": lambda s: s.failed,
    "requests": lambda s: s.requests,
}


def columns(samples: list[Sample]) -> dict[str, list[Any]]:
    """One model's samples as columns (``t`` plus each of ``COLUMNS``)."""
    out: dict[str, list[Any]] = {"t": [round(s.t, 1) for s in samples]}
    for name, get in COLUMNS.items():
        out[name] = [get(s) for s in samples]
    return out


async def series(
    redis: aioredis.Redis, registry: Registry, sampler: Sampler, *, minutes: int
) -> dict[str, Any]:
    """The last ``minutes`` of samples of every known model, in columns."""
    await sampler.maybe_sample()
    now = time.time()
    codes = sorted(await registry.known_models())
    found = await read_series(redis, codes, since=now - minutes * 60)
    return {
        "now": now,
        "interval": sampler.interval,
        "models": {code: columns(samples) for code, samples in found.items() if samples},
    }
