"""The gateway's ASGI app: ``create_app(settings)``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kuwa import web
from kuwa.accounts import Store, close_database, open_database
from kuwa.broker import Hub, JobQueue, Registry, connect
from kuwa.broker.limits import UserLimits
from kuwa.errors import BrokerError, KuwaError
from kuwa.gateway import (
    embeddings_api,
    files_api,
    instrument,
    jobs_api,
    kuwa_api,
    metrics,
    openai_api,
    openapi,
)
from kuwa.gateway.auth import TokenAuth
from kuwa.gateway.chat import ChatService
from kuwa.gateway.http import (
    ClientGone,
    JSONResponse,
    client_gone_handler,
    http_error_handler,
    kuwa_error_handler,
    server_error_handler,
)
from kuwa.gateway.models import ModelDirectory
from kuwa.gateway.state import GatewayState, state_of
from kuwa.logs import setup_logging
from kuwa.settings import Settings
from kuwa.web import WebSecurity
from kuwa.web.live import RoomRunner

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    state = state_of(request)
    try:
        await state.redis.ping()
    except (RedisError, OSError) as exc:
        raise BrokerError(f"Redis is unreachable: {exc}") from None
    return JSONResponse({"status": "ok", "streams": state.chat.hub.active})


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


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = connect(settings.effective_redis_url)
        hub = Hub(redis)
        await hub.start()
        db = open_database(settings)
        store = Store.over(db, settings.load_secret_key())
        web_state = web.start(app, settings, redis, store)
        app.state.kuwa = build_state(settings, redis, hub, store)
        web_state.on_user_changed = app.state.kuwa.forget_cached
        web_state.runner = RoomRunner(app.state.kuwa, web_state.rooms)
        log.info("gateway ready (redis %s)", _safe_url(settings.effective_redis_url))
        try:
            yield
        finally:
            await web_state.runner.shutdown()
            await hub.stop()
            await redis.aclose()
            close_database(db)
            instrument.process_exiting()

    routes = [
        Route("/v1.0/chat/completions", kuwa_api.chat_completions, methods=["POST"]),
        Route("/v1/chat/completions", openai_api.chat_completions, methods=["POST"]),
        Route("/v1/models", openai_api.list_models, methods=["GET"]),
        Route("/v1/embeddings", embeddings_api.create_embeddings, methods=["POST"]),
        Route("/v1/files", files_api.create_file, methods=["POST"]),
        Route("/v1/files", files_api.list_files, methods=["GET"]),
        Route("/v1/files/{file_id}", files_api.get_file, methods=["GET"]),
        Route("/v1/files/{file_id}", files_api.delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", files_api.file_content, methods=["GET"]),
        Route("/v1/jobs/{job_id}/events", jobs_api.follow_job, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics.metrics, methods=["GET"]),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        *web.routes(),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(instrument.HTTPMetrics),
            Middleware(WebSecurity, settings=settings, secret_key=settings.load_secret_key()),
            Middleware(instrument.RouteName),
        ],
        exception_handlers={
            KuwaError: _kuwa_error,
            ClientGone: client_gone_handler,
            HTTPException: _http_error,
            Exception: server_error_handler,
        },
    )


async def _kuwa_error(request: Request, exc: Exception) -> Response:
    if web.wants_html(request) and isinstance(exc, KuwaError):
        return web.kuwa_error_page(request, exc)
    if isinstance(exc, KuwaError) and (answer := web.app_error(request, exc)) is not None:
        return answer
    return await kuwa_error_handler(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    if web.wants_html(request) and isinstance(exc, HTTPException):
        message = {404: "There is no such page.", 405: "That is not allowed here."}
        return web.error_page(
            request, exc.status_code, message.get(exc.status_code, str(exc.detail))
        )
    return await http_error_handler(request, exc)


def create_app_from_env() -> Starlette:
    """App factory for worker processes (``uvicorn --factory``): settings from ``KUWA_*``."""
    settings = Settings.from_env()
    setup_logging(settings.log_level, "gateway")
    return create_app(settings)


def _safe_url(url: str) -> str:
    """A Redis URL without its password, for logs."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url
