"""What a gateway process holds while it runs: :func:`build_state` makes it, in the app's
lifespan or in a background worker that serves chats too."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from kuwa.accounts import Store
from kuwa.broker import Hub, JobQueue, Registry
from kuwa.broker.limits import UserLimits
from kuwa.gateway.auth import TokenAuth
from kuwa.gateway.chat import ChatService
from kuwa.gateway.models import ModelDirectory
from kuwa.settings import Settings

PROVIDER_KEY_TTL = 10.0  # seconds a user's provider key is cached in a gateway process
PROVIDER_KEYS_MAX = 10_000  # cached (user, provider) pairs before the cache starts afresh


class ProviderKeys:
    """Users' own provider keys (or their absence), cached for a few seconds, so a relayed
    request costs no database query. A change made through this process's profile page is
    seen at once (:meth:`forget`); one made through another gateway within ``ttl``."""

    def __init__(self, ttl: float = PROVIDER_KEY_TTL) -> None:
        self.ttl = ttl
        self._cache: dict[tuple[int, str], tuple[float, str | None]] = {}

    async def get(self, store: Store, user_id: int, provider: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get((user_id, provider))
        if hit is not None and hit[0] > now:
            return hit[1]
        key = await run_in_threadpool(store.identities.get_key, user_id, provider)
        if len(self._cache) >= PROVIDER_KEYS_MAX:
            self._cache.clear()
        self._cache[(user_id, provider)] = (now + self.ttl, key)
        return key

    def forget(self, user_id: int) -> None:
        for pair in [pair for pair in self._cache if pair[0] == user_id]:
            del self._cache[pair]


@dataclass(slots=True)
class GatewayState:
    settings: Settings
    redis: aioredis.Redis
    chat: ChatService
    auth: TokenAuth
    store: Store
    models: ModelDirectory
    provider_keys: ProviderKeys = field(default_factory=ProviderKeys)

    def forget_cached(self) -> None:
        """Drop cached permissions and models (an admin changed users, groups or models)."""
        self.auth.clear()
        self.models.invalidate()


def state_of(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.kuwa
    return state


def build_state(settings: Settings, redis: aioredis.Redis, hub: Hub, store: Store) -> GatewayState:
    """What serving chats needs: the chat service with its limits, token auth, the model
    directory. The app's lifespan builds one; so does a background worker."""
    registry = Registry(redis, ttl=settings.heartbeat_ttl)
    chat = ChatService(
        hub,
        JobQueue(
            redis,
            max_queue=settings.max_queue,
            state_ttl=settings.transcript_ttl,
            fair_window=settings.fair_window,
        ),
        registry,
        idle_timeout=settings.stream_idle_timeout,
        limits=UserLimits(
            redis,
            max_jobs=settings.user_max_jobs,
            per_minute=settings.user_requests_per_minute,
            claim_seconds=settings.transcript_ttl,
        ),
    )
    return GatewayState(
        settings,
        redis,
        chat,
        TokenAuth(store.accounts, cache_seconds=settings.token_cache_seconds),
        store,
        ModelDirectory(
            store.catalog,
            store.groups,
            registry,
            redis,
            auto_register=settings.auto_register_models,
            ttl=settings.model_cache_seconds,
        ),
    )
