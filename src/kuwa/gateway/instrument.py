"""This gateway process's own metrics: HTTP requests, open SSE streams, chat jobs, TTFT.

Counters and histograms live in :data:`REGISTRY`. When the gateway runs several uvicorn
workers, ``kuwa-cli gateway start`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
before any worker imports prometheus_client; each worker then writes its values to its own
files there and a scrape, answered by any one worker, sums them (:func:`collect`). Gauges use
the ``livesum`` mode, so a worker that exits (:func:`process_exiting`) or dies (noticed at
the next scrape) stops counting.

Cost per request: two clock reads, a send wrapper and three metric updates; nothing per
streamed chunk except the wrapper's pass-through (and one attribute test in the chat stream,
for the first token).
"""

from __future__ import annotations

import functools
import glob
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client import values as prom_values
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import REGISTRY as DEFAULT_REGISTRY
from prometheus_client.values import MutexValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kuwa.errors import KuwaError, ModelNotFoundError
from kuwa.schemas import Job

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CAUSE = re.compile(r"[a-z][a-z0-9_]{0,39}")

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "kuwa_gateway_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "kuwa_gateway_http_request_duration_seconds",
    "Seconds from a request's arrival to the end of its response (an SSE stream's whole life).",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
SSE_OPEN = Gauge(
    "kuwa_gateway_sse_streams_open",
    "Server-sent event responses being written now.",
    ["route"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
CHATS_OPEN = Gauge(
    "kuwa_gateway_chats_open",
    "Chat jobs this gateway started and still follows.",
    ["model"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
CHATS_STARTED = Counter(
    "kuwa_gateway_chat_jobs_started",
    "Chat jobs enqueued.",
    ["model"],
    registry=REGISTRY,
)
CHATS_FINISHED = Counter(
    "kuwa_gateway_chat_jobs_finished",
    "Chat jobs that ended: status done, failed, or cancelled (the client left first).",
    ["model", "status"],
    registry=REGISTRY,
)
CHATS_FAILED = Counter(
    "kuwa_gateway_chat_jobs_failed",
    "Chat jobs refused at enqueue or failed later, by error code.",
    ["model", "cause"],
    registry=REGISTRY,
)
TTFT = Histogram(
    "kuwa_gateway_ttft_seconds",
    "Seconds from enqueueing a chat job to its first chunk with text reaching the gateway.",
    ["model"],
    buckets=TTFT_BUCKETS,
    registry=REGISTRY,
)


M = TypeVar("M", bound=MetricWrapperBase)
_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}


def child(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, remembered: ``labels()`` takes a lock and checks every
    value each time. Label values are few (routes, models, error codes), so this stays small."""
    key = (metric, values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return cast(M, found)


# --- HTTP -------------------------------------------------------------------------------------
class _Seen:
    """The scope the router writes its match into, found by the inner middleware for the
    outer one (shared through the scope, which middlewares in between may copy)."""

    __slots__ = ("scope",)

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    @property
    def route(self) -> str:
        route = self.scope.get("route")
        return str(getattr(route, "path", "<unmatched>"))


_SCOPE_KEY = "kuwa.instrument"


class HTTPMetrics:
    """Pure ASGI middleware (outermost): counts and times every HTTP request, tracks SSE.

    Some middlewares below copy the scope, so the route the router picked is reported back
    by :class:`RouteName`, which sits innermost, through an object both scopes share."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = _Seen(scope)
        scope[_SCOPE_KEY] = seen
        start = time.perf_counter()
        status = 0
        sse_route: str | None = None

        async def send_and_watch(message: Message) -> None:
            nonlocal status, sse_route
            if not status and message["type"] == "http.response.start":
                status = message["status"]
                if _is_event_stream(message.get("headers", ())):
                    sse_route = seen.route
                    child(SSE_OPEN, sse_route).inc()
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:  # an exception before the response started is answered with a 500
            if sse_route is not None:
                child(SSE_OPEN, sse_route).dec()
            route = seen.route
            method = scope["method"] if scope["method"] in _METHODS else "other"
            child(HTTP_REQUESTS, route, method, str(status or 500)).inc()
            child(HTTP_DURATION, route, method).observe(time.perf_counter() - start)


class RouteName:
    """Pure ASGI middleware (innermost): shows :class:`HTTPMetrics` the scope the router
    will write its match into, so requests are labelled by route template
    (``/v1/jobs/{job_id}/events``), never by raw path, and labels stay few."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        seen = scope.get(_SCOPE_KEY)
        if seen is not None:
            seen.scope = scope
        return self.app(scope, receive, send)  # no frame of its own while a stream lasts


def _is_event_stream(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"text/event-stream")
    return False


# --- chat jobs --------------------------------------------------------------------------------
S = TypeVar("S")
P = ParamSpec("P")
T = TypeVar("T")


def counts_chat_starts(
    start: Callable[Concatenate[S, Job, P], Awaitable[T]],
) -> Callable[Concatenate[S, Job, P], Awaitable[T]]:
    """Count the jobs a ``ChatService.launch`` enqueues and the ones it refuses, by cause.

    Unknown models are not counted: their names are whatever a client sent."""

    @functools.wraps(start)
    async def counted(self: S, request: Job, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            stream = await start(self, request, *args, **kwargs)
        except ModelNotFoundError:
            raise
        except KuwaError as exc:
            child(CHATS_FAILED, request.model, cause(exc.code)).inc()
            raise
        child(CHATS_STARTED, request.model).inc()
        child(CHATS_OPEN, request.model).inc()
        return stream

    return counted


def first_token(job: Job) -> float:
    """The first chunk with text reached the gateway: observe TTFT; returns the time."""
    now = time.time()
    child(TTFT, job.model).observe(max(now - job.created, 0.0))
    return now


def chat_closed(model: str, finished: bool, error_code: str | None) -> None:
    """A started chat's stream was closed: done, failed (with its error code) or cancelled."""
    child(CHATS_OPEN, model).dec()
    if error_code is not None:
        child(CHATS_FINISHED, model, "failed").inc()
        child(CHATS_FAILED, model, cause(error_code)).inc()
    else:
        child(CHATS_FINISHED, model, "done" if finished else "cancelled").inc()


def cause(code: str | None) -> str:
    """An error code as a label value: one of a bounded set of snake_case words."""
    if code and _CAUSE.fullmatch(code):
        return code
    return "other"


# --- exposition -------------------------------------------------------------------------------
def multiprocess() -> bool:
    """Whether workers share their values through ``PROMETHEUS_MULTIPROC_DIR`` (the folder
    is named, and was named before prometheus_client was imported: the mode is chosen then)."""
    return bool(os.environ.get(MULTIPROC_ENV)) and prom_values.ValueClass is not MutexValue


def collect() -> bytes:
    """This gateway's own metrics in Prometheus text: summed over every worker when several
    share a multiprocess folder, else this process's (with the standard ``process_*``
    figures)."""
    if not multiprocess():
        return generate_latest(REGISTRY) + generate_latest(DEFAULT_REGISTRY)
    folder = os.environ[MULTIPROC_ENV]
    _forget_dead_workers(folder)
    registry = CollectorRegistry(auto_describe=False)
    prom_multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_exiting() -> None:
    """Drop this worker's live gauges (its open streams) from the sums."""
    if multiprocess():
        prom_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _forget_dead_workers(folder: str) -> None:
    """``mark_process_dead`` for workers that died without saying so (uvicorn restarts a
    worker that crashed; its live gauges must not count any more)."""
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        pid = int(path.rsplit("_", 1)[1].removesuffix(".db"))
        if pid != os.getpid() and not _alive(pid):
            prom_multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
