"""Web sign-ins: a random session id in a signed cookie, the session itself in Redis.

Keeping the session server-side means signing out, a password change, a group change or
deleting the account ends sign-ins everywhere at once. The cookie (Starlette's
SessionMiddleware: HttpOnly, SameSite=Lax, Secure over HTTPS) holds only the session id,
flash messages and the OIDC round-trip state.
"""

from __future__ import annotations

import secrets
import time

import orjson
import redis.asyncio as aioredis
from starlette.requests import Request

from kuwa import keys
from kuwa.broker.connection import redis_errors

SESSION_KEY = "sid"


class Sessions:
    def __init__(self, redis: aioredis.Redis, *, max_age: int) -> None:
        self.redis = redis
        self.max_age = max_age

    async def start(self, request: Request, user_id: int, *, via: str) -> None:
        """Sign ``user_id`` in on this browser (a fresh id: no session fixation)."""
        await self.end(request)
        sid = secrets.token_urlsafe(32)
        record = orjson.dumps({"user": user_id, "via": via, "at": int(time.time())})
        with redis_errors("starting a session"):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(keys.session(sid), record, ex=self.max_age)
                pipe.sadd(keys.user_sessions(user_id), sid)
                pipe.expire(keys.user_sessions(user_id), self.max_age)
                await pipe.execute()
        flash = request.session.get("flash")
        request.session.clear()
        request.session[SESSION_KEY] = sid
        if flash:
            request.session["flash"] = flash

    async def user_id(self, request: Request) -> int | None:
        sid = request.session.get(SESSION_KEY)
        if not isinstance(sid, str):
            return None
        with redis_errors("reading your session"):
            raw = await self.redis.get(keys.session(sid))
        if raw is None:
            request.session.pop(SESSION_KEY, None)
            return None
        return int(orjson.loads(raw)["user"])

    async def end(self, request: Request) -> None:
        sid = request.session.pop(SESSION_KEY, None)
        if isinstance(sid, str):
            with redis_errors("ending a session"):
                await self.redis.delete(keys.session(sid))

    async def end_all(self, user_id: int, *, keep: Request | None = None) -> None:
        """End every sign-in of the user (except ``keep``'s, when given)."""
        kept = keep.session.get(SESSION_KEY) if keep is not None else None
        with redis_errors("ending sessions"):
            sids = [
                s.decode() if isinstance(s, bytes) else str(s)
                for s in await self.redis.smembers(keys.user_sessions(user_id))
            ]
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in sids:
                    if sid != kept:
                        pipe.delete(keys.session(sid))
                        pipe.srem(keys.user_sessions(user_id), sid)
                await pipe.execute()


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A message shown once on the next page."""
    messages = list(request.session.get("flash", []))
    messages.append([kind, message])
    request.session["flash"] = messages[-5:]


def take_flashes(request: Request) -> list[tuple[str, str]]:
    messages = request.session.pop("flash", [])
    return [(str(k), str(m)) for k, m in messages]
