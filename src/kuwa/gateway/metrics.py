"""``GET /metrics``: Prometheus text for the deployment and for this gateway.

Two parts (every name is listed in docs/metrics.md):

- deployment figures — queues, executors, totals and latency per model (label ``model`` is
  the access code) — read from Redis at scrape time, so any gateway answers for the whole
  deployment. They are built per scrape as plain metric families, never as prometheus_client
  metric objects, so with several workers they are written once, by the worker that answers,
  and never land in the multiprocess files. ``kuwa_desired_executors`` is a scaling hint for
  an autoscaler (KEDA/HPA).
- this gateway's own counters, summed over its workers (:mod:`kuwa.gateway.instrument`).

With ``KUWA_METRICS_TOKEN`` set, scrapes must send it as a Bearer token.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response

from kuwa.broker.connection import redis_errors
from kuwa.broker.stats import Snapshot, snapshot
from kuwa.errors import AuthenticationError
from kuwa.gateway import instrument
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.state import state_of

# name: (help, QueueStats attribute) — gauges labelled by model
QUEUE_GAUGES = {
    "kuwa_queue_depth": ("Jobs waiting for an executor.", "waiting"),
    "kuwa_queue_running": ("Jobs an executor has taken and not finished.", "running"),
    "kuwa_queue_wait_seconds": ("How long the oldest waiting job has waited.", "oldest_wait"),
    "kuwa_executors": ("Live, ready executors.", "executors"),
    "kuwa_executor_slots": ("Slots of the live executors.", "slots"),
    "kuwa_desired_executors": ("Executors that would run every job now.", "desired_executors"),
}
# counter family name (exposed with _total): (help, key of QueueStats.totals)
QUEUE_TOTALS = {
    "kuwa_tokens": ("Tokens generated (rate() gives tokens/s).", "tokens"),
    "kuwa_jobs": ("Jobs finished.", "jobs"),
    "kuwa_jobs_failed": ("Jobs that failed.", "failed"),
}
LATENCY = "kuwa_latency_seconds"
EXECUTOR_GAUGES = {
    "kuwa_executor_slots_used": ("Jobs running on an executor.", "used"),
    "kuwa_executor_tokens_per_second": ("Tokens an executor produced per second.", "tokens_per_s"),
}
STREAMS = "kuwa_gateway_streams"


@endpoint("Prometheus metrics for the whole deployment", media="text/plain")
async def metrics(request: Request) -> Response:
    state = state_of(request)
    token = state.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise AuthenticationError("Metrics need 'Authorization: Bearer KUWA_METRICS_TOKEN'.")
    with redis_errors("collecting metrics"):
        snap = await snapshot(state.redis, state.chat.registry)
    families = list(deployment_families(snap))
    if not instrument.multiprocess():  # one process: its own subscriptions mean something
        streams = GaugeMetricFamily(STREAMS, "Job streams open in this gateway process.")
        streams.add_metric([], state.chat.hub.active)
        families.append(streams)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return Response(
        generate_latest(registry) + instrument.collect(), media_type=CONTENT_TYPE_LATEST
    )


def deployment_families(snap: Snapshot) -> Iterator[Metric]:
    """The figures read from Redis, as metric families (one sample per model/executor)."""
    for name, (doc, attr) in QUEUE_GAUGES.items():
        gauge = GaugeMetricFamily(name, doc, labels=["model"])
        for q in snap.queues:
            gauge.add_metric([q.model], getattr(q, attr))
        yield gauge
    for name, (doc, key) in QUEUE_TOTALS.items():
        counter = CounterMetricFamily(name, doc, labels=["model"])
        for q in snap.queues:
            counter.add_metric([q.model], q.totals.get(key, 0))
        yield counter
    latency = GaugeMetricFamily(
        LATENCY,
        "TTFT (queued to first token sent) and TPOT of the latest 1,000 jobs.",
        labels=["model", "metric", "quantile"],
    )
    for q in snap.queues:
        for key, value in q.latency.items():
            metric, quantile = key.split("_p")
            latency.add_metric([q.model, metric, str(int(quantile) / 100)], value)
    yield latency
    for name, (doc, attr) in EXECUTOR_GAUGES.items():
        gauge = GaugeMetricFamily(name, doc, labels=["executor", "backend", "model"])
        for e in snap.executors:
            gauge.add_metric([e.id, e.backend, e.model], getattr(e, attr))
        yield gauge


class _Families:
    """A collector that yields metric families built beforehand."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families
