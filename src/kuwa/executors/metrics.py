"""An executor's metrics, served by ``kuwa-cli executor start --metrics-port`` (docs/metrics.md).

Label ``model`` is the access code a job came in on, ``backend`` the executor's backend.
Everything is updated once per job (when it starts and when it ends), never per token.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from kuwa.broker import ExecutorInfo
from kuwa.schemas import JobStatus, Usage

disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)
STATES = ("starting", "ready", "draining")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1)

_by_model = ["model", "backend"]
JOBS_RUNNING = Gauge(
    "kuwa_executor_jobs_running", "Jobs this executor runs now.", _by_model, registry=REGISTRY
)
JOBS = Counter(
    "kuwa_executor_jobs",
    "Jobs this executor ended, by status: done, failed, cancelled.",
    [*_by_model, "status"],
    registry=REGISTRY,
)
JOBS_FAILED = Counter(
    "kuwa_executor_jobs_failed",
    "Jobs that failed here, by error code: model_error, invalid_request, "
    "context_length_exceeded, blocked, executor_shutdown, publish_failed.",
    [*_by_model, "cause"],
    registry=REGISTRY,
)
TOKENS = Counter(
    "kuwa_executor_generated_tokens",
    "Output tokens of the jobs that completed, counted as each ends (rate(): tokens/s).",
    _by_model,
    registry=REGISTRY,
)
PROMPT_TOKENS = Counter(
    "kuwa_executor_prompt_tokens",
    "Prompt tokens of the jobs that completed.",
    _by_model,
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "kuwa_executor_queue_wait_seconds",
    "Seconds from enqueueing a job to this executor starting it.",
    _by_model,
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TTFT = Histogram(
    "kuwa_executor_ttft_seconds",
    "Seconds from starting a job to its first chunk leaving for Redis (the engine's "
    "time to first token; add the queue wait for the user's).",
    _by_model,
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TPOT = Histogram(
    "kuwa_executor_tpot_seconds",
    "Seconds per output token after the first, per finished job.",
    _by_model,
    buckets=TPOT_BUCKETS,
    registry=REGISTRY,
)


class Observed(Protocol):
    """What the collector reads from a runtime at scrape time."""

    @property
    def info(self) -> ExecutorInfo: ...

    @property
    def running(self) -> Mapping[str, object]: ...


class _RuntimeCollector:
    """Slots and state of the runtime of this process, read at scrape time."""

    def __init__(self) -> None:
        self.runtime: weakref.ref[Observed] | None = None

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime() if self.runtime is not None else None
        if runtime is None:
            return
        info = runtime.info
        labels = ["executor", "backend", "engine_model"]
        values = [info.id, info.backend, info.model]
        family = GaugeMetricFamily(
            "kuwa_executor_info",
            "This executor: its name, backend and engine's model.",
            labels=labels,
        )
        family.add_metric(values, 1)
        yield family
        slots = GaugeMetricFamily(
            "kuwa_executor_job_slots", "Jobs this executor can run at once.", labels=["backend"]
        )
        slots.add_metric([info.backend], info.slots)
        yield slots
        used = GaugeMetricFamily(
            "kuwa_executor_job_slots_used", "Slots taken by running jobs.", labels=["backend"]
        )
        used.add_metric([info.backend], len(runtime.running))
        yield used
        state = GaugeMetricFamily(
            "kuwa_executor_state",
            "1 for the state this executor is in (starting, ready, draining).",
            labels=["state"],
        )
        for name in STATES:
            state.add_metric([name], 1 if info.state == name else 0)
        yield state


_COLLECTOR = _RuntimeCollector()
REGISTRY.register(_COLLECTOR)


def watch(runtime: Observed) -> None:
    """Report ``runtime``'s slots and state (one runtime per process; the latest wins)."""
    _COLLECTOR.runtime = weakref.ref(runtime)


class JobMetrics:
    """One job's figures: :meth:`ended` when it ends, :meth:`close` always (in ``finally``)."""

    def __init__(self, model: str, backend: str, created: float) -> None:
        self.labels = (model, backend)
        self.started = time.time()
        self.counted = False
        if created:
            QUEUE_WAIT.labels(*self.labels).observe(max(self.started - created, 0.0))
        JOBS_RUNNING.labels(*self.labels).inc()

    def ended(
        self,
        status: JobStatus,
        error: dict[str, str] | None,
        usage: Usage | None,
        first_at: float | None,
    ) -> None:
        """``first_at``: when the first chunk left (None: no text was sent)."""
        self.counted = True
        now = time.time()
        JOBS.labels(*self.labels, status.value).inc()
        if status == JobStatus.FAILED:
            JOBS_FAILED.labels(*self.labels, (error or {}).get("code", "model_error")).inc()
        if first_at is not None:
            TTFT.labels(*self.labels).observe(max(first_at - self.started, 0.0))
        if usage is not None:
            TOKENS.labels(*self.labels).inc(usage.completion_tokens)
            PROMPT_TOKENS.labels(*self.labels).inc(usage.prompt_tokens)
            if status == JobStatus.DONE and first_at is not None and usage.completion_tokens > 1:
                TPOT.labels(*self.labels).observe((now - first_at) / (usage.completion_tokens - 1))

    def close(self) -> None:
        JOBS_RUNNING.labels(*self.labels).dec()
        if not self.counted:  # the final chunk could not be published
            JOBS.labels(*self.labels, JobStatus.FAILED.value).inc()
            JOBS_FAILED.labels(*self.labels, "publish_failed").inc()
