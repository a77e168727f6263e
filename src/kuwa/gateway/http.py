"""Reading requests and writing JSON responses and errors in Kuwa's one error shape."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec
import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from kuwa.errors import (
    InvalidRequestError,
    KuwaError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    error_body,
)
from kuwa.schemas import SchemaError

log = logging.getLogger(__name__)
UPSTREAM_KEY_HEADER = "x-kuwa-upstream-key"  # a user's own provider key (openai backend)
T = TypeVar("T")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, msgspec.Struct):  # a declared answer (kuwa.schemas)
            return msgspec.json.encode(content)
        return orjson.dumps(content)


async def read_body(request: Request, limit: int) -> bytearray:
    """The request body, at most ``limit`` bytes (PayloadTooLarge past it, InvalidRequest
    when empty)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLargeError(f"The request body is larger than the limit of {limit} bytes.")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLargeError(
                f"The request body is larger than the limit of {limit} bytes."
            )
    if not body:
        raise InvalidRequestError("The request body is empty; send a JSON object.")
    return body


def request_language(request: Request) -> str | None:
    """The first language an ``Accept-Language`` header names (a BCP 47 tag), if any."""
    for item in request.headers.get("accept-language", "").split(","):
        tag = item.split(";", 1)[0].strip()
        if _LANGUAGE_TAG.fullmatch(tag):
            return tag
    return None


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ClientGone."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientGone
    return task.result()


async def client_gone_handler(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nobody reads it; the access log shows what happened


def schema_error(exc: SchemaError) -> InvalidRequestError:
    return InvalidRequestError(exc.message, param=exc.param)


def error_response(exc: KuwaError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def kuwa_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KuwaError)
    return error_response(exc)


def allowed_methods(request: Request, exc: HTTPException) -> str:
    """The ``Allow`` header of a 405 (RFC 9110): the methods of *every* route on the path.

    Starlette names only the first route that matched the path, and Kuwa declares a path's
    methods in separate routes (``GET /v1/files`` and ``POST /v1/files``)."""
    methods: set[str] = set()
    router = getattr(request.app, "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if not methods:  # not a router's 405 (a handler's own): keep what it said
        return (exc.headers or {}).get("Allow", "")
    return ", ".join(sorted(methods))


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: KuwaError = NotFoundError(f"There is no {request.url.path} here.")
    elif exc.status_code == 405:
        err = MethodNotAllowedError(
            f"{request.method} is not allowed on {request.url.path}.",
            headers={"Allow": allowed_methods(request, exc)},
        )
    else:
        return JSONResponse(
            error_body(str(exc.detail), "invalid_request_error"), status_code=exc.status_code
        )
    return error_response(err)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(
            "Something went wrong inside Kuwa; it has been logged.",
            "server_error",
            None,
            "internal_error",
        ),
        status_code=500,
    )
