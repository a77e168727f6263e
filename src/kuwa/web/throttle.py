"""Sign-in throttling per account and per client address (counters in Redis, all gateways).

Only failures count. Beyond ``max_failures`` for an account, or ``ip_max_failures`` for an
address, within ``window`` seconds, sign-in is refused for what is left of the window, with
the same answer whether the account exists or not.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker.connection import redis_errors
from kuwa.errors import RateLimitError


class LoginThrottle:
    def __init__(
        self, redis: aioredis.Redis, *, max_failures: int, ip_max_failures: int, window: int
    ) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.ip_max_failures = ip_max_failures
        self.window = window

    async def check(self, account: str, ip: str) -> None:
        """Raise RateLimitError when this account or address failed too often lately."""
        with redis_errors("checking sign-in attempts"):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(self._account(account))
                pipe.ttl(self._account(account))
                pipe.get(self._ip(ip))
                pipe.ttl(self._ip(ip))
                acct, acct_ttl, by_ip, ip_ttl = await pipe.execute()
        wait = 0
        if acct is not None and int(acct) >= self.max_failures:
            wait = max(wait, int(acct_ttl))
        if by_ip is not None and int(by_ip) >= self.ip_max_failures:
            wait = max(wait, int(ip_ttl))
        if wait > 0:
            minutes = max(1, (wait + 59) // 60)
            raise RateLimitError(
                "Too many failed sign-ins. Please wait "
                f"{minutes} minute{'s' if minutes != 1 else ''} and try again.",
                code="login_throttled",
                headers={"Retry-After": str(wait)},
            )

    async def failed(self, account: str, ip: str) -> None:
        with redis_errors("recording a failed sign-in"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in (self._account(account), self._ip(ip)):
                    pipe.incr(key)
                    pipe.expire(key, self.window, nx=True)
                await pipe.execute()

    async def succeeded(self, account: str) -> None:
        with redis_errors("recording a sign-in"):
            await self.redis.delete(self._account(account))

    @staticmethod
    def _account(account: str) -> str:
        # Hashed: the key names no address, so a Redis dump lists no one's email.
        digest = hashlib.sha256(account.strip().lower().encode()).hexdigest()[:32]
        return keys.login_failures("account", digest)

    @staticmethod
    def _ip(ip: str) -> str:
        return keys.login_failures("ip", ip or "unknown")
