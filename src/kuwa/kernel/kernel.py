"""One active kernel (a leader lease in Redis) watches executors and recovers orphaned jobs.

A job whose executor stopped heartbeating is handed out again if it had not started
streaming (up to ``max_deliveries`` times); if its reader had already seen part of the
answer, the reader gets an explicit error chunk instead. No client waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
import uuid
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kuwa import keys
from kuwa.broker import ChunkPublisher, JobQueue, QueuedJob, Registry, kernels
from kuwa.broker.connection import text
from kuwa.broker.joblog import JobLog
from kuwa.broker.stats import snapshot
from kuwa.broker.timeseries import Sampler
from kuwa.broker.watch import EXECUTOR_LOST, MID_ANSWER
from kuwa.kernel import metrics
from kuwa.kernel.scaler import LocalScaler
from kuwa.schemas import Job, JobStatus
from kuwa.settings import Settings

log = logging.getLogger(__name__)

DEAD_SHOWN_FOR = 60.0  # seconds a dead executor stays listed (state "dead") before it is forgotten
PAGE = 100  # stream entries read per round trip when scanning a queue
LEASE_MS = 3000  # a standby (ticking every second) takes over within ~4 s
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Kernel:
    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        *,
        interval: float = 1.0,
        scaler: LocalScaler | None = None,
    ):
        self.settings = settings
        self.redis = redis
        self.interval = interval
        self.id = f"kernel-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.registry = Registry(redis, ttl=settings.heartbeat_ttl)
        self.queue = JobQueue(
            redis, state_ttl=settings.transcript_ttl, fair_window=settings.fair_window
        )
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._stopping = asyncio.Event()
        self.scaler = scaler
        self.leader = False
        self.ticks = 0
        self.recovered = 0
        self.started = time.time()
        self.sampler = Sampler.from_settings(settings, redis, self.registry)  # the dashboard's
        self.joblog = JobLog.from_settings(settings)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self, *, burst: bool = False) -> None:
        log.info("kernel %s started", self.id)
        while not self._stopping.is_set():
            began = time.perf_counter()
            try:
                await self.tick()
            except (RedisError, OSError) as exc:
                metrics.TICK_ERRORS.inc()
                log.warning("kernel: Redis error (%s); retrying", exc)
            metrics.ticked(self.leader, time.perf_counter() - began)
            if burst:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
        if self.scaler is not None:
            await asyncio.to_thread(self.scaler.stop_all)
        if self.leader:
            await self._release(keys=[keys.KERNEL_LEADER], args=[self.id])
        with contextlib.suppress(RedisError, OSError):
            await kernels.leave(self.redis, self.id)
        log.info("kernel %s stopped (recovered %d job(s))", self.id, self.recovered)

    async def tick(self) -> None:
        leader = bool(await self._renew(keys=[keys.KERNEL_LEADER], args=[self.id, LEASE_MS]))
        if leader != self.leader or self.ticks == 0:
            log.info("kernel %s is %s", self.id, "the leader" if leader else "a standby")
            self.leader = leader
        self.ticks += 1
        ttl = max(LEASE_MS / 1000, self.interval * 3)
        await kernels.beat(self.redis, self.id, ttl=ttl, leader=leader, started=self.started)
        if leader:
            await self.sampler.maybe_sample()
            await self.recover_orphans()
            if self.scaler is not None:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for code in self.scaler.standby_codes():  # lapses if this kernel dies
                        pipe.set(keys.queue_standby(code), b"1", ex=3)
                        pipe.hsetnx(  # known before its first executor ever ran
                            keys.MODELS,
                            code,
                            orjson.dumps({"backend": "pool", "model": code, "seen": time.time()}),
                        )
                    await pipe.execute()
                snap = await snapshot(self.redis, self.registry)
                metrics.scaled(self.scaler, self.scaler.step(snap.queues))
        elif self.scaler is not None and self.ticks > 1:
            await asyncio.to_thread(self.scaler.stop_all)  # the new leader scales now

    async def recover_orphans(self) -> int:
        models = await self.registry.known_models()
        recovered = 0
        counts = await self.registry.live_counts(list(models))
        timeouts = await self.queue_timeouts()
        for code, n in counts.items():
            if n == 0 and not await self.redis.exists(keys.queue_standby(code)):
                recovered += await self.fail_stranded(code)
            recovered += await self.fail_overdue(code, timeouts.get(code))
            await self.queue.refill(code)  # a safety net
        consumers = await self.queue.consumers(list(models))
        # Read after the consumers: an executor heartbeats before it first reads, so every
        # consumer listed above that is live now is in this set.
        live = {e.id for e in await self.registry.executors()}
        for code, held in consumers.items():
            for consumer, pending in held.items():
                if consumer in live:
                    continue  # this kernel's own claims too: any left here failed half-way
                if pending:
                    recovered += await self._recover_all(code, consumer)
                await self.queue.drop_consumer(code, consumer)  # so the group does not grow
        for code in models:
            await self.redis.zremrangebyscore(keys.queue_executors(code), "-inf", time.time() - 60)
        for dead in await self.registry.expired(older_than=DEAD_SHOWN_FOR):
            await self.registry.forget(dead, list(models))
        self.recovered += recovered
        return recovered

    async def _recover_all(self, code: str, consumer: str) -> int:
        """Recover every job a dead consumer holds, a page at a time (only its own pending
        entries are read: jobs of live executors cost nothing, however many)."""
        recovered = 0
        after: bytes | None = None
        while True:
            entry_ids = await self.queue.held(code, consumer, PAGE, after)
            for entry_id in entry_ids:
                recovered += await self._recover(code, entry_id, consumer)
            if len(entry_ids) < PAGE:
                return recovered
            after = entry_ids[-1]

    async def fail_stranded(self, code: str) -> int:
        """Fail jobs that wait on a queue whose last executor left more than a grace ago."""
        return await self._fail_waiting(
            code,
            self.settings.heartbeat_ttl * 2,
            f"No executor is serving '{code}' any more; try again when it is back.",
            "model_unavailable",
        )

    async def queue_timeouts(self) -> dict[str, float]:
        """Per-model queue timeouts that admins set in the catalog (published by gateways)."""
        timeouts: dict[str, float] = {}
        for raw_code, raw in (await self.redis.hgetall(keys.MODEL_CONFIG)).items():
            value = orjson.loads(raw).get("queue_timeout")
            if isinstance(value, int | float) and value > 0:
                timeouts[text(raw_code)] = float(value)
        return timeouts

    async def fail_overdue(self, code: str, own_limit: float | None = None) -> int:
        """Fail jobs that waited longer than the queue timeout (the model's own, else the
        default) for a free executor."""
        timeout = own_limit or self.settings.queue_timeout
        return await self._fail_waiting(
            code,
            timeout,
            f"'{code}' was too busy: the request waited {timeout:g} s without starting; "
            "try again later.",
            "queue_timeout",
        )

    async def _fail_waiting(self, code: str, older_than: float, message: str, why: str) -> int:
        """Fail the jobs of a queue that have waited (not yet taken) at least ``older_than`` s."""
        newest_allowed = int((time.time() - older_than) * 1000)
        failed = 0
        async for page in self.queue.unread(code, newest_allowed, PAGE):
            withdrawn = await self.queue.withdraw(code, [q.entry_id for q in page])
            for q in page:
                if q.entry_id not in withdrawn:
                    continue  # an executor took it meanwhile
                await self._fail(q.job, 0, "error", message, code=why)
                await self.redis.hset(keys.job_state(q.job.id), "status", JobStatus.FAILED.value)
                failed += 1
        failed += await self._fail_backlogged(code, older_than, message, why)
        if failed:
            log.warning("kernel: failed %d job(s) waiting on %s (%s)", failed, code, why)
        return failed

    async def _fail_backlogged(self, code: str, older_than: float, message: str, why: str) -> int:
        """The same for jobs still in the users' backlogs (oldest first in each)."""
        cutoff = time.time() - older_than
        failed = 0
        for raw_user in await self.redis.lrange(keys.queue_ring(code), 0, -1):
            backlog = keys.queue_backlog(code, text(raw_user))
            while True:
                head: Any = await self.redis.lindex(backlog, 0)
                if head is None:
                    break
                job = Job.decode(bytes(head).split(b"\n", 1)[1])
                if job.created > cutoff:
                    break
                if await self.redis.lrem(backlog, 1, head) == 0:
                    continue  # moved to the stream meanwhile
                await self.redis.decr(keys.queue_backlogged(code))
                await self._fail(job, 0, "error", message, code=why)
                await self.redis.hset(keys.job_state(job.id), "status", JobStatus.FAILED.value)
                failed += 1
        return failed  # users left with an empty backlog leave the ring in refill.lua

    async def _recover(self, code: str, entry_id: bytes, consumer: str) -> int:
        stream = keys.queue_stream(code)
        claimed: Any = await self.redis.xclaim(stream, keys.CONSUMER_GROUP, self.id, 0, [entry_id])
        if not claimed or not claimed[0][1]:
            await self.redis.xack(stream, keys.CONSUMER_GROUP, entry_id)
            return 0
        job = Job.decode(claimed[0][1][b"job"])
        streamed = await self.redis.llen(keys.job_transcript(job.id))
        cancelled = await self.redis.exists(keys.job_cancel(job.id))
        if cancelled:
            status = JobStatus.CANCELLED
            await self._fail(job, streamed, "cancelled", None)
        elif streamed:
            status = JobStatus.FAILED
            await self._fail(job, streamed, "error", MID_ANSWER)  # as gateways' watches do
        elif job.deliveries + 1 >= self.settings.max_deliveries:
            status = JobStatus.FAILED
            await self._fail(
                job, 0, "error", f"The job failed on {job.deliveries + 1} executors; giving up."
            )
        else:
            again = dataclasses.replace(job, deliveries=job.deliveries + 1)
            await self.queue.requeue(QueuedJob(code, entry_id, again))
            log.warning(
                "kernel: job %s of dead executor %s on %s queued again", job.id, consumer, code
            )
            metrics.ORPHANS.labels(code, "requeued").inc()
            return 1
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(stream, keys.CONSUMER_GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            pipe.hset(keys.job_state(job.id), "status", status.value)
            await pipe.execute()
        log.warning(
            "kernel: job %s of dead executor %s on %s -> %s", job.id, consumer, code, status.value
        )
        metrics.ORPHANS.labels(code, status.value).inc()
        return 1

    async def _fail(
        self, job: Job, seq: int, reason: str, message: str | None, code: str = EXECUTOR_LOST
    ) -> None:
        publisher = ChunkPublisher(
            self.redis,
            job.id,
            interval=0,
            transcript_ttl=self.settings.transcript_ttl,
            finished_ttl=self.settings.finished_job_ttl,
            start_seq=seq,
            reply_to=job.reply_to,
        )
        error = {"message": message, "code": code} if message else None
        await publisher.close(reason, error=error)
        if message:
            metrics.FAILED.labels(job.model, code).inc()
        if job.user_id is not None:  # the job has ended: free the user's running-job claim
            await self.redis.zrem(keys.user_jobs(str(job.user_id)), job.id)
        status = JobStatus.CANCELLED if reason == "cancelled" else JobStatus.FAILED
        await self.joblog.write(
            self.redis, job, job.model, status, reason=reason, error=code if message else ""
        )
