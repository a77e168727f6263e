"""Executors announce themselves here; gateways and the kernel read who is live."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker.connection import text


@dataclass(slots=True)
class ExecutorInfo:
    id: str
    access_codes: tuple[str, ...]
    backend: str
    model: str
    host: str
    pid: int
    slots: int
    used: int = 0
    tokens_per_s: float = 0.0
    started: float = field(default_factory=time.time)
    heartbeat: float = 0.0
    state: str = "ready"  # starting | ready | draining (| dead, as listed by the registry)
    engine: dict[str, float | int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)  # rule decisions so far, by kind
    kinds: tuple[str, ...] = ("chat",)  # the jobs its backend serves: chat, embed

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> ExecutorInfo:
        data = orjson.loads(raw)
        data["access_codes"] = tuple(data["access_codes"])
        data["kinds"] = tuple(data.get("kinds") or ("chat",))
        return cls(**data)


class Registry:
    def __init__(self, redis: aioredis.Redis, *, ttl: float = 6.0) -> None:
        self.redis = redis
        self.ttl = ttl

    async def heartbeat(self, info: ExecutorInfo) -> None:
        """Refresh the executor's key and its place in every queue it serves."""
        now = time.time()
        info.heartbeat = now
        expiry = now + self.ttl
        # A draining executor stays visible but takes no new work from gateways' view.
        live_score = expiry if info.state == "ready" else 0
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.executor(info.id), info.encode(), px=int(self.ttl * 1000))
            pipe.hset(keys.EXECUTOR_INFO, info.id, info.encode())
            pipe.zadd(keys.EXECUTORS, {info.id: expiry})
            for code in info.access_codes:
                pipe.zadd(keys.queue_executors(code), {info.id: live_score})
                pipe.hset(
                    keys.MODELS,
                    code,
                    orjson.dumps(
                        {
                            "backend": info.backend,
                            "model": info.model,
                            "seen": now,
                            "kinds": list(info.kinds),
                        }
                    ),
                )
            await pipe.execute()

    async def deregister(self, info: ExecutorInfo) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.executor(info.id))
            pipe.hdel(keys.EXECUTOR_INFO, info.id)
            pipe.zrem(keys.EXECUTORS, info.id)
            for code in info.access_codes:
                pipe.zrem(keys.queue_executors(code), info.id)
                pipe.hdel(keys.queue_slots(code), info.id)
            await pipe.execute()

    async def is_known(self, code: str) -> bool:
        """Has any executor ever served this access code?"""
        return bool(await self.redis.hexists(keys.MODELS, code))

    async def model_meta(self, code: str) -> dict[str, object] | None:
        """What the last executor serving ``code`` said about it (backend, model, seen, the
        kinds of job it serves)."""
        raw = await self.redis.hget(keys.MODELS, code)
        return None if raw is None else dict(orjson.loads(raw))

    async def known_models(self) -> dict[str, dict[str, object]]:
        raw = await self.redis.hgetall(keys.MODELS)
        return {text(k): orjson.loads(v) for k, v in raw.items()}

    async def live_counts(self, codes: list[str]) -> dict[str, int]:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for code in codes:
                pipe.zcount(keys.queue_executors(code), now, "+inf")
            counts = await pipe.execute()
        return dict(zip(codes, counts, strict=True))

    async def executors(self, *, include_dead: bool = False) -> list[ExecutorInfo]:
        """Every executor whose heartbeat has not expired, sorted by id; with
        ``include_dead`` also those that stopped heartbeating (state ``dead``) until the
        kernel forgets them a minute later."""
        if include_dead:
            return await self._with_dead()
        ids = await self.redis.zrangebyscore(keys.EXECUTORS, time.time(), "+inf")
        if not ids:
            return []
        raws = await self.redis.mget([keys.executor(text(i)) for i in ids])
        return sorted(
            (ExecutorInfo.decode(r) for r in raws if isinstance(r, bytes)), key=lambda e: e.id
        )

    async def _with_dead(self) -> list[ExecutorInfo]:
        now = time.time()
        scored: Any = await self.redis.zrange(keys.EXECUTORS, 0, -1, withscores=True)
        raws: Any = await self.redis.hgetall(keys.EXECUTOR_INFO)
        out = []
        for raw_id, expiry in scored:
            raw = raws.get(raw_id)
            if raw is None:
                continue
            info = ExecutorInfo.decode(raw)
            if float(expiry) < now:
                info.state = "dead"
            out.append(info)
        return sorted(out, key=lambda e: e.id)

    async def live_among(self, ids: Collection[str]) -> set[str]:
        """Which of these executors still heartbeat (their key, expired by Redis itself after
        the TTL, still exists); one round trip."""
        wanted = list(ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for executor_id in wanted:
                pipe.exists(keys.executor(executor_id))
            found = await pipe.execute()
        return {e for e, n in zip(wanted, found, strict=True) if n}

    async def expired(self, older_than: float = 0.0) -> list[str]:
        """Ids of executors whose heartbeat lapsed (they died without deregistering) at least
        ``older_than`` seconds ago."""
        ids = await self.redis.zrangebyscore(keys.EXECUTORS, 0, time.time() - older_than)
        return [text(i) for i in ids]

    async def forget(self, executor_id: str, codes: list[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.EXECUTORS, executor_id)
            pipe.hdel(keys.EXECUTOR_INFO, executor_id)
            pipe.delete(keys.executor(executor_id))
            for code in codes:
                pipe.zrem(keys.queue_executors(code), executor_id)
                pipe.hdel(keys.queue_slots(code), executor_id)
            await pipe.execute()
