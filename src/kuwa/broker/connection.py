"""Redis connections, and the one place Redis errors become Kuwa errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from kuwa.errors import BrokerError


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
