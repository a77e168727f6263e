"""Executor side of job streams: numbered, coalesced chunk messages over pub/sub.

A :class:`ChunkBatcher` (one per executor) sends the pending text of *every* running job in
one pipelined round trip, at most once per ``interval``: under load one message carries
many tokens and one round trip carries many jobs. A job's first chunk and its final chunk
wake the batcher at once and go in a round of their own, so coalescing never delays the
first token or the end of a job, and other jobs still send one message per interval.
Each chunk is appended to the job's transcript (while under the cap) before it is published,
so a reader that sees a gap can always fill it. A round is one script call, so its cost on
the executor hardly grows with the number of jobs. (Under Redis Cluster a round would have to
be split by hash slot; Kuwa runs on one Redis or Sentinel today.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from kuwa import keys
from kuwa.broker.batch import SCRIPT as BATCH_SCRIPT
from kuwa.broker.batch import CommandBatch
from kuwa.broker.connection import cancel_and_wait
from kuwa.broker.joblog import JobLog
from kuwa.broker.line import Command, Line
from kuwa.broker.queue import JobQueue, QueuedJob
from kuwa.schemas import Chunk, JobStatus, Usage

log = logging.getLogger(__name__)
LATENCY_SAMPLES = 1000  # latest jobs per model kept for TTFT/TPOT percentiles
BUFFER_FLUSH_S = 5.0  # a buffered (non-streamed) job's text leaves at least this often
_PUBLISH = resources.files("kuwa.broker").joinpath("publish.lua").read_text()


class ChunkBatcher:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        interval: float = 0.003,
        transcript_ttl: int = 3600,
        finished_ttl: int = 300,
        transcript_max: int = 20000,
        joblog: JobLog | None = None,
        queue: JobQueue | None = None,
    ) -> None:
        self.redis = redis
        self.queue = queue  # refills a queue in the round that finishes one of its jobs
        self._script = redis.register_script(_PUBLISH)
        self._books = redis.register_script(BATCH_SCRIPT)
        self._line = Line(redis, [self._script, self._books])  # every round, in order
        self.joblog = joblog or JobLog()
        self.interval = interval
        self.transcript_ttl = transcript_ttl
        # A finished job's transcript and state: kept as long as a reader may resume it.
        self.finished_ttl = min(finished_ttl, transcript_ttl)
        self.transcript_max = transcript_max
        self._dirty: dict[ChunkPublisher, None] = {}  # pending text (ordered set)
        self._urgent_dirty: dict[ChunkPublisher, None] = {}  # a first or last chunk pending
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.messages = 0

    def publisher(
        self,
        job_id: str,
        *,
        start_seq: int = 0,
        reply_to: str | None = None,
        buffered: bool = False,
        held: bool = False,
    ) -> ChunkPublisher:
        return ChunkPublisher(
            self.redis,
            job_id,
            start_seq=start_seq,
            batcher=self,
            reply_to=reply_to,
            buffered=buffered,
            held=held,
        )

    def mark(self, publisher: ChunkPublisher, *, urgent: bool) -> None:
        self._dirty[publisher] = None
        self._wake.set()
        if urgent:
            self._urgent_dirty[publisher] = None
            self._urgent.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="chunk-batcher")

    def forget(self, publisher: ChunkPublisher) -> None:
        self._dirty.pop(publisher, None)
        self._urgent_dirty.pop(publisher, None)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._line.close()

    async def _loop(self) -> None:
        """Rounds with every job's pending text, at most one per ``interval``, and between
        them rounds with only the urgent chunks (a job's first, a job's last): those never
        wait, and they do not drag the other jobs' text along, so each job sends at most one
        message per interval besides its first and its last. (Every message costs a PUBLISH
        in Redis, a read and an SSE write in a gateway and a read in the client: on a busy
        machine the same CPU the engine needs.) With nothing pending the loop sleeps until a
        job writes: no timer fires after a round that nothing followed."""
        loop = asyncio.get_running_loop()
        next_full = 0.0  # when the next round with every job's text may go
        while True:
            if self._dirty:  # (the urgent ones are dirty too)
                if loop.time() >= next_full:
                    await self._round(list(self._dirty))
                    next_full = loop.time() + self.interval
                    continue
                if self._urgent_dirty:
                    await self._round(list(self._urgent_dirty))
                    continue
                # Until the interval is over, or an urgent chunk comes. A timer, not
                # asyncio.timeout: the deadline passing is the common case (every round of a
                # long answer), and a timeout raises through the task.
                self._urgent.clear()
                timer = loop.call_at(next_full, self._urgent.set)
                await self._urgent.wait()
                timer.cancel()
            else:
                self._wake.clear()
                await self._wake.wait()

    async def _round(self, batch: list[ChunkPublisher]) -> None:
        """Send the pending chunks of ``batch`` in one round trip."""
        for p in batch:
            self._dirty.pop(p, None)
            self._urgent_dirty.pop(p, None)
        chunks = [(p, p.take()) for p in batch]
        try:
            await self._send([(p, c) for p, c in chunks if c is not None])
        except Exception as exc:  # never die with callers waiting on close()
            if not isinstance(exc, RedisError | OSError):
                log.exception("publishing %d chunk(s) failed", len(chunks))
            else:
                log.warning("publishing %d chunk(s) failed: %s", len(chunks), exc)
            for p, chunk in chunks:
                if chunk is not None:
                    p.on_failed(exc)
        else:
            for p, chunk in chunks:
                if chunk is not None:
                    p.on_sent(chunk)

    def _record(
        self,
        pipe: Any,
        q: QueuedJob,
        status: JobStatus,
        chunk: Chunk,
        now: float,
        first: float | None,
    ) -> None:
        """Per-model totals, the latest latencies and the job log, for metrics and the
        dashboard (same round trip)."""
        counters = keys.queue_counters(q.code)
        pipe.hincrby(counters, "jobs", 1)
        if status == JobStatus.FAILED:
            pipe.hincrby(counters, "failed", 1)
        tokens = chunk.usage.completion_tokens if chunk.usage else 0
        if tokens:
            pipe.hincrby(counters, "tokens", tokens)
        if status == JobStatus.DONE and first is not None and q.job.created:
            tpot = (now - first) / (tokens - 1) if tokens > 1 else 0.0
            pipe.lpush(keys.queue_latency(q.code), f"{first - q.job.created:.6f} {tpot:.6f}")
            pipe.ltrim(keys.queue_latency(q.code), 0, LATENCY_SAMPLES - 1)
        error = (chunk.error or {}).get("code", "")
        self.joblog.record(
            pipe,
            q.job,
            q.code,
            status,
            reason=chunk.finish_reason or "",
            error=error,
            tokens=chunk.usage,
            first=first,
            finished=now,
        )

    async def _send(self, items: list[tuple[ChunkPublisher, Chunk]]) -> None:
        """One round: a script call publishes every chunk, whatever the job count; first-token
        times and finished jobs' acknowledgements ride in the same pipeline."""
        if not items:
            return
        transcripts: list[str] = []
        inboxes: dict[str, int] = {}  # the gateways' inbox channels in this round, numbered
        args: list[bytes | str | int] = []
        for publisher, chunk in items:
            full = chunk.seq >= self.transcript_max  # flags: see publish.lua
            appended = 0 if full else 2 if chunk.seq == 0 else 1
            flag = (4 if full else 3) if chunk.final else appended
            transcripts.append(publisher.transcript)
            inbox = 0
            if publisher.reply_to:
                inbox = inboxes.setdefault(publisher.reply_to, len(inboxes) + 1)
            args += [publisher.channel, chunk.encode(), flag, inbox]
        args = [self.transcript_ttl, self.finished_ttl, len(inboxes), *inboxes, *args]
        publish = ("EVALSHA", self._script.sha, len(transcripts), *transcripts, *args)
        if not any(chunk.seq == 0 or chunk.final for _, chunk in items):
            # Text only (most rounds of a long answer): the script call alone, and Redis
            # sends no reply, so the executor does not wake for one (see broker.line).
            await self._line.send([publish], replies=False)
            self.rounds += 1
            self.messages += len(items)
            return
        now = repr(time.time())
        queue = self.queue
        freed: dict[str, None] = {}  # queues with a job finished in this round
        # First-token times and finished jobs' bookkeeping: one script call for all of them.
        books = CommandBatch()
        for publisher, chunk in items:
            if chunk.seq == 0:  # when the job's first token left, for latency figures
                publisher.first_at = float(now)
                books.hset(publisher.state, "first", now)
                books.expire(publisher.state, self.transcript_ttl)
            if chunk.final and publisher.finish is not None:
                q, status = publisher.finish
                stream = keys.queue_stream(q.code)
                books.xack(stream, keys.CONSUMER_GROUP, q.entry_id)
                books.xdel(stream, q.entry_id)
                books.hset(publisher.state, mapping={"status": status.value, "finished": now})
                if q.job.user_id is not None:  # its gateway may have died holding the claim
                    books.zrem(keys.user_jobs(str(q.job.user_id)), q.job.id)
                # A buffered answer leaves whole: its TTFT is when its first text was written.
                first = publisher.first_text_at if publisher.buffered else publisher.first_at
                self._record(books, q, status, chunk, float(now), first)
                freed[q.code] = None
            if chunk.final:  # kept only as long as a reader may resume it
                books.expire(publisher.state, self.finished_ttl)
        commands: list[Command] = [publish, ("EVALSHA", self._books.sha, 0, *books.args())]
        if not any(chunk.final for _, chunk in items):  # first chunks: no reply either
            await self._line.send(commands, replies=False)
            self.rounds += 1
            self.messages += len(items)
            return
        if queue is None:
            freed.clear()
        else:  # after the XACKs: the freed slots take backlogged jobs
            commands += [queue.refill_command(code) for code in freed]
        results = await self._line.send(commands)
        refills = results[len(results) - len(freed) :]
        results = results[: len(results) - len(freed)]
        if isinstance(results[0], NoScriptError):  # Redis's scripts were flushed
            await self.redis.script_load(self._script.script)
            await self.redis.evalsha(self._script.sha, len(transcripts), *transcripts, *args)
        if len(results) > 1 and isinstance(results[1], NoScriptError):
            await self.redis.script_load(self._books.script)
            await self.redis.evalsha(self._books.sha, 0, *books.args())
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, NoScriptError):
                raise result
        if queue is not None and freed:
            await queue.check_refills(list(freed), refills)
        self.rounds += 1
        self.messages += len(items)


class ChunkPublisher:
    """Streams one job's output through a batcher.

    :meth:`write` never waits. :meth:`close` queues what is left with the finish reason and
    usage, and returns once everything is published. Without a ``batcher`` the publisher
    gets a private one (a single job, e.g. the kernel's error notices, or tests). A ``held``
    publisher keeps everything until :meth:`release` (a job started before Redis has marked
    it running: nothing of it may reach Redis before that mark).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        job_id: str,
        *,
        interval: float = 0.003,
        transcript_ttl: int = 3600,
        finished_ttl: int = 300,
        transcript_max: int = 20000,
        start_seq: int = 0,
        batcher: ChunkBatcher | None = None,
        reply_to: str | None = None,
        buffered: bool = False,
        held: bool = False,
    ) -> None:
        self.batcher = batcher or ChunkBatcher(
            redis,
            interval=interval,
            transcript_ttl=transcript_ttl,
            finished_ttl=finished_ttl,
            transcript_max=transcript_max,
        )
        self._own_batcher = batcher is None
        self.transcript = keys.job_transcript(job_id)
        self.channel = keys.job_channel(job_id)
        self.reply_to = reply_to  # the inbox of the gateway that started the job
        # Buffered (the client waits for the whole answer): text leaves with the final chunk,
        # or after BUFFER_FLUSH_S, so a long answer still shows its reader it is alive.
        self.buffered = buffered
        self.held = held
        self._flushed_at = time.monotonic()
        self.first_text_at: float | None = None  # when a buffered job's first text came
        self.state = keys.job_state(job_id)
        self._buffer: list[str] = []
        self._final: Chunk | None = None
        self._seq = start_seq
        self._taken = False  # a chunk has gone to the batcher
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finish: tuple[QueuedJob, JobStatus] | None = None
        self.first_at: float | None = None  # when the first chunk left
        self.chars = 0

    @property
    def failed(self) -> bool:
        """A round with this job's chunk failed: nothing more of it will be sent."""
        return self._done.done() and not self._done.cancelled() and bool(self._done.exception())

    @property
    def sent(self) -> int:
        """Sequence number of the next chunk (= chunks published, from ``start_seq``)."""
        return self._seq

    def write(self, text: str) -> None:
        if text and self._final is None:
            self._buffer.append(text)
            self.chars += len(text)
            if self.buffered:
                if self.first_text_at is None:
                    self.first_text_at = time.time()
                now = time.monotonic()
                if now - self._flushed_at < BUFFER_FLUSH_S:
                    return
                self._flushed_at = now
            if self.held:
                return
            # The job's first text is urgent (TTFT), even while an earlier round is in flight.
            first = self._seq == 0 and not self._taken
            self.batcher.mark(self, urgent=first and len(self._buffer) == 1)

    def release(self) -> None:
        """Send what a ``held`` publisher kept (its first text and its end are urgent)."""
        if self.held:
            self.held = False
            if self._final is not None or (self._buffer and not self.buffered):
                self.batcher.mark(self, urgent=True)

    async def close(
        self,
        finish_reason: str,
        usage: Usage | None = None,
        error: dict[str, str] | None = None,
        *,
        finish: tuple[QueuedJob, JobStatus] | None = None,
    ) -> None:
        """Publish the rest of the text and the final chunk.

        With ``finish``, the job's stream entry is acknowledged and its status recorded in
        the same round trip as the final chunk."""
        self.finish = finish
        if self._final is None:
            self._final = Chunk(-1, "", finish_reason, usage, error)
            if not self.held:
                self.batcher.mark(self, urgent=True)
        try:
            await self._done
        finally:
            if self._own_batcher:
                await self.batcher.stop()

    async def abort(self) -> None:
        """Stop without sending anything more (the job's readers are gone)."""
        self.batcher.forget(self)
        if not self._done.done():
            self._done.cancel()
        if self._own_batcher:
            await self.batcher.stop()

    # --- called by the batcher ------------------------------------------------------------
    def take(self) -> Chunk | None:
        """The next chunk to send: the buffered text, final if the job has ended."""
        if self._done.done():
            return None
        text = "".join(self._buffer)
        self._buffer.clear()
        self._taken = True
        final = self._final
        if final is not None:
            return Chunk(self._seq, text, final.finish_reason, final.usage, final.error)
        return Chunk(self._seq, text) if text else None

    def on_sent(self, chunk: Chunk) -> None:
        self._seq += 1
        if chunk.final and not self._done.done():
            self._done.set_result(None)

    def on_failed(self, exc: BaseException) -> None:
        if not self._done.done():
            self._done.set_exception(exc)
