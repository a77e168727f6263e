"""Server-sent events: the one place SSE is framed, and a response that notices disconnects.

Starlette's StreamingResponse only learns that a client left when a write fails, which for
a slow model can be minutes later. :class:`SSEResponse` watches ``receive`` for
``http.disconnect`` while it streams and cancels the stream at once, so the job's ``finally``
blocks cancel the job within milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


class SSEResponse(Response):
    """Streams ``events``; stops the moment the client leaves. Every open stream keeps this
    object and its ``__call__`` frame, so both hold little: the client is watched by one
    pending ``receive()`` with a callback, not a coroutine of its own."""

    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncIterator[bytes], *, headers: Mapping[str, str] | None = None
    ) -> None:
        self.events = events
        self.extra_headers = headers
        self.status_code = 200
        self.background = None
        self.disconnected = False
        self._waiting: asyncio.Future[Message]  # the client's next message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        extra = self.extra_headers
        self._watch(receive, streaming)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    # A new list: a middleware may change the headers of the message in place.
                    "headers": [
                        *HEADERS,
                        *((k.lower().encode(), v.encode()) for k, v in (extra or {}).items()),
                    ],
                }
            )
            async for data in self.events:
                await send({"type": "http.response.body", "body": data, "more_body": True})
                del data  # not kept while the stream waits for its next event
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not self.disconnected:
                raise
            streaming.uncancel()
        except OSError:
            pass  # the client went away while we wrote
        finally:
            self._waiting.cancel()
            await self.events.aclose()  # type: ignore[attr-defined]

    def _watch(self, receive: Receive, streaming: asyncio.Task[object]) -> None:
        """Wait for the next message from the client; on ``http.disconnect`` the stream is
        cancelled. (After the request body only that can come; anything else is waited
        past.)"""
        waiting = self._waiting = asyncio.ensure_future(receive())

        def seen(done: asyncio.Future[Message]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            if done.result()["type"] == "http.disconnect":
                self.disconnected = True
                streaming.cancel()
            else:
                self._watch(receive, streaming)

        waiting.add_done_callback(seen)


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

    def handle(  # type: ignore[override]  # a coroutine, not a coroutine function
        self, scope: Scope, receive: Receive, send: Send
    ) -> Awaitable[None]:
        """The handler's coroutine itself (the method check aside): no frame of its own."""
        if self.methods and scope["method"] not in self.methods:
            return super().handle(scope, receive, send)
        return self.app(scope, receive, send)


def _call(handler: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    return app
