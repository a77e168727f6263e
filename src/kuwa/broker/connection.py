"""Redis connections, and the one place Redis errors become Kuwa errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from kuwa.errors import BrokerError

log = logging.getLogger(__name__)


def text(value: object) -> str:
    """A Redis reply (bytes under ``decode_responses=False``) as ``str``."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def connect(url: str, *, max_connections: int = 256) -> aioredis.Redis:
    """An asyncio Redis client (bytes replies) for ``redis://``, ``rediss://`` or ``unix://``.

    The pool blocks (up to 30 s) when all its connections are busy instead of failing, so a
    burst of thousands of requests queues for a connection rather than erroring.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        health_check_interval=0,
        # A pooled connection can be stale after Redis restarts: reconnect and try again.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


@contextlib.contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Translate redis-py errors raised inside the block into :class:`BrokerError`."""
    try:
        yield
    except RedisError as exc:
        raise BrokerError(f"Redis failed while {action}: {exc}") from exc


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
