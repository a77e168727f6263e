"""What a gateway process holds while it runs (built in the app's lifespan)."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from starlette.requests import Request

from kuwa.accounts import Store
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
