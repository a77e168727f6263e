"""Gateway side of job streams: one pub/sub connection per process, shared by every stream.

The jobs a process starts come to its inbox: it subscribes to its own inbox channel once, at
start, and names it in each job (``reply_to``), so starting a job costs no subscription
round trip, and an executor sends the chunks of all of a gateway's jobs in a round as one
message (:meth:`Hub.own`). Other readers of a job (late or reconnecting ones, another
gateway's) subscribe to the job's own channel: :meth:`Hub.subscribe` returns once Redis has
confirmed the subscription, so a caller that subscribes before it reads cannot miss a
chunk. Chunks carry sequence numbers; a gap (a
message lost while the connection was re-established, say) is filled from the job's
transcript, and a late reader replays the transcript before following live messages.
The hub's :class:`~kuwa.broker.watch.ExecutorWatch` ends the streams of an executor that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kuwa import keys
from kuwa.broker.watch import ExecutorWatch
from kuwa.errors import JobFailedError
from kuwa.schemas import Chunk

log = logging.getLogger(__name__)


class _Signal:
    """A message from the hub itself in a reader's queue (never from Redis): one type check
    per chunk tells them apart from chunk messages."""

    __slots__ = ("error", "final")

    def __init__(self, error: dict[str, str] | None = None, final: bool = False) -> None:
        self.error = error  # the stream ends with this error ({"message", "code"})
        self.final = final  # as a final error chunk (the job is over) rather than raised


_RESYNC = _Signal()  # put in every queue after a reconnect: re-read the transcript
_TIMEOUT = _Signal()  # put in a queue when its stream has been idle too long


class Mailbox:
    """A reader's queue: a list and at most one waiting future. (An ``asyncio.Queue`` holds
    three deques, ~2.3 KB, and the gateway keeps one per open stream.) One reader only."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[bytes | _Signal] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: bytes | _Signal) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> bytes | _Signal:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class Watcher(Protocol):
    """What a reader that passes itself to :meth:`Subscription.chunks` learns as it reads:
    each chunk before it is yielded, and what to raise for a failed job's final chunk and
    instead of an exception (its own record of why the stream ended). One generator then
    does the reading and the watching: each layer of ``async for`` is a frame that every
    open stream keeps while it waits."""

    def seen(self, chunk: Chunk) -> None: ...

    def failure(self, chunk: Chunk) -> Exception: ...

    def broken(self, exc: Exception) -> Exception: ...


class Subscription:
    def __init__(self, hub: Hub, job_id: str, channel: bytes, *, owned: bool = False) -> None:
        self.hub = hub
        self.job_id = job_id
        self.channel = channel
        self.owned = owned  # the job's chunks come through the hub's inbox
        self.queue = Mailbox()
        self.closed = False
        self.deadline = math.inf  # when a reader that got nothing until then times out

    async def chunks(
        self, *, idle_timeout: float, from_seq: int = 0, watcher: Watcher | None = None
    ) -> AsyncIterator[Chunk]:
        """Chunks in sequence order from ``from_seq`` through the final one.

        Raises :class:`JobFailedError` when nothing arrives for ``idle_timeout`` seconds or
        a gap cannot be filled from the transcript. With a ``watcher``, a failed job's final
        chunk is yielded as its text alone and then raised as ``watcher.failure(chunk)``,
        and any exception as ``watcher.broken(exc)``.
        """
        expected = from_seq
        loop = asyncio.get_running_loop()
        # No timer of its own: the hub's one timer checks every reader's deadline (a timer
        # per stream cost ~0.7 KB of every open stream).
        self.deadline = loop.time() + idle_timeout
        self.hub.due(self.deadline)
        try:  # one generator (each layer of `async for` is a frame every open stream keeps)
            while True:
                raw = await self.queue.get()
                if isinstance(raw, _Signal):
                    if raw is _TIMEOUT:
                        raise JobFailedError(
                            "The model sent nothing for a long time; the request was stopped.",
                            code="timeout",
                        )
                    if raw.error is not None:  # the job's executor died (the hub's watch)
                        if not raw.final:
                            raise JobFailedError(raw.error["message"], code=raw.error["code"])
                        pending = [Chunk(expected, finish_reason="error", error=raw.error)]
                    else:
                        pending = await self.hub.transcript(self.job_id, expected)
                        if not pending and not await self.hub.job_exists(self.job_id):
                            raise JobFailedError(
                                "Redis lost this request (it restarted or was flushed); "
                                "please retry.",
                                code="broker_restarted",
                            )
                else:
                    chunk = Chunk.decode(raw)
                    if chunk.seq < expected:
                        continue
                    pending = [chunk]
                    if chunk.seq > expected:
                        pending = await self.hub.transcript(self.job_id, expected, chunk.seq - 1)
                        pending.append(chunk)
                for chunk in pending:
                    if chunk.seq < expected:
                        continue
                    if chunk.seq > expected:
                        raise JobFailedError(
                            "Part of the answer was lost in transit and could not be recovered.",
                            code="stream_gap",
                        )
                    expected += 1
                    self.deadline = loop.time() + idle_timeout
                    if watcher is not None:
                        watcher.seen(chunk)
                        if chunk.final and chunk.error is not None:
                            if chunk.text:
                                yield Chunk(chunk.seq, chunk.text)
                            raise watcher.failure(chunk)
                    yield chunk
                    if chunk.final:
                        return
        except Exception as exc:
            if watcher is None:
                raise
            instead = watcher.broken(exc)
            if instead is exc:
                raise
            raise instead from exc
        finally:
            self.deadline = math.inf

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.hub.unsubscribe(self)


class Hub:
    def __init__(self, redis: aioredis.Redis, *, watch_interval: float = 1.0) -> None:
        self.redis = redis
        self._pubsub = redis.pubsub()
        self._subs: dict[bytes, list[Subscription]] = {}  # a channel may have many readers
        self._owned: dict[bytes, Subscription] = {}  # job channel -> the reader that started it
        self.inbox = keys.gateway_inbox(uuid.uuid4().hex)
        self._inbox = self.inbox.encode()
        self._confirm: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._control = keys.GATEWAY_CONTROL.encode()
        self.watch = ExecutorWatch(redis, self._job_ids, self._lose, interval=watch_interval)
        self._watcher: asyncio.Task[None] | None = None
        self._check: asyncio.TimerHandle | None = None  # the readers' idle check
        self._check_at = math.inf

    def due(self, deadline: float) -> None:
        """A reader times out at ``deadline`` unless a chunk comes first: the idle check
        runs by then. One timer for every reader, armed for the earliest deadline; each
        check walks the readers (rare: only when some reader has been idle that long)."""
        if deadline < self._check_at:
            if self._check is not None:
                self._check.cancel()
            self._check_at = deadline
            self._check = asyncio.get_running_loop().call_at(deadline, self._check_idle)

    def _check_idle(self) -> None:
        self._check, self._check_at = None, math.inf
        now = asyncio.get_running_loop().time()
        earliest = math.inf
        for sub in [*self._owned.values(), *(s for r in self._subs.values() for s in r)]:
            if sub.deadline <= now:
                sub.deadline = math.inf
                sub.queue.put_nowait(_TIMEOUT)
            elif sub.deadline < earliest:
                earliest = sub.deadline
        if earliest < math.inf:
            self.due(earliest)

    @property
    def active(self) -> int:
        """Open subscriptions (readers), over all channels."""
        return len(self._owned) + sum(len(readers) for readers in self._subs.values())

    async def start(self) -> None:
        """Subscribe to the control channel and this process's inbox; returns once Redis has
        confirmed the inbox (no job can name it before)."""
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm[self._inbox] = deque([confirmed])
        await self._pubsub.subscribe(self._control, self._inbox)
        self._reader = asyncio.create_task(self._read_loop(), name="kuwa-hub")
        self._watcher = asyncio.create_task(self.watch.run(), name="kuwa-executor-watch")
        await confirmed

    def own(self, job_id: str) -> Subscription:
        """The reader of a job this process is about to start (name :attr:`inbox` in it):
        its chunks come through the inbox, so this costs no round trip."""
        sub = Subscription(self, job_id, keys.job_channel(job_id).encode(), owned=True)
        self._owned[sub.channel] = sub
        return sub

    async def stop(self) -> None:
        if self._check is not None:
            self._check.cancel()
            self._check, self._check_at = None, math.inf
        for task in (self._watcher, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()

    async def subscribe(self, job_id: str, *, replay: bool = False) -> Subscription:
        """Subscribe to a job's channel and wait until Redis confirms it.

        With ``replay`` the reader first gets what the job's transcript already holds (a
        late or reconnecting reader), then follows live messages without duplicates.
        """
        channel = keys.job_channel(job_id).encode()
        sub = Subscription(self, job_id, channel)
        readers = self._subs.setdefault(channel, [])
        readers.append(sub)
        try:
            if len(readers) == 1:  # the first reader of this channel subscribes it
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._confirm.setdefault(channel, deque()).append(future)
                try:
                    await self._pubsub.subscribe(channel)
                except BaseException as exc:
                    self._drop_confirm(channel, future)
                    if not isinstance(exc, asyncio.CancelledError):
                        future.set_exception(exc)
                        future.exception()  # the other waiters re-raise it
                    raise
            pending = self._confirm.get(channel)
            if pending:  # not confirmed yet: wait with whoever subscribed it
                await asyncio.shield(pending[-1])
        except BaseException:
            await self.unsubscribe(sub)
            raise
        if replay:
            sub.queue.put_nowait(_RESYNC)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        if sub.owned:
            if self._owned.get(sub.channel) is sub:
                del self._owned[sub.channel]
            return
        readers = self._subs.get(sub.channel)
        if readers is None or sub not in readers:
            return
        readers.remove(sub)
        if not readers:  # the last reader leaves: unsubscribe the channel
            del self._subs[sub.channel]
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(sub.channel)

    def _job_ids(self) -> list[str]:
        """The jobs this process has readers for (the executor watch's view)."""
        followed = [readers[0].job_id for readers in self._subs.values() if readers]
        return [sub.job_id for sub in self._owned.values()] + followed

    def _lose(self, job_id: str, error: dict[str, str], final: bool) -> None:
        """End every reader of the job with ``error``, after what it already has queued."""
        signal = _Signal(error, final)
        channel = keys.job_channel(job_id).encode()
        owner = self._owned.get(channel)
        for sub in [*self._subs.get(channel, ()), *([owner] if owner else [])]:
            sub.queue.put_nowait(signal)

    async def job_exists(self, job_id: str) -> bool:
        return bool(await self.redis.exists(keys.job_state(job_id)))

    async def transcript(self, job_id: str, start: int, end: int = -1) -> list[Chunk]:
        raws = await self.redis.lrange(keys.job_transcript(job_id), start, end)
        return [Chunk.decode(r) for r in raws]

    def _drop_confirm(self, channel: bytes, future: asyncio.Future[None]) -> None:
        waiters = self._confirm.get(channel)
        if waiters and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._confirm[channel]

    def _deliver(self, message: bytes) -> None:
        """An inbox message: ``channel\nchunk\nchannel\nchunk…`` (see publish.lua)."""
        parts = message.split(b"\n")
        owned = self._owned
        for i in range(0, len(parts) - 1, 2):
            target = owned.get(parts[i])
            if target is not None:
                target.queue.put_nowait(parts[i + 1])

    async def _read_loop(self) -> None:
        """Read the shared connection. Chunk messages are dispatched straight from the raw
        reply (the hot path: no per-message dict); (un)subscribe confirmations go through
        redis-py's own bookkeeping, which it needs to resubscribe after a reconnect."""
        backoff = 0.05
        while True:
            try:
                conn = self._pubsub.connection
                assert conn is not None
                response = await conn.read_response(timeout=math.inf, push_request=True)
                backoff = 0.05
            except (RedisError, OSError) as exc:
                log.warning("pub/sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.connect()  # type: ignore[no-untyped-call]
                    for readers in [*self._subs.values(), self._owned.values()]:
                        for sub in readers:
                            sub.queue.put_nowait(_RESYNC)
                continue
            if not isinstance(response, list) or len(response) < 3:
                continue
            kind = response[0]
            channel = response[1]
            if kind == b"message":
                if channel == self._inbox:
                    self._deliver(response[2])
                else:
                    for target in self._subs.get(channel, ()):
                        target.queue.put_nowait(response[2])
                continue
            await self._pubsub.handle_message(response)
            if kind == b"subscribe":
                waiters = self._confirm.get(channel)
                if waiters:
                    future = waiters.popleft()
                    if not waiters:
                        del self._confirm[channel]
                    if not future.done():
                        future.set_result(None)
