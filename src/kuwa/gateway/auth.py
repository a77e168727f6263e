"""Bearer-token authentication with a short in-process cache (DB work off the event loop)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from kuwa.errors import AuthenticationError

if TYPE_CHECKING:
    from kuwa.accounts import Accounts, UserInfo

CACHE_MAX = 10_000


class TokenAuth:
    def __init__(self, accounts: Accounts, *, cache_seconds: float) -> None:
        self.accounts = accounts
        self.cache_seconds = cache_seconds
        self._cache: dict[bytes, tuple[UserInfo, float]] = {}
        self._inflight: dict[bytes, asyncio.Future[UserInfo | None]] = {}

    def clear(self) -> None:
        self._cache.clear()

    async def authenticate(self, request: Request) -> UserInfo:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError(
                "Missing API token: send the header 'Authorization: Bearer YOUR_TOKEN' "
                "(your token is on your profile page, or run 'kuwa-cli user token')."
            )
        key = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        user = await self._verify(key, token)
        if user is None:
            self._cache.pop(key, None)
            raise AuthenticationError("Invalid API token.")
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (user, now + self.cache_seconds)
        return user

    async def _verify(self, key: bytes, token: str) -> UserInfo | None:
        """One database lookup per token at a time: a burst of requests shares it."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[UserInfo | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            user = await run_in_threadpool(self.accounts.verify_token, token)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(user)
            return user
        finally:
            del self._inflight[key]
