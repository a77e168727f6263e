"""Job queues: one Redis Stream per access code, read by the ``executors`` consumer group.

Admission keeps every slot busy: executors offer their slots to each queue they serve, and a
live executor's free slots are its offer less its pending entries (jobs read, not yet
acknowledged). The enqueue script lets as many jobs straight into the stream as the live
executors have free slots, plus the fair window; only the jobs beyond the free slots count as
waiting (against ``max_queue``). The rest wait in per-user backlogs and move to the stream in
turns whenever room appears (a job finishes, an executor offers slots, a job is enqueued).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from kuwa import keys
from kuwa.broker.connection import redis_errors, text
from kuwa.errors import ModelUnavailableError, QueueFullError
from kuwa.schemas import Job, JobStatus

_SCRIPTS = resources.files("kuwa.broker")
_ADMISSION = _SCRIPTS.joinpath("admission.lua").read_text()  # functions both scripts use
_ENQUEUE = _ADMISSION + _SCRIPTS.joinpath("enqueue.lua").read_text()
_REFILL = _ADMISSION + _SCRIPTS.joinpath("refill.lua").read_text()
_TAKE = _ADMISSION + _SCRIPTS.joinpath("take.lua").read_text()
_WITHDRAW = _SCRIPTS.joinpath("withdraw.lua").read_text()
_DROP_CONSUMER = _SCRIPTS.joinpath("drop_consumer.lua").read_text()


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
        self._take = redis.register_script(_TAKE)
        self._withdraw = redis.register_script(_WITHDRAW)
        self._drop_consumer = redis.register_script(_DROP_CONSUMER)

    # --- gateway side -------------------------------------------------------------------
    async def enqueue(self, job: Job, *, retry_after: int = 2, _retry: bool = False) -> None:
        """Record the job's state and add it to its queue, in one round trip.

        Raises :class:`ModelUnavailableError` when no executor is live for the model and
        :class:`QueueFullError` when ``max_queue`` jobs already wait for a slot (beyond the
        live executors' free slots).
        """
        user = "anon" if job.user_id is None else str(job.user_id)
        # One script call: the admission check, the job's state and its place in the queue.
        # EVALSHA straight away (a Script object would ask SCRIPT EXISTS first); a Redis that
        # lost the script gets it loaded again.
        with redis_errors("enqueueing a job"):
            try:
                await self.redis.evalsha(
                    self._enqueue.sha,
                    8,
                    keys.queue_stream(job.model),
                    keys.queue_executors(job.model),
                    keys.queue_ring(job.model),
                    keys.queue_backlogged(job.model),
                    keys.queue_backlog(job.model, user),
                    keys.queue_standby(job.model),
                    keys.queue_slots(job.model),
                    keys.job_state(job.id),
                    time.time(),
                    self.max_queue,
                    job.id,
                    job.encode(),
                    self.fair_window,
                    user,
                    keys.queue_backlog_prefix(job.model),
                    self.state_ttl,
                    "status",
                    JobStatus.QUEUED.value,
                    "model",
                    job.model,
                    "owner",
                    "" if job.user_id is None else str(job.user_id),
                    "created",
                    repr(job.created),
                )
            except NoScriptError:
                if _retry:
                    raise
                await self.redis.script_load(_ENQUEUE)
                await self.enqueue(job, retry_after=retry_after, _retry=True)
            except ResponseError as exc:
                text = str(exc)
                if text.startswith("NOEXEC"):
                    raise ModelUnavailableError(
                        f"The model '{job.model}' has no running executor right now; "
                        "try again later or ask an administrator to start one."
                    ) from None
                if text.startswith("FULL"):
                    raise QueueFullError(
                        f"Too many requests are waiting for '{job.model}'; try again shortly.",
                        headers={"Retry-After": str(retry_after)},
                    ) from None
                raise

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

    def _refill_call(self, code: str, executor: str = "", slots: int = 0) -> list[Any]:
        """``EVALSHA`` arguments of refill.lua: record the ``slots`` that ``executor`` offers
        ``code`` (unless ``executor`` is empty), then move backlogged jobs into the stream."""
        return [
            self._refill.sha,
            5,
            keys.queue_stream(code),
            keys.queue_executors(code),
            keys.queue_slots(code),
            keys.queue_ring(code),
            keys.queue_backlogged(code),
            time.time(),
            self.fair_window,
            keys.queue_backlog_prefix(code),
            executor,
            max(slots, 0),
        ]

    def refill_command(self, code: str) -> tuple[Any, ...]:
        """The refill of ``code`` as a command to send (see :meth:`refill_in`)."""
        return ("EVALSHA", *self._refill_call(code))

    def refill_in(self, pipe: Any, code: str) -> None:
        """Add a refill of ``code`` to a pipeline (after the ``XACK`` of a finished job: its
        slot is free, so a backlogged job may take it)."""
        pipe.evalsha(*self._refill_call(code))

    async def check_refills(self, codes: Sequence[str], results: Sequence[object]) -> None:
        """Raise the first error among the replies of :meth:`refill_in` calls; refill again
        if Redis had lost the script (a restart)."""
        if any(isinstance(r, NoScriptError) for r in results):
            await self.redis.script_load(_REFILL)
            await self._refill_many({code: 0 for code in codes}, "")
            return
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def _refill_many(self, slots: dict[str, int], executor: str) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for code, n in slots.items():
                pipe.evalsha(*self._refill_call(code, executor, n))
            results = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in results):  # Redis lost its scripts
            await self.redis.script_load(_REFILL)
            return await self._refill_many(slots, executor)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return sum(int(r) for r in results)

    async def refill(self, code: str) -> int:
        """Move backlogged jobs into the stream, users taking turns, until it holds the live
        executors' free slots plus the fair window of unread jobs. Returns how many moved."""
        return await self._refill_many({code: 0}, "")

    async def report(self, executor: str, slots: dict[str, int]) -> int:
        """Record how many slots ``executor`` offers each queue (access code -> slots; 0 while
        it drains), then refill those queues. Its free slots are what it offers less the jobs
        it has taken and not finished. Returns how many backlogged jobs moved."""
        return await self._refill_many(slots, executor)

    async def take(
        self, consumer: str, codes: list[str], count: int, read: Sequence[QueuedJob] = ()
    ) -> list[tuple[QueuedJob, bool]]:
        """Take up to ``count`` new jobs per queue and mark them running, and the jobs that
        :meth:`read` returned (``read``) too, in one step: each job with whether it was
        cancelled while queued, ``read`` first. Never waits: none waiting, none taken.

        ``started`` is when the queue handed a job out, by Redis's clock (take.lua): now for
        the new jobs, when the read was served (to the millisecond) for ``read``; never when
        this process got round to the reply. Taking jobs makes them the executor's pending
        entries, so its free slots go down in the same step; the queues are then refilled,
        for jobs taken beyond the slots offered (an executor that offers none, or serves
        several queues)."""
        calls: dict[str, tuple[int, list[QueuedJob]]] = {code: (count, []) for code in codes}
        for q in read:
            calls.setdefault(q.code, (count, []))[1].append(q)
        replies = await self._take_many(consumer, calls)
        cancelled: dict[str, bool] = {}
        taken: list[tuple[QueuedJob, bool]] = []
        for code, reply in replies.items():
            marked = calls[code][1]
            for q, flag in zip(marked, reply[: len(marked)], strict=True):
                cancelled[q.job.id] = bool(flag)
            new = reply[len(marked) :]
            for i in range(0, len(new), 3):
                entry_id, payload, flag = new[i : i + 3]
                taken.append((QueuedJob(code, entry_id, Job.decode(payload)), bool(flag)))
        return [(q, cancelled.get(q.job.id, False)) for q in read] + taken

    async def start(self, jobs: list[QueuedJob], executor: str) -> list[bool]:
        """Mark jobs that :meth:`read` returned running (:meth:`take` taking none); for
        each, whether it was cancelled while queued."""
        return [flag for _, flag in await self.take(executor, [], 0, jobs)]

    async def _take_many(
        self, consumer: str, calls: dict[str, tuple[int, list[QueuedJob]]]
    ) -> dict[str, list[Any]]:
        """take.lua on each queue (access code -> (new jobs to take, jobs to mark)), in one
        round trip; each queue's reply."""
        state, cancel = keys.job_key_around("state"), keys.job_key_around("cancel")
        async with self.redis.pipeline(transaction=False) as pipe:
            for code, (count, marks) in calls.items():
                pipe.evalsha(
                    self._take.sha,
                    5,
                    keys.queue_stream(code),
                    keys.queue_executors(code),
                    keys.queue_slots(code),
                    keys.queue_ring(code),
                    keys.queue_backlogged(code),
                    time.time(),
                    self.fair_window,
                    keys.queue_backlog_prefix(code),
                    keys.CONSUMER_GROUP,
                    consumer,
                    JobStatus.RUNNING.value,
                    *state,
                    *cancel,
                    count,
                    *(word for q in marks for word in (q.entry_id, q.job.id)),
                )
            results = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in results):  # Redis lost its scripts
            await self.redis.script_load(_TAKE)
            return await self._take_many(consumer, calls)
        for result in results:
            if isinstance(result, ResponseError) and "NOGROUP" in str(result):
                await self.ensure_groups(list(calls))  # the stream was deleted under us
                return {}
            if isinstance(result, Exception):
                raise result
        return dict(zip(calls, results, strict=True))

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
        """Acknowledge and delete the stream entry; record the final status; refill the
        queue for the slot that freed up."""
        stream = keys.queue_stream(q.code)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(stream, keys.CONSUMER_GROUP, q.entry_id)
            pipe.xdel(stream, q.entry_id)
            pipe.hset(
                keys.job_state(q.job.id),
                mapping={"status": status.value, "finished": repr(time.time())},
            )
            self.refill_in(pipe, q.code)
            results = await pipe.execute(raise_on_error=False)
        for result in results[:-1]:
            if isinstance(result, Exception):
                raise result
        await self.check_refills([q.code], results[-1:])

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
