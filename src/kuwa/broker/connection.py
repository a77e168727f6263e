"""Redis connections, and the one place Redis errors become Kuwa errors.

Every Redis client of every Kuwa process is made here, from ``KUWA_REDIS_URL``: an asyncio
client (:func:`connect`) for the gateway, kernel, executors and the web, a blocking one
(:func:`connect_sync`) for RQ. A ``redis+sentinel://`` URL (:mod:`kuwa.redis_url`) gives
clients that ask the Sentinels where the primary is whenever they (re)connect, so every
process follows a failover by itself: commands, pub/sub and RQ alike.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import socket
import sys
from collections.abc import Iterator
from typing import Any

import redis as sync_redis
import redis.asyncio as aioredis
import redis.sentinel as sync_sentinel
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from kuwa import redis_url
from kuwa.errors import BrokerError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds to open a connection to a Redis server
SENTINEL_TIMEOUT = 1.0  # seconds a Sentinel may take to answer before the next one is asked
# TCP keepalive: a connection to a server that vanished without a reset (a host or network
# failure, not a process that died) is found dead in about 5 + 3 x 2 s instead of hours.
KEEPALIVE = {
    name: value
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}


def text(value: object) -> str:
    """A Redis reply (bytes under ``decode_responses=False``) as ``str``."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _socket_options(url: str = "redis://") -> dict[str, Any]:
    """Connect timeout; TCP keepalive except on a unix socket (which has no TCP)."""
    options: dict[str, Any] = {"socket_connect_timeout": CONNECT_TIMEOUT}
    if not url.startswith("unix:"):
        options["socket_keepalive"] = True
        options["socket_keepalive_options"] = {getattr(socket, k): v for k, v in KEEPALIVE.items()}
    return options


def _server_options(target: redis_url.SentinelUrl) -> dict[str, Any]:
    """How to reach the Redis servers a Sentinel names."""
    options: dict[str, Any] = {"db": target.db, **_socket_options()}
    if target.username:
        options["username"] = target.username
    if target.password:
        options["password"] = target.password
    if target.ssl:
        options["ssl"] = True
    return options


def _sentinel_options(target: redis_url.SentinelUrl) -> dict[str, Any]:
    """How to reach the Sentinels themselves: quickly, so a dead one costs little."""
    options: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
    }
    if target.sentinel_password:
        options["password"] = target.sentinel_password
    return options


class _SentinelBlockingPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """redis-py's Sentinel pool (each new connection goes to the primary the Sentinels name
    now; a connection to a primary demoted to a replica is dropped) with the blocking pool's
    wait for a free connection, as for a plain URL. Closing it closes the connections to the
    Sentinels too."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # the client is closing (not a switch to a new primary)
            await self.sentinel_manager.aclose()


def connect(url: str, *, max_connections: int = 256) -> aioredis.Redis:
    """An asyncio Redis client (bytes replies) for ``redis://``, ``rediss://``, ``unix://``
    or ``redis+sentinel://``.

    The pool blocks (up to 30 s) when all its connections are busy instead of failing, so a
    burst of thousands of requests queues for a connection rather than erroring.
    """
    # A pooled connection can be stale after Redis restarts or fails over: reconnect (asking
    # the Sentinels again) and try again.
    retry = {
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        "retry_on_error": [ConnectionError, TimeoutError],
        "health_check_interval": 0,
    }
    target = redis_url.parse(url)
    if target is None:
        pool: aioredis.ConnectionPool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=30, **_socket_options(url), **retry
        )
    else:
        sentinel = Sentinel(target.sentinels, sentinel_kwargs=_sentinel_options(target))
        pool = _SentinelBlockingPool(  # type: ignore[no-untyped-call]  # redis-py's __init__
            target.service,
            sentinel,
            max_connections=max_connections,
            timeout=30,
            **_server_options(target),
            **retry,
        )
    pool.connection_class = _writing_in_place(pool.connection_class)
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


_IN_PLACE: dict[type[Any], type[Any]] = {}


def _writing_in_place(base: type[Any]) -> type[Any]:
    """``base`` (a redis-py connection class) writing each command in the calling task.

    redis-py wraps every write in ``asyncio.wait_for(…, socket_timeout)`` (5 s by default),
    which before Python 3.12 runs the write in a new task: the bytes leave only after the
    event loop has run everything else that was ready, twice. In a busy process that is
    most of the time a command takes: in a 256-request burst the gateway's enqueue reached
    Redis 50-450 ms after it was sent. The write is the same here (the socket buffer takes
    it at once; only a full buffer waits) and still times out after ``socket_timeout``,
    under ``asyncio.timeout``, which needs no task. Reads are redis-py's, unchanged."""
    if sys.version_info >= (3, 12):
        return base  # wait_for no longer makes a task
    if base not in _IN_PLACE:
        _IN_PLACE[base] = type(base.__name__, (_InPlaceWrite, base), {})
    return _IN_PLACE[base]


class _InPlaceWrite:
    socket_timeout: float | None

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        limit, self.socket_timeout = self.socket_timeout, None  # redis-py's write: no wait_for
        try:
            async with asyncio.timeout(limit):
                await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except builtins.TimeoutError as exc:  # redis-py disconnected when the write was cancelled
            raise TimeoutError("Timeout writing to socket") from exc
        finally:
            self.socket_timeout = limit


def connect_sync(url: str) -> sync_redis.Redis:
    """A blocking Redis client for the same URLs (RQ: the worker and the code that enqueues)."""
    target = redis_url.parse(url)
    if target is None:
        return sync_redis.Redis.from_url(url, **_socket_options(url))
    sentinel = sync_sentinel.Sentinel(target.sentinels, sentinel_kwargs=_sentinel_options(target))
    client: sync_redis.Redis = sentinel.master_for(
        target.service, redis_class=sync_redis.Redis, **_server_options(target)
    )
    return client


@contextlib.contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Translate redis-py errors raised inside the block into :class:`BrokerError`."""
    try:
        yield
    except RedisError as exc:
        raise broker_error(action, exc) from exc


def broker_error(action: str, exc: RedisError) -> BrokerError:
    """The :class:`BrokerError` for a redis-py error met while doing ``action``."""
    return BrokerError(f"Redis failed while {action}: {exc}")


async def cancel_and_wait(*tasks: asyncio.Task[Any], grace: float = 1.0) -> None:
    """Cancel the tasks and wait until they have ended; their own errors propagate.

    A cancellation that lands inside a redis-py pipeline's ``execute()`` is now and then
    swallowed (redis-py 8.2: a few cancels in a hundred), and a loop that swallowed it goes on
    looping, so ``task.cancel(); await task`` can wait for ever. A task still running after
    ``grace`` seconds is cancelled again."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=grace)
        if pending:
            names = ", ".join(sorted(task.get_name() for task in pending))
            log.warning("%s ignored a cancellation; cancelling again", names)
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
