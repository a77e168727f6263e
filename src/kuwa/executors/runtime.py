"""The executor runtime: pull jobs for free slots, run them, stream, cancel, drain.

The main loop reads like rq's worker: every way out of it is named and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kuwa import keys
from kuwa.broker import (
    ChunkBatcher,
    ChunkPublisher,
    ExecutorInfo,
    JobQueue,
    QueuedJob,
    Registry,
    cancel_and_wait,
)
from kuwa.broker.joblog import JobLog
from kuwa.executors import metrics
from kuwa.executors.base import Backend, BackendError, Emit
from kuwa.executors.control import Blocked, Control
from kuwa.schemas import Job, JobKind, JobStatus, Usage
from kuwa.schemas.embedding import pack_vectors
from kuwa.settings import Settings

log = logging.getLogger(__name__)

READ_BLOCK_MS = 500
PUBLISH_RETRY_SECONDS = 60.0  # how long a job whose chunks Redis lost tries to end cleanly
PUBLISH_FAILED = {
    "message": "Redis failed (a restart or a failover) while this answer was being written; "
    "please retry.",
    "code": "publish_failed",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    status: JobStatus
    reason: str  # the final chunk's finish_reason
    usage: Usage | None = None
    error: dict[str, str] | None = None

    @classmethod
    def failed(cls, message: str, code: str) -> Outcome:
        return cls(JobStatus.FAILED, "error", None, {"message": message, "code": code})


class ExecutorRuntime:
    def __init__(self, settings: Settings, backend: Backend, redis: aioredis.Redis) -> None:
        if not settings.access_code:
            raise ValueError("an executor needs at least one access code")
        for code in settings.access_code:
            if not keys.valid_access_code(code):
                raise ValueError(f"invalid access code {code!r}")
        self.settings = settings
        self.backend = backend
        self.redis = redis
        self.codes = list(dict.fromkeys(settings.access_code))
        self.id = settings.executor_name or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        )
        self.queue = JobQueue(
            redis, state_ttl=settings.transcript_ttl, fair_window=settings.fair_window
        )
        self.registry = Registry(redis, ttl=settings.heartbeat_ttl)
        self.info = ExecutorInfo(
            id=self.id,
            access_codes=tuple(self.codes),
            backend=backend.name,
            model=backend.model,
            host=socket.gethostname(),
            pid=os.getpid(),
            slots=settings.max_concurrency,
            kinds=backend.job_kinds(),
        )
        self.batcher = ChunkBatcher(
            redis,
            interval=settings.coalesce_ms / 1000,
            transcript_ttl=settings.transcript_ttl,
            finished_ttl=settings.finished_job_ttl,
            transcript_max=settings.transcript_max_chunks,
            joblog=JobLog.from_settings(settings),
            queue=self.queue,  # a job's last round refills its queue for the freed slot
        )
        self.control = Control.from_settings(settings)
        self.blocked: dict[str, str] = {}  # job id -> why an output rule stopped it
        self.running: dict[str, asyncio.Task[None]] = {}
        self.cancel_requested: set[str] = set()
        self._unpublished: set[str] = set()  # jobs stopped because Redis lost their chunks
        self.backlog: deque[QueuedJob] = deque()
        self._slot_freed = asyncio.Event()
        self._more_waiting = False  # the last take found jobs: take again before blocking
        self._held: Counter[str] = Counter()  # jobs taken and not finished, by access code
        self._report_wanted = asyncio.Event()  # the slots offered to the queues changed
        self._stopping = asyncio.Event()
        self._tokens = 0
        self._started = False
        self.completed = 0
        metrics.watch(self)

    # --- control ------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop taking jobs; finish the running ones (SIGTERM)."""
        if not self._stopping.is_set():
            log.info("executor %s: stop requested, draining %d job(s)", self.id, len(self.running))
            self._stopping.set()
            self._slot_freed.set()
            self._report_wanted.set()  # offers no slots from now on

    async def run(self, *, burst: bool = False) -> None:
        """Serve until stopped (or, with ``burst``, until the queues are empty)."""
        # Visible as "starting" while the engine loads (minutes for a big model): the model is
        # known (503, not 404) but no job is sent here yet.
        self.info.state = "starting"
        await self.registry.heartbeat(self.info)
        tasks = [asyncio.create_task(self._heartbeat_loop(), name="heartbeat")]
        try:
            await self.backend.start()
        except BaseException:
            with contextlib.suppress(RedisError, OSError):
                await cancel_and_wait(*tasks)
                await self.registry.deregister(self.info)
            raise
        self.info.model = self.backend.model
        await self.queue.ensure_groups(self.codes)
        self._started = True
        self.info.state = "ready"
        await self.registry.heartbeat(self.info)
        # Live now: its slots count, and backlogged jobs move into the stream for them.
        await self.queue.report(self.id, self.offered_slots())
        tasks.append(asyncio.create_task(self._cancel_loop(), name="cancel-listener"))
        tasks.append(asyncio.create_task(self._report_loop(), name="slot-reports"))
        log.info(
            "executor %s serving %s with %s (%d slots)",
            self.id,
            ", ".join(self.codes),
            self.backend.name,
            self.settings.max_concurrency,
        )
        try:
            reason = await self._work_loop(burst)
            log.info("executor %s: leaving work loop: %s", self.id, reason)
            self._stopping.set()  # takes no more jobs: offers no slots
            self._report_wanted.set()
            await self._drain()
        finally:
            self.info.state = "draining"
            await cancel_and_wait(*tasks)
            with contextlib.suppress(RedisError, OSError):
                await self.registry.deregister(self.info)
            await self.batcher.stop()
            await self.backend.stop()
            log.info("executor %s stopped after %d job(s)", self.id, self.completed)

    async def _work_loop(self, burst: bool) -> str:
        slots = self.settings.max_concurrency
        while True:
            if self._stopping.is_set():
                return "stop requested"
            while self.backlog and len(self.running) < slots:
                self._launch(self.backlog.popleft())
            free = slots - len(self.running)
            if free <= 0 or self.backlog:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                taken, early = await self._take(free)
            except (RedisError, OSError) as exc:
                log.warning("executor %s: reading jobs failed (%s); retrying", self.id, exc)
                await asyncio.sleep(0.5)
                continue
            if not taken:
                if burst and not self.running:
                    return "burst: queues empty"
                continue
            self._held.update(q.code for q, _ in taken)
            if len(self.codes) > 1:  # slots taken on one queue are not free for the others
                self._report_wanted.set()
            unstarted, stopped = [], []
            for q, was_cancelled in taken:
                if q.job.id in early:  # a read's job, started before it was marked
                    if was_cancelled:  # its task is cancelled, and its output dropped
                        stopped.append(q)
                    continue
                if was_cancelled:
                    unstarted.append(q)
                elif len(self.running) < slots and not self._stopping.is_set():
                    self._launch(q)  # before anything else awaits: the job runs at once
                else:  # a stop that came during the read hands it on to another executor
                    self.backlog.append(q)
            for q in unstarted:
                await self._finish_unstarted(q)
            for q in stopped:  # its task releases its slot
                await self._finish_unstarted(q, release=False)

    async def _take(self, free: int) -> tuple[list[tuple[QueuedJob, bool]], set[str]]:
        """Jobs for ``free`` slots, marked started, each with whether it was cancelled while
        queued. While jobs keep coming (the last step found some it had not waited for),
        the jobs waiting now, taken and marked in one step (take.lua); otherwise a blocking
        read (Redis hands it the first job the moment it is queued), then one step that marks
        those and takes any that came meanwhile. The work loop launches them and is back here
        before they run, so the jobs of a burst do not wait for the work of those already
        running, and a job costs two round trips only when jobs come one at a time.

        The jobs of a blocking read start at once, before that step: their output is held
        until it has marked them running (and said whether one was cancelled while queued),
        so its round trip overlaps the job's own start (the upstream request, the engine's
        prefill) instead of coming before it. Returns the jobs and the ids of those started
        already; one of those cancelled while queued has its task cancelled and its output
        dropped here."""
        if self._more_waiting:
            taken = await self.queue.take(self.id, self.codes, free)
            self._more_waiting = bool(taken)
            if taken:
                return taken, set()
        jobs = await self.queue.read(self.id, self.codes, free, READ_BLOCK_MS)
        if not jobs:
            return [], set()
        early: list[ChunkPublisher] = []  # the read jobs' publishers, held
        if not self._stopping.is_set():
            early = [self._launch(q, held=True) for q in jobs]
        try:
            taken = await self.queue.take(self.id, self.codes, max(0, free - len(jobs)), jobs)
        except BaseException:
            self._held.update(q.code for q in jobs[: len(early)])
            for publisher in early:  # not marked running, but theirs: they finish as they can
                publisher.release()
            raise
        self._more_waiting = len(taken) > len(jobs)
        for (q, was_cancelled), publisher in zip(taken, early, strict=False):
            if was_cancelled:
                self.cancel_requested.add(q.job.id)
                task = self.running.get(q.job.id)
                if task is not None:
                    task.cancel()
                await publisher.abort()
            else:
                publisher.release()
        return taken, {q.job.id for q in jobs[: len(early)]}

    def offered_slots(self) -> dict[str, int]:
        """The slots this executor offers each of its queues: all of them less those busy
        with its other queues; none while starting or draining. (Redis subtracts the jobs
        taken from the queue itself: its pending entries.)"""
        if not self._started or self._stopping.is_set():
            return dict.fromkeys(self.codes, 0)
        slots, held = self.settings.max_concurrency, self._held.total()
        return {code: max(0, slots - (held - self._held[code])) for code in self.codes}

    def _released(self, q: QueuedJob) -> None:
        """A taken job is acknowledged (finished, cancelled or handed back)."""
        self._held[q.code] -= 1
        if len(self.codes) > 1:
            self._report_wanted.set()

    def _launch(self, q: QueuedJob, *, held: bool = False) -> ChunkPublisher:
        job = q.job
        publisher = self.batcher.publisher(
            job.id, reply_to=job.reply_to, buffered=not job.stream, held=held
        )
        task = asyncio.create_task(self._run_job(q, publisher), name=f"job-{job.id}")
        self.running[job.id] = task
        return publisher

    async def _drain(self) -> None:
        for q in self.backlog:  # taken but never started: another executor can have them
            if q.job.id in self.cancel_requested:
                await self._finish_unstarted(q)
            else:
                await self.queue.requeue(q)
                self._released(q)
        self.backlog.clear()
        if not self.running:
            return
        _, pending = await asyncio.wait(
            list(self.running.values()), timeout=self.settings.drain_timeout
        )
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "executor %s: cancelled %d job(s) after drain timeout", self.id, len(pending)
            )
            await asyncio.wait(pending)

    # --- one job ------------------------------------------------------------------------
    async def _run_job(self, q: QueuedJob, publisher: ChunkPublisher) -> None:
        job = q.job
        figures = metrics.JobMetrics(q.code, self.info.backend, job.created)
        task = asyncio.current_task()

        def write(text: str) -> None:
            if publisher.failed:  # Redis lost a chunk: stop generating; end the job below
                if task is not None and job.id not in self._unpublished:
                    self._unpublished.add(job.id)
                    task.cancel()
                return
            publisher.write(text)

        try:
            outcome = await self._generate(job, write)
            # The final chunk and the job's acknowledgement leave in the same round trip.
            await publisher.close(
                outcome.reason, outcome.usage, outcome.error, finish=(q, outcome.status)
            )
            first_at = publisher.first_at if publisher.chars else None  # None: no text sent
            figures.ended(outcome.status, outcome.error, outcome.usage, first_at)
        except (RedisError, OSError) as exc:
            log.warning("executor %s: could not publish job %s: %s", self.id, job.id, exc)
            await publisher.abort()
            await self._end_unpublished(q, publisher.sent)
        finally:
            figures.close()
            self.running.pop(job.id, None)
            self.cancel_requested.discard(job.id)
            self._unpublished.discard(job.id)
            self.blocked.pop(job.id, None)
            self.completed += 1
            self._released(q)
            self._slot_freed.set()

    async def _end_unpublished(self, q: QueuedJob, seq: int) -> None:
        """Redis failed under a job (it restarted, or Sentinel moved the primary): once Redis
        answers again, end the job's stream with an explicit error and acknowledge the job,
        so its readers do not wait for their idle timeout and its entry does not stay pending.

        The round that failed may or may not have reached the readers (a primary can publish
        and die before it answers), so the error goes out as chunk ``seq`` and again as
        ``seq + 1``: a reader that expects either ends with it. Gives up after
        ``PUBLISH_RETRY_SECONDS``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_RETRY_SECONDS
        pause = 0.1
        while True:
            reply_to = q.job.reply_to
            first = self.batcher.publisher(q.job.id, start_seq=seq, reply_to=reply_to)
            second = self.batcher.publisher(q.job.id, start_seq=seq + 1, reply_to=reply_to)
            try:
                await first.close("error", error=PUBLISH_FAILED)
                await second.close("error", error=PUBLISH_FAILED, finish=(q, JobStatus.FAILED))
                log.info("executor %s: job %s ended with publish_failed", self.id, q.job.id)
                return
            except (RedisError, OSError) as exc:
                await first.abort()
                await second.abort()
                if loop.time() + pause > deadline:
                    log.warning("executor %s: gave up ending job %s: %s", self.id, q.job.id, exc)
                    return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _generate(self, job: Job, write: Emit) -> Outcome:
        """Run the job through the rules and the backend; how it ended, never an exception."""
        try:
            if job.id in self.cancel_requested:
                raise asyncio.CancelledError
            if job.kind == JobKind.EMBED:
                return await self._embed(job, write)
            prepared = self.control.prepare(job, self.backend.count_tokens)
            emit, flush = self._output(job.id, write)
            completion = await self.backend.generate(prepared, emit)
            flush()
            self._tokens += completion.usage.completion_tokens
            if job.id in self.blocked:
                return Outcome.failed(self.blocked[job.id], "blocked")
            return Outcome(JobStatus.DONE, completion.finish_reason, completion.usage)
        except Blocked as exc:
            return Outcome.failed(exc.message, "blocked")
        except asyncio.CancelledError:
            if job.id in self.blocked:
                return Outcome.failed(self.blocked[job.id], "blocked")
            if job.id in self.cancel_requested:
                return Outcome(JobStatus.CANCELLED, "cancelled")
            return Outcome.failed(
                "The executor shut down before the answer was complete.", "executor_shutdown"
            )
        except BackendError as exc:
            return Outcome.failed(str(exc), exc.code)
        except Exception as exc:
            log.exception("executor %s: job %s failed", self.id, job.id)
            return Outcome.failed(f"The model failed: {type(exc).__name__}", "model_error")

    async def _embed(self, job: Job, write: Emit) -> Outcome:
        """An embedding job: the vectors go out as the answer's text (packed, see
        :mod:`kuwa.schemas.embedding`). The Modelfile and the rules shape chats only."""
        result = await self.backend.embed(job.inputs)
        write(pack_vectors(result.rows))
        return Outcome(JobStatus.DONE, "stop", Usage(result.tokens, 0))

    def _output(self, job_id: str, write: Emit) -> tuple[Emit, Callable[[], None]]:
        """``emit`` for the backend (through the output rules) and what flushes it at the end.

        When an output rule blocks, the text before the match is sent, the rest never is,
        and the job's task is cancelled so the engine stops generating."""
        flt = self.control.output_filter()
        if flt is None:
            return write, lambda: None
        task = asyncio.current_task()

        def emit(text: str) -> None:
            write(flt.feed(text))
            if flt.blocked is not None and job_id not in self.blocked:
                self.blocked[job_id] = flt.blocked
                if task is not None:
                    task.cancel()

        def finish() -> None:
            write(flt.finish())
            if flt.blocked is not None:
                self.blocked.setdefault(job_id, flt.blocked)

        return emit, finish

    async def _finish_unstarted(self, q: QueuedJob, *, release: bool = True) -> None:
        """A job cancelled before it started: tell its readers, then drop it (and free its
        slot, unless its task, cancelled, does that)."""
        publisher = self.batcher.publisher(q.job.id, reply_to=q.job.reply_to)
        try:
            await publisher.close("cancelled", finish=(q, JobStatus.CANCELLED))
        finally:
            if release:
                self._released(q)

    # --- background loops ---------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_ttl / 3
        last_tokens, last_time = 0, time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            self.info.used = len(self.running)
            self.info.tokens_per_s = round((self._tokens - last_tokens) / (now - last_time), 1)
            if self._stopping.is_set():
                self.info.state = "draining"
            else:
                self.info.state = "ready" if self._started else "starting"
            self.info.engine = self.backend.stats()
            self.info.rules = self.control.counters()
            last_tokens, last_time = self._tokens, now
            try:
                await self.registry.heartbeat(self.info)
            except (RedisError, OSError) as exc:
                log.warning("executor %s: heartbeat failed: %s", self.id, exc)
            self._report_wanted.set()  # again: Redis may have lost the last report

    async def _report_loop(self) -> None:
        """Tell the queues how many slots this executor offers each whenever that changes
        (changes made while a report is on its way go in the next one). The only writer of
        the offers after the first, so they reach Redis in the order they were made."""
        while True:
            await self._report_wanted.wait()
            self._report_wanted.clear()
            try:
                await self.queue.report(self.id, self.offered_slots())
            except (RedisError, OSError) as exc:
                log.warning("executor %s: reporting its slots failed: %s", self.id, exc)
                await asyncio.sleep(0.5)
                self._report_wanted.set()

    async def _cancel_loop(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(keys.CANCEL_CHANNEL)
        try:
            while True:
                try:
                    message = await pubsub.get_message(timeout=None)
                except (RedisError, OSError) as exc:
                    log.warning("executor %s: cancel channel lost (%s)", self.id, exc)
                    await asyncio.sleep(0.5)
                    with contextlib.suppress(RedisError, OSError):
                        await pubsub.connect()  # type: ignore[no-untyped-call]
                    continue
                if message is None or message["type"] != "message":
                    continue
                job_id = message["data"].decode()
                if any(q.job.id == job_id for q in self.backlog):
                    self.cancel_requested.add(job_id)
                task = self.running.get(job_id)
                if task is not None:
                    log.info("executor %s: cancelling job %s", self.id, job_id)
                    self.cancel_requested.add(job_id)
                    task.cancel()
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
