"""The batcher's own Redis connection, on which most rounds ask for no reply.

Most publish rounds of an answer need nothing back from Redis. Awaiting each reply costs the
executor a wake-up per round (on a shared vCPU about as much CPU as the round itself: at one
paced stream, one of its two wake-ups per token), and on a busy core that wake-up competes
with the gateway that is about to forward the chunk. So a round that ends no job is sent
after ``CLIENT REPLY SKIP`` and Redis sends no reply (a paused read would not do: uvloop's
libuv disarms a paused socket only when its next reply arrives, which is the wake-up).

Every round goes through this one connection, so Redis runs them in the order they were
sent, skipped replies or not: a job's last chunk never overtakes its text. Rounds that end
jobs read their replies (their errors end those jobs, as before). A write that fails
reopens the connection and sends the round again (the client's retry policy, as for any
command); a round written into a connection Redis had already closed, unseen because no
reply was awaited, is lost like a refused one (below).

What a skipped reply cannot tell: that Redis refused the round (out of memory; its scripts
flushed by hand: every (re)connection loads them first, so a restart or a failover cannot
lose them). Then the text is neither published nor in the transcript, and the job's readers
see the sequence gap and end with ``stream_gap`` ("part of the answer was lost"); the
executor learns at the job's last round. A server that does not honour ``CLIENT REPLY``
(some managed services forbid ``CLIENT``) is seen at each connection, and then every reply
is read, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import hiredis  # a dependency: redis[hiredis]
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

log = logging.getLogger(__name__)
Command = Sequence[bytes | str | int | float]
_SKIP = ("CLIENT", "REPLY", "SKIP")


class Line:
    """One connection from ``redis``'s pool, held until :meth:`close`; each (re)connection
    loads ``scripts``."""

    def __init__(self, redis: aioredis.Redis, scripts: Sequence[AsyncScript]) -> None:
        self.redis = redis
        self._scripts = scripts
        self._conn: Any = None  # a redis-py asyncio connection
        self.skips = True  # the server honours CLIENT REPLY SKIP (seen at each connection)

    async def send(self, commands: list[Command], *, replies: bool = True) -> list[Any]:
        """Send ``commands`` in one write. With ``replies``, return their replies (Redis's
        errors as values, like a pipeline's ``raise_on_error=False``); without, Redis sends
        none and this returns once they are written (on a server without ``CLIENT REPLY``,
        once their replies are read). Connection errors raise."""
        conn = await self._connection()
        if not replies and self.skips and conn.is_connected:  # the common case, no retry frames
            try:
                await conn.send_packed_command(_pack(commands, True), check_health=False)
                return []
            except (ConnectionError, TimeoutError):
                pass  # redis-py disconnected it: the retry below reconnects

        async def attempt() -> list[Any]:
            if not conn.is_connected:  # connect() asks the Sentinels where the primary is now
                await conn.connect()  # (a write would reconnect to the old address)
            skip = not replies and self.skips
            await conn.send_packed_command(_pack(commands, skip), check_health=False)
            results: list[Any] = []
            if not skip:
                for _ in commands:
                    try:
                        results.append(await conn.read_response())
                    except ResponseError as exc:
                        results.append(exc)
            return results

        async def failed(_: BaseException) -> None:
            await conn.disconnect()

        try:
            results: list[Any] = await conn.retry.call_with_retry(attempt, failed)
        except BaseException:  # cancelled mid-read: replies may be left on the connection
            await conn.disconnect()
            raise
        if replies:
            return results
        for result in results:  # a server that cannot skip replies: report what it refused
            if isinstance(result, ResponseError):
                log.warning("Redis refused a publish round: %s", result)
        return []

    async def close(self) -> None:
        """Give the connection back to the pool."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.deregister_connect_callback(self._load)
            await self.redis.connection_pool.release(conn)

    async def _connection(self) -> Any:
        if self._conn is None:
            conn = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                await self._load(conn)  # the pool connected it
            except BaseException:
                await self.redis.connection_pool.release(conn)
                raise
            conn.register_connect_callback(self._load)
            self._conn = conn
        return self._conn

    async def _load(self, conn: Any) -> None:
        """Load the scripts (a skipped reply would hide a ``NOSCRIPT``), and see whether
        this server skips replies: with ``CLIENT REPLY SKIP`` it answers only the second
        ``PING``; a server without it (or that forbids it) answers all three."""
        loads = [("SCRIPT", "LOAD", script.script) for script in self._scripts]
        try:
            await conn.send_packed_command(
                conn.pack_commands([*loads, _SKIP, ("PING",), ("PING",)]), check_health=False
            )
            for _ in loads:
                await conn.read_response()
            try:
                await conn.read_response()  # the second PING's, if the first was skipped
                self.skips = True
            except ResponseError as exc:
                log.warning(
                    "Redis does not skip replies (%s): publish rounds will wait for theirs", exc
                )
                self.skips = False
                await conn.read_response()
                await conn.read_response()
        except BaseException:  # replies may be left unread: the connection is of no use
            await conn.disconnect()
            raise


def _pack(commands: list[Command], skip: bool) -> list[bytes]:
    """The commands in Redis's protocol, by hiredis's C packer straight away (redis-py runs
    each argument through a Python encoder first, which was a fifth of an executor's time
    in a burst's large rounds; the arguments here are only ``str``, ``bytes``, ``int`` and
    ``float``, UTF-8 as redis-py's default encoder has it)."""
    if skip:
        commands = [c for command in commands for c in (_SKIP, command)]
    # (hiredis's stub types the argument as a tuple of one item)
    return [b"".join([hiredis.pack_command(tuple(c)) for c in commands])]  # type: ignore[arg-type]
