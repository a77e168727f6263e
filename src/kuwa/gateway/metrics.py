"""``GET /metrics``: Prometheus text for queues, executors and this gateway process.

Figures are read from Redis at scrape time, so any gateway answers for the whole
deployment (label ``model`` is the access code). ``kuwa_desired_executors`` is a scaling
hint for an autoscaler (KEDA/HPA). With ``KUWA_METRICS_TOKEN`` set, scrapes must send it
as a Bearer token.
"""

from __future__ import annotations

import hmac

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from kuwa.broker.connection import redis_errors
from kuwa.broker.stats import snapshot
from kuwa.errors import AuthenticationError
from kuwa.gateway.state import state_of

_QUEUE = {
    "kuwa_queue_depth": ("Jobs waiting for an executor.", "waiting"),
    "kuwa_queue_running": ("Jobs an executor has taken and not finished.", "running"),
    "kuwa_queue_wait_seconds": ("How long the oldest waiting job has waited.", "oldest_wait"),
    "kuwa_executors": ("Live, ready executors.", "executors"),
    "kuwa_executor_slots": ("Slots of the live executors.", "slots"),
    "kuwa_desired_executors": ("Executors that would run every job now.", "desired_executors"),
}


async def metrics(request: Request) -> Response:
    state = state_of(request)
    token = state.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise AuthenticationError("Metrics need 'Authorization: Bearer KUWA_METRICS_TOKEN'.")
    with redis_errors("collecting metrics"):
        snap = await snapshot(state.redis, state.chat.registry)
    registry = CollectorRegistry(auto_describe=True)
    for name, (doc, attr) in _QUEUE.items():
        gauge = Gauge(name, doc, ["model"], registry=registry)
        for q in snap.queues:
            gauge.labels(q.model).set(getattr(q, attr))
    totals = {
        "tokens": Gauge(
            "kuwa_tokens_total",
            "Tokens generated (rate() gives tokens/s).",
            ["model"],
            registry=registry,
        ),
        "jobs": Gauge("kuwa_jobs_total", "Jobs finished.", ["model"], registry=registry),
        "failed": Gauge(
            "kuwa_jobs_failed_total", "Jobs that failed.", ["model"], registry=registry
        ),
    }
    latency = Gauge(
        "kuwa_latency_seconds",
        "TTFT (queued to first token sent) and TPOT of the latest 1,000 jobs.",
        ["model", "metric", "quantile"],
        registry=registry,
    )
    for q in snap.queues:
        for name, gauge in totals.items():
            gauge.labels(q.model).set(q.totals.get(name, 0))
        for key, value in q.latency.items():
            metric, quantile = key.split("_p")
            latency.labels(q.model, metric, str(int(quantile) / 100)).set(value)
    used = Gauge(
        "kuwa_executor_slots_used",
        "Jobs running on an executor.",
        ["executor", "backend", "model"],
        registry=registry,
    )
    rate = Gauge(
        "kuwa_executor_tokens_per_second",
        "Tokens an executor produced per second.",
        ["executor", "backend", "model"],
        registry=registry,
    )
    for e in snap.executors:
        used.labels(e.id, e.backend, e.model).set(e.used)
        rate.labels(e.id, e.backend, e.model).set(e.tokens_per_s)
    Gauge("kuwa_gateway_streams", "Streams open in this gateway process.", registry=registry).set(
        state.chat.hub.active
    )
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
