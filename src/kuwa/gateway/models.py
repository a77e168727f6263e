"""Which models a user may chat with: the catalog (database) meets the live executors (Redis).

The catalog is read at most every few seconds per gateway process. An access code that an
executor serves but the catalog lacks is registered on first sight (open to every group, as
a model an admin adds is), unless ``KUWA_AUTO_REGISTER_MODELS`` is off. Per-model deadlines
are published to Redis for the kernel.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from kuwa import keys
from kuwa.accounts import Catalog, Groups, ModelInfo, UserInfo
from kuwa.broker import Registry
from kuwa.broker.connection import redis_errors
from kuwa.errors import ModelNotFoundError, PermissionDeniedError

log = logging.getLogger(__name__)

API_PERMISSION = "Room_read_access_to_api"


class ModelDirectory:
    def __init__(
        self,
        catalog: Catalog,
        groups: Groups,
        registry: Registry,
        redis: aioredis.Redis,
        *,
        auto_register: bool = True,
        ttl: float = 5.0,
    ) -> None:
        self.catalog = catalog
        self.groups = groups
        self.registry = registry
        self.redis = redis
        self.auto_register = auto_register
        self.ttl = ttl
        self._models: dict[str, ModelInfo] = {}
        self._grants: dict[str, frozenset[str]] = {}
        self._expires = 0.0
        self._version = 0  # bumped by invalidate()
        self._loaded = -1  # the version the cached models were read at
        self._lock = asyncio.Lock()
        self._published: bytes | None = None

    async def models(self) -> dict[str, ModelInfo]:
        """The catalog's live (not deleted) models by access code, cached ``ttl`` seconds."""
        if time.monotonic() < self._expires and self._loaded == self._version:
            return self._models
        async with self._lock:
            # Read again if invalidated since (or while) the cached list was read: a refresh
            # already in flight when a model was registered holds the old list.
            if time.monotonic() >= self._expires or self._loaded != self._version:
                version = self._version
                models = await run_in_threadpool(self.catalog.list_models)
                self._grants = await run_in_threadpool(self.groups.model_grants)
                self._models = {m.access_code: m for m in models}
                self._loaded = version
                self._expires = time.monotonic() + self.ttl
                await self._publish()
        return self._models

    def invalidate(self) -> None:
        self._expires = 0.0
        self._version += 1

    async def resolve(self, user: UserInfo, code: str) -> ModelInfo:
        """The model ``code`` if ``user`` may chat with it, else a clear 404 or 403."""
        models = await self.models()
        model = models.get(code)
        if model is None and self.auto_register and keys.valid_access_code(code):
            with redis_errors("looking up a model"):
                served = await self.registry.is_known(code)
            if served:
                await run_in_threadpool(self.catalog.ensure, [code])
                self.invalidate()
                model = (await self.models()).get(code)
        if model is None or not model.enabled:
            raise ModelNotFoundError(
                f"The model '{code}' does not exist; GET /v1/models lists the models you can use.",
                param="model",
            )
        if not self.allowed(user, code):
            raise PermissionDeniedError(
                f"You may not use the model '{code}'; ask an administrator for access.",
                param="model",
                code="model_not_allowed",
            )
        return model

    async def usable(self, user: UserInfo, live: list[str]) -> list[ModelInfo]:
        """The enabled models with a live executor that ``user`` may use, in catalog order."""
        models = await self.models()
        missing = [c for c in live if c not in models]
        if missing and self.auto_register:
            await run_in_threadpool(self.catalog.ensure, missing)
            self.invalidate()
            models = await self.models()
        alive = set(live)
        return [
            m
            for m in models.values()
            if m.enabled and m.access_code in alive and self.allowed(user, m.access_code)
        ]

    def allowed(self, user: UserInfo, code: str) -> bool:
        """May ``user`` use ``code``? Either by their permissions as cached with their token,
        or by their group's grants as of the last catalog read, whichever is newer news: a
        model registered a moment ago, or a group created a moment ago, works at once; a
        revoked grant stops working within the token cache time."""
        if user.can_use_model(code):
            return True
        return user.group is not None and code in self._grants.get(user.group, frozenset())

    async def _publish(self) -> None:
        """Per-model deadlines for the kernel (HSET only when they changed)."""
        config = {
            code: {"queue_timeout": m.queue_timeout}
            for code, m in self._models.items()
            if m.queue_timeout is not None
        }
        blob = orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
        if blob == self._published:
            return
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.MODEL_CONFIG)
                if config:
                    pipe.hset(
                        keys.MODEL_CONFIG,
                        mapping={c: orjson.dumps(v) for c, v in config.items()},
                    )
                await pipe.execute()
            self._published = blob
        except (RedisError, OSError) as exc:
            log.warning("could not publish model deadlines: %s", exc)


def require_api_access(user: UserInfo) -> None:
    if not user.can(API_PERMISSION):
        raise PermissionDeniedError(
            "Your account may not use the API (permission Room_read_access_to_api); "
            "ask an administrator.",
            code="api_not_allowed",
        )
