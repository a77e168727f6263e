"""Stress runs started from the dashboard: stored in Redis, run by the background worker.

The dashboard stores a run (``queued``) and enqueues :func:`run_stored` on the RQ queue the
worker serves (``kuwa-cli worker start``). The worker mints a short-lived API token for the
admin who asked (named after the run, revoked when it ends, never stored in Redis), runs
:func:`kuwa.stress.run_stress` against the gateway, records progress about once a second and
the result at the end. An admin may ask a running run to stop (a flag the worker polls). The
latest ``KEEP`` runs are kept: a sorted set of ids plus one JSON value per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from rq import Queue

from kuwa import keys
from kuwa.accounts import Store, close_database, open_database
from kuwa.broker import connect
from kuwa.broker.connection import connect_sync
from kuwa.settings import Settings
from kuwa.web.background import QUEUE

log = logging.getLogger(__name__)

KEEP = 50  # runs kept (older ones are forgotten)
JOB_TIMEOUT = 2 * 3600  # a run is at most an hour long (kuwa.stress caps duration)
PROGRESS_EVERY = 1.0  # seconds between two progress writes
FINISHED = ("done", "failed", "stopped")


def new_run_id() -> str:
    return "st-" + secrets.token_hex(6)


class StressRuns:
    """The stored runs (async; one Redis client)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def create(self, run: dict[str, Any]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.stress_run(run["id"]), orjson.dumps(run))
            pipe.zadd(keys.STRESS_RUNS, {run["id"]: run["created"]})
            await pipe.execute()
        await self._trim()

    async def get(self, run_id: str) -> dict[str, Any] | None:
        if not keys.valid_job_id(run_id):
            return None
        raw = await self.redis.get(keys.stress_run(run_id))
        return None if raw is None else dict(orjson.loads(raw))

    async def update(self, run_id: str, **changes: Any) -> dict[str, Any] | None:
        run = await self.get(run_id)
        if run is None:
            return None
        run.update(changes)
        await self.redis.set(keys.stress_run(run_id), orjson.dumps(run))
        return run

    async def latest(self, limit: int = KEEP) -> list[dict[str, Any]]:
        """The newest runs first."""
        ids: Any = await self.redis.zrevrange(keys.STRESS_RUNS, 0, limit - 1)
        if not ids:
            return []
        raws = await self.redis.mget([keys.stress_run(i.decode()) for i in ids])
        return [dict(orjson.loads(r)) for r in raws if r is not None]

    async def ask_stop(self, run_id: str) -> None:
        await self.redis.set(keys.stress_stop(run_id), b"1", ex=JOB_TIMEOUT)

    async def stop_asked(self, run_id: str) -> bool:
        return bool(await self.redis.exists(keys.stress_stop(run_id)))

    async def _trim(self) -> None:
        old: Any = await self.redis.zrange(keys.STRESS_RUNS, 0, -(KEEP + 1))
        if not old:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.STRESS_RUNS, *old)
            for raw in old:
                pipe.delete(keys.stress_run(raw.decode()), keys.stress_stop(raw.decode()))
            await pipe.execute()


def enqueue(settings: Settings, run_id: str) -> str:
    """Queue the run for the background worker; the RQ job's id."""
    queue = Queue(QUEUE, connection=connect_sync(settings.effective_redis_url))
    job = queue.enqueue(
        run_stored, run_id, job_timeout=JOB_TIMEOUT, description=f"stress run {run_id}"
    )
    return str(job.id)


def run_stored(run_id: str) -> str:
    """The RQ job: run a stored stress run; its final status."""
    settings = Settings.from_env()
    return asyncio.run(_run(settings, run_id))


async def _run(settings: Settings, run_id: str) -> str:
    redis = connect(settings.effective_redis_url)
    runs = StressRuns(redis)
    db = open_database(settings)
    try:
        run = await runs.get(run_id)
        if run is None:
            log.warning("stress run %s is gone; nothing to do", run_id)
            return "gone"
        if run["status"] != "queued":
            return str(run["status"])
        if await runs.stop_asked(run_id):
            await runs.update(run_id, status="stopped", finished=time.time())
            return "stopped"
        store = Store.over(db, settings.load_secret_key())
        status, changes = await _with_token(store, runs, run)
        await runs.update(run_id, status=status, finished=time.time(), **changes)
        return status
    finally:
        close_database(db)
        await redis.aclose()


async def _with_token(
    store: Store, runs: StressRuns, run: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Run with a token of the run's admin that lives only as long as the run."""
    name = f"stress run {run['id']}"
    user_id = int(run["user_id"])
    try:  # (the database calls block this job's loop a moment, before and after the load)
        token = store.accounts.create_token(user_id, name)
    except Exception as exc:  # the admin was deleted, the database is down, …
        log.warning("stress run %s: no token: %s", run["id"], exc)
        return "failed", {"error": f"Could not create a token for the run: {exc}"}
    try:
        return await _measure(runs, run, token)
    finally:
        _revoke(store, user_id, name)


def _revoke(store: Store, user_id: int, name: str) -> None:
    for token in store.accounts.list_tokens(user_id):
        if token.name == name:
            store.accounts.revoke_token(user_id, token.id)


async def _measure(runs: StressRuns, run: dict[str, Any], token: str) -> tuple[str, dict[str, Any]]:
    from kuwa.errors import KuwaError
    from kuwa.stress import Progress, StressConfig, run_stress

    c = run["config"]
    config = StressConfig(
        url=c["url"],
        token=token,
        models=tuple(c["models"]),
        concurrency=int(c["concurrency"]),
        requests=int(c["requests"]),
        rate=c.get("rate"),
        duration=c.get("duration"),
        max_tokens=c.get("max_tokens"),
    )
    stop = asyncio.Event()
    latest: dict[str, Any] = {}

    def on_progress(p: Progress) -> None:
        latest.update(dataclasses.asdict(p))

    async def watch() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            try:
                if latest:
                    await runs.update(run["id"], progress=dict(latest))
                if await runs.stop_asked(run["id"]):
                    stop.set()
                    return
            except (RedisError, OSError) as exc:  # the run goes on; progress shows later
                log.warning("stress run %s: could not record progress: %s", run["id"], exc)

    await runs.update(run["id"], status="running", started=time.time())
    watcher = asyncio.create_task(watch())
    try:
        result = await run_stress(config, on_progress, stop)
    except KuwaError as exc:
        return "failed", {"error": exc.message}
    except Exception as exc:
        log.exception("stress run %s failed", run["id"])
        return "failed", {"error": f"The run failed: {type(exc).__name__}: {exc}"}
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return ("stopped" if stop.is_set() else "done"), {
        "result": result.to_json(),
        "progress": dict(latest),
    }
