"""Job queues: one Redis Stream per access code, read by the ``executors`` consumer group."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from kuwa import keys
from kuwa.broker.connection import redis_errors, text
from kuwa.errors import ModelUnavailableError, QueueFullError
from kuwa.schemas import Job, JobStatus

_ENQUEUE = resources.files("kuwa.broker").joinpath("enqueue.lua").read_text()
_REFILL = resources.files("kuwa.broker").joinpath("refill.lua").read_text()
_WITHDRAW = resources.files("kuwa.broker").joinpath("withdraw.lua").read_text()
_DROP_CONSUMER = resources.files("kuwa.broker").joinpath("drop_consumer.lua").read_text()


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A job as an executor received it: which queue, which stream entry."""

    code: str
    entry_id: bytes
    job: Job


class JobQueue:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_queue: int = 256,
        state_ttl: int = 3600,
        fair_window: int = 8,
    ):
        self.redis = redis
        self.max_queue = max_queue
        self.state_ttl = state_ttl
        self.fair_window = fair_window
        self._enqueue = redis.register_script(_ENQUEUE)
        self._refill = redis.register_script(_REFILL)
        self._withdraw = redis.register_script(_WITHDRAW)
        self._drop_consumer = redis.register_script(_DROP_CONSUMER)

    # --- gateway side -------------------------------------------------------------------
    async def enqueue(self, job: Job, *, retry_after: int = 2, _retry: bool = False) -> None:
        """Record the job's state and add it to its queue, in one round trip.

        Raises :class:`ModelUnavailableError` when no executor is live for the model and
        :class:`QueueFullError` when too many jobs already wait.
        """
        state = keys.job_state(job.id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                state,
                mapping={
                    "status": JobStatus.QUEUED.value,
                    "model": job.model,
                    "owner": "" if job.user_id is None else str(job.user_id),
                    "created": repr(job.created),
                },
            )
            pipe.expire(state, self.state_ttl)
            # EVALSHA straight away: a script object in a pipeline costs a SCRIPT EXISTS
            # round trip on every call. A Redis that lost the script gets it loaded again.
            user = "anon" if job.user_id is None else str(job.user_id)
            pipe.evalsha(
                self._enqueue.sha,
                6,
                keys.queue_stream(job.model),
                keys.queue_executors(job.model),
                keys.queue_ring(job.model),
                keys.queue_backlogged(job.model),
                keys.queue_backlog(job.model, user),
                keys.queue_standby(job.model),
                time.time(),
                self.max_queue,
                job.id,
                job.encode(),
                self.fair_window,
                user,
            )
            with redis_errors("enqueueing a job"):
                results = await pipe.execute(raise_on_error=False)
        outcome = results[-1]
        if isinstance(outcome, NoScriptError) and not _retry:
            with redis_errors("loading the enqueue script"):
                await self.redis.script_load(_ENQUEUE)
            await self.enqueue(job, retry_after=retry_after, _retry=True)
            return
        if isinstance(outcome, ResponseError):
            with redis_errors("cleaning up a refused job"):
                await self.redis.delete(state)
            text = str(outcome)
            if text.startswith("NOEXEC"):
                raise ModelUnavailableError(
                    f"The model '{job.model}' has no running executor right now; "
                    "try again later or ask an administrator to start one."
                )
            if text.startswith("FULL"):
                raise QueueFullError(
                    f"Too many requests are waiting for '{job.model}'; try again shortly.",
                    headers={"Retry-After": str(retry_after)},
                )
            with redis_errors("enqueueing a job"):
                raise outcome
        for result in results[:-1]:
            if isinstance(result, Exception):
                with redis_errors("recording job state"):
                    raise result

    async def cancel(self, job_id: str) -> None:
        """Ask whoever runs (or will run) the job to stop. Idempotent."""
        with redis_errors("cancelling a job"):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(keys.job_cancel(job_id), b"1", ex=self.state_ttl)
                pipe.publish(keys.CANCEL_CHANNEL, job_id.encode())
                await pipe.execute()

    async def state(self, job_id: str) -> dict[str, str]:
        """The job's state hash (status, model, owner, created, …); empty once it expired."""
        with redis_errors("reading job state"):
            raw = await self.redis.hgetall(keys.job_state(job_id))
        return {text(k): text(v) for k, v in raw.items()}

    async def owner_and_status(self, job_id: str) -> tuple[str | None, str | None]:
        with redis_errors("reading job state"):
            owner, status = await self.redis.hmget(keys.job_state(job_id), ["owner", "status"])
        return (None if owner is None else text(owner), None if status is None else text(status))

    # --- executor side ------------------------------------------------------------------
    async def ensure_groups(self, codes: list[str]) -> None:
        for code in codes:
            try:
                await self.redis.xgroup_create(
                    keys.queue_stream(code), keys.CONSUMER_GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(
        self, consumer: str, codes: list[str], count: int, block_ms: int
    ) -> list[QueuedJob]:
        """Up to ``count`` new jobs per queue, waiting at most ``block_ms`` for the first."""
        streams: dict[Any, Any] = {keys.queue_stream(code): ">" for code in codes}
        by_stream = {keys.queue_stream(code): code for code in codes}
        try:
            reply = await self.redis.xreadgroup(
                keys.CONSUMER_GROUP, consumer, streams, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_groups(codes)  # the stream was deleted under us
            return []
        out: list[QueuedJob] = []
        for stream, entries in _stream_items(reply):
            code = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
            for entry_id, fields in entries:
                if not fields:  # deleted after delivery
                    continue
                out.append(QueuedJob(code, entry_id, Job.decode(fields[b"job"])))
        return out

    async def refill(self, code: str, count: int) -> int:
        """Move up to ``count`` backlogged jobs into the stream, users taking turns."""
        moved = await self._refill(
            keys=[keys.queue_stream(code), keys.queue_ring(code), keys.queue_backlogged(code)],
            args=[count, self.fair_window, keys.queue_backlog_prefix(code)],
        )
        return int(moved)

    async def start(self, jobs: list[QueuedJob], executor: str) -> list[bool]:
        """Mark jobs running; returns for each whether it was cancelled while queued.

        In the same round trip, as many backlogged jobs as were taken move into the stream
        (round-robin over users), so the queue's fair window stays full."""
        now = repr(time.time())
        taken: dict[str, int] = {}
        for q in jobs:
            taken[q.code] = taken.get(q.code, 0) + 1
        async with self.redis.pipeline(transaction=False) as pipe:
            for code, count in taken.items():
                pipe.evalsha(
                    self._refill.sha,
                    3,
                    keys.queue_stream(code),
                    keys.queue_ring(code),
                    keys.queue_backlogged(code),
                    count,
                    self.fair_window,
                    keys.queue_backlog_prefix(code),
                )
            for q in jobs:
                pipe.exists(keys.job_cancel(q.job.id))
                pipe.hset(
                    keys.job_state(q.job.id),
                    mapping={
                        "status": JobStatus.RUNNING.value,
                        "executor": executor,
                        "started": now,
                    },
                )
            results = await pipe.execute(raise_on_error=False)
        for code, result in zip(taken, results, strict=False):
            if isinstance(result, NoScriptError):
                await self.redis.script_load(_REFILL)
                await self.refill(code, taken[code])
            elif isinstance(result, Exception):
                raise result
        flags = results[len(taken) :]
        for result in flags:
            if isinstance(result, Exception):
                raise result
        return [bool(flags[i]) for i in range(0, len(flags), 2)]

    async def requeue(self, q: QueuedJob) -> None:
        """Put a taken job back at the end of its queue for another executor."""
        stream = keys.queue_stream(q.code)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, {"id": q.job.id, "job": q.job.encode()})
            pipe.xack(stream, keys.CONSUMER_GROUP, q.entry_id)
            pipe.xdel(stream, q.entry_id)
            pipe.hset(keys.job_state(q.job.id), "status", JobStatus.QUEUED.value)
            await pipe.execute()

    async def finish(self, q: QueuedJob, status: JobStatus) -> None:
        """Acknowledge and delete the stream entry; record the final status."""
        stream = keys.queue_stream(q.code)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(stream, keys.CONSUMER_GROUP, q.entry_id)
            pipe.xdel(stream, q.entry_id)
            pipe.hset(
                keys.job_state(q.job.id),
                mapping={"status": status.value, "finished": repr(time.time())},
            )
            await pipe.execute()

    # --- kernel side --------------------------------------------------------------------
    async def consumers(self, codes: list[str]) -> dict[str, dict[str, int]]:
        """Each queue's consumers (every executor or kernel that read or claimed from it and
        was not dropped since) with the number of jobs each holds, in one round trip.
        Queues without a stream or group yet are left out."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for code in codes:
                pipe.xinfo_consumers(keys.queue_stream(code), keys.CONSUMER_GROUP)
            replies = await pipe.execute(raise_on_error=False)
        found: dict[str, dict[str, int]] = {}
        for code, reply in zip(codes, replies, strict=True):
            if isinstance(reply, ResponseError):
                continue  # no stream or group yet
            if isinstance(reply, Exception):
                raise reply
            found[code] = {text(c["name"]): int(c["pending"]) for c in reply}
        return found

    async def held(
        self, code: str, consumer: str, count: int, after: bytes | None = None
    ) -> list[bytes]:
        """Entry ids of up to ``count`` jobs that ``consumer`` holds (read or claimed, not yet
        acknowledged), oldest first, from after ``after``: page with the last id returned."""
        start = "-" if after is None else "(" + text(after)
        reply: Any = await self.redis.xpending_range(
            keys.queue_stream(code), keys.CONSUMER_GROUP, start, "+", count, consumer
        )
        return [text(entry["message_id"]).encode() for entry in reply]

    async def drop_consumer(self, code: str, consumer: str) -> bool:
        """Delete ``consumer`` from the queue's group unless it holds a job (checked in the
        same step). Whether it is gone; it comes back if it reads from the queue again."""
        dropped = await self._drop_consumer(
            keys=[keys.queue_stream(code)], args=[keys.CONSUMER_GROUP, consumer]
        )
        return bool(dropped)

    async def unread(self, code: str, until_ms: int, count: int) -> AsyncIterator[list[QueuedJob]]:
        """Pages of up to ``count`` jobs that no executor has read yet, added to the stream
        at or before ``until_ms`` (unix milliseconds), oldest first.

        Every entry up to the group's last-delivered id was handed out already and is held
        until it is acknowledged and deleted, so the scan starts after that id: jobs that
        executors hold cost nothing here, however many there are."""
        stream = keys.queue_stream(code)
        try:
            groups: Any = await self.redis.xinfo_groups(stream)
        except ResponseError:
            return  # no stream yet
        start = "-"  # no group yet: nothing was read
        for group in groups:
            if text(group["name"]) == keys.CONSUMER_GROUP:
                start = "(" + text(group["last-delivered-id"])
        while True:
            entries: Any = await self.redis.xrange(stream, start, str(until_ms), count=count)
            page = [
                QueuedJob(code, entry_id, Job.decode(fields[b"job"]))
                for entry_id, fields in entries
                if fields
            ]
            if page:
                yield page
            if len(entries) < count:
                return
            start = "(" + text(entries[-1][0])

    async def withdraw(self, code: str, entry_ids: list[bytes]) -> set[bytes]:
        """Delete those of the entries that no executor holds, in one step (none can be
        taken meanwhile); returns the ids deleted."""
        if not entry_ids:
            return set()
        deleted: Any = await self._withdraw(
            keys=[keys.queue_stream(code)], args=[keys.CONSUMER_GROUP, *entry_ids]
        )
        return {bytes(entry_id) for entry_id in deleted}


def _stream_items(reply: object) -> list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]:
    """XREADGROUP's reply (RESP2): ``[[stream, [[entry_id, fields], ...]], ...]``."""
    if not reply:
        return []
    return [(stream, entries) for stream, entries in reply]  # type: ignore[attr-defined]
