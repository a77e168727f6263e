"""Server-sent events: the one place SSE is framed, and a response that notices disconnects.

Starlette's StreamingResponse only learns that a client left when a write fails, which for
a slow model can be minutes later. :class:`SSEResponse` watches ``receive`` for
``http.disconnect`` while it streams and cancels the stream at once, so the job's ``finally``
blocks cancel the job within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

DATA = b"data: "
END = b"\n\n"
DONE = DATA + b"[DONE]" + END
CLOSE = b"event: close" + END


def frame(data: bytes) -> bytes:
    """One event whose data is ``data`` (one line of JSON: JSON never holds a raw newline)."""
    return DATA + data + END


def data_event(payload: object) -> bytes:
    """``data: <json>`` followed by a blank line."""
    return DATA + orjson.dumps(payload) + END


def named_event(name: str, payload: object) -> bytes:
    """``event: <name>`` and ``data: <json>``, then a blank line."""
    return b"event: " + name.encode() + b"\n" + DATA + orjson.dumps(payload) + END


def framing(prefix: bytes, suffix: bytes) -> tuple[bytes, bytes]:
    """``(head, tail)`` such that ``head + middle + tail`` is :func:`frame` of ``prefix +
    middle + suffix``: for the streams' hot loops, which build each event around its text
    by concatenation."""
    return DATA + prefix, suffix + END


def with_id(event_id: int, events: bytes) -> bytes:
    """``events`` with an ``id:`` line on the first: a reader that got them resumes after
    ``event_id`` (``Last-Event-ID``). Only /v1 streams carry ids; /v1.0 stays as the seed
    documents it (its JavaScript client reads every line from offset 6)."""
    return b"id: " + str(event_id).encode() + b"\n" + events


KEEP_ALIVE = b": keep-alive\n\n"


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncIterator[bytes], *, headers: Mapping[str, str] | None = None
    ) -> None:
        self.events = events
        self.extra_headers = dict(headers or {})
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in self.extra_headers.items()]
        streaming = asyncio.current_task()
        assert streaming is not None
        disconnected = False

        async def watch() -> None:
            nonlocal disconnected
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected = True
                    streaming.cancel()
                    return

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
            async for data in self.events:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not disconnected:
                raise
            streaming.uncancel()
        except OSError:
            pass  # the client went away while we wrote
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self.events.aclose()  # type: ignore[attr-defined]


class StreamRoute(Route):
    """A route whose answers may stream for minutes: its handler is called with one frame
    instead of Starlette's three (``request_response`` and its per-route exception wrapper),
    since every open stream keeps each frame of the chain alive while it waits. Errors are
    handled alike: the app's exception middleware maps what the handler raises to the same
    handlers, and ``route.endpoint`` stays the handler (the OpenAPI document reads it)."""

    def __init__(
        self, path: str, endpoint: Callable[[Request], Awaitable[Response]], **kw: object
    ) -> None:
        super().__init__(path, endpoint, **kw)  # type: ignore[arg-type]
        self.app = _call(endpoint)


def _call(handler: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    return app
