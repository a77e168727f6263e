"""Which kernels run: each heartbeats into a sorted set; one holds ``keys.KERNEL_LEADER``.

The dashboard lists them (the leader and its standbys, with their heartbeat's age). A kernel
that stopped heartbeating a minute ago is forgotten by the next beat of any kernel.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker.connection import text

FORGET_AFTER = 60.0  # seconds after its heartbeat lapsed that a kernel is no longer listed


@dataclass(frozen=True, slots=True)
class KernelInfo:
    id: str
    host: str
    pid: int
    started: float
    heartbeat: float
    leader: bool
    live: bool  # its heartbeat has not lapsed

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "started": self.started,
            "heartbeat_age": round(max(now - self.heartbeat, 0.0), 3),
            "role": "leader" if self.leader else ("standby" if self.live else "dead"),
        }


async def beat(
    redis: aioredis.Redis, kernel_id: str, *, ttl: float, leader: bool, started: float
) -> None:
    """Say this kernel is alive for ``ttl`` seconds (and whether it leads)."""
    now = time.time()
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": started,
        "heartbeat": now,
        "leader": leader,
    }
    gone: Any = await redis.zrangebyscore(keys.KERNELS, "-inf", now - FORGET_AFTER)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.KERNELS, {kernel_id: now + ttl})
        pipe.hset(keys.KERNEL_INFO, kernel_id, orjson.dumps(info))
        if gone:
            pipe.zrem(keys.KERNELS, *gone)
            pipe.hdel(keys.KERNEL_INFO, *gone)
        await pipe.execute()


async def leave(redis: aioredis.Redis, kernel_id: str) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.KERNELS, kernel_id)
        pipe.hdel(keys.KERNEL_INFO, kernel_id)
        await pipe.execute()


async def kernels(redis: aioredis.Redis) -> list[KernelInfo]:
    """Every kernel seen within the last minute, the leader first."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.KERNEL_LEADER)
        pipe.zrangebyscore(keys.KERNELS, now - FORGET_AFTER, "+inf", withscores=True)
        pipe.hgetall(keys.KERNEL_INFO)
        raw_leader, scored, infos = await pipe.execute()
    leader = text(raw_leader) if raw_leader else None
    found = []
    for raw_id, expiry in scored:
        kernel_id = text(raw_id)
        raw = infos.get(raw_id)
        data = orjson.loads(raw) if raw else {}
        found.append(
            KernelInfo(
                id=kernel_id,
                host=str(data.get("host", "")),
                pid=int(data.get("pid", 0)),
                started=float(data.get("started", 0.0)),
                heartbeat=float(data.get("heartbeat", 0.0)),
                leader=kernel_id == leader and float(expiry) >= now,
                live=float(expiry) >= now,
            )
        )
    return sorted(found, key=lambda k: (not k.leader, not k.live, k.id))


async def leader_id(redis: aioredis.Redis) -> str | None:
    raw = await redis.get(keys.KERNEL_LEADER)
    return text(raw) if raw else None
