"""The gateway's ASGI app: ``create_app(settings)``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa import web
from kuwa.accounts import Store, close_database, open_database
from kuwa.broker import Hub, connect
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
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.http import (
    ClientGone,
    JSONResponse,
    allowed_methods,
    client_gone_handler,
    http_error_handler,
    kuwa_error_handler,
    server_error_handler,
)
from kuwa.gateway.sse import StreamRoute
from kuwa.gateway.state import build_state, state_of
from kuwa.logs import setup_logging
from kuwa.schemas import api as wire
from kuwa.settings import Settings
from kuwa.web import WebSecurity

log = logging.getLogger(__name__)


@endpoint("Is this gateway up (and does Redis answer)?", answer=wire.Health)
async def healthz(request: Request) -> Response:
    state = state_of(request)
    try:
        await state.redis.ping()
    except (RedisError, OSError) as exc:
        raise BrokerError(f"Redis is unreachable: {exc}") from None
    return JSONResponse(wire.Health(status="ok", streams=state.chat.hub.active))


def routes() -> list[BaseRoute]:
    """Every route the gateway serves: the APIs, then the web app's."""
    return [
        StreamRoute("/v1.0/chat/completions", kuwa_api.chat_completions, methods=["POST"]),
        StreamRoute("/v1/chat/completions", openai_api.chat_completions, methods=["POST"]),
        Route("/v1/models", openai_api.list_models, methods=["GET"]),
        Route("/v1/embeddings", embeddings_api.create_embeddings, methods=["POST"]),
        Route("/v1/files", files_api.create_file, methods=["POST"]),
        Route("/v1/files", files_api.list_files, methods=["GET"]),
        Route("/v1/files/{file_id}", files_api.get_file, methods=["GET"]),
        Route("/v1/files/{file_id}", files_api.delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", files_api.file_content, methods=["GET"]),
        StreamRoute("/v1/jobs/{job_id}/events", jobs_api.follow_job, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics.metrics, methods=["GET"]),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        *web.routes(),
    ]


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = connect(settings.effective_redis_url)
        hub = Hub(redis)
        await hub.start()
        db = open_database(settings)
        store = Store.over(db, settings.load_secret_key())
        app.state.kuwa = build_state(settings, redis, hub, store)
        web_state = web.start(app, settings, redis, store, app.state.kuwa)
        log.info("gateway ready (redis %s)", _safe_url(settings.effective_redis_url))
        try:
            yield
        finally:
            await web_state.runner.shutdown()
            await hub.stop()
            await redis.aclose()
            close_database(db)
            instrument.process_exiting()

    return Starlette(
        routes=routes(),
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
        page = web.error_page(
            request, exc.status_code, message.get(exc.status_code, str(exc.detail))
        )
        if exc.status_code == 405:
            page.headers["Allow"] = allowed_methods(request, exc)
        return page
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
