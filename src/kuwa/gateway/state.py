"""What a gateway process holds while it runs: :func:`build_state` makes it, in the app's
lifespan or in a background worker that serves chats too."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from starlette.requests import Request

from kuwa.accounts import Store
from kuwa.broker import Hub, JobQueue, Registry
from kuwa.broker.limits import UserLimits
from kuwa.gateway.auth import TokenAuth
from kuwa.gateway.chat import ChatService
from kuwa.gateway.models import ModelDirectory
from kuwa.settings import Settings


@dataclass(slots=True)
class GatewayState:
    settings: Settings
    redis: aioredis.Redis
    chat: ChatService
    auth: TokenAuth
    store: Store
    models: ModelDirectory

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
        ),
    )
