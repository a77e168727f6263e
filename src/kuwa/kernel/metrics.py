"""The kernel's metrics, served by ``kuwa-cli kernel start --metrics-port`` (docs/metrics.md).

Every kernel (leader or standby) serves its own; ``kuwa_kernel_leader`` tells which one
leads. Label ``model`` is the access code.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from kuwa.kernel.scaler import LocalScaler

disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)

LEADER = Gauge(
    "kuwa_kernel_leader", "1 while this kernel holds the leader lease, else 0.", registry=REGISTRY
)
TICKS = Counter("kuwa_kernel_ticks", "Rounds of the kernel's loop.", registry=REGISTRY)
TICK_ERRORS = Counter(
    "kuwa_kernel_tick_errors", "Rounds cut short by a Redis error.", registry=REGISTRY
)
TICK_SECONDS = Histogram(
    "kuwa_kernel_tick_duration_seconds",
    "Seconds one round of the kernel's loop took.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
ORPHANS = Counter(
    "kuwa_kernel_orphans_recovered",
    "Jobs of executors that died, by what became of them: requeued (had not streamed "
    "yet), failed (had streamed, or ran out of deliveries), cancelled (the client had left).",
    ["model", "outcome"],
    registry=REGISTRY,
)
FAILED = Counter(
    "kuwa_kernel_jobs_failed",
    "Jobs the kernel failed, by error code: queue_timeout (waited too long), "
    "model_unavailable (no executor left for the model), executor_lost.",
    ["model", "cause"],
    registry=REGISTRY,
)
SCALER_DESIRED = Gauge(
    "kuwa_kernel_scaler_desired_executors",
    "Executors the local scaler wants for a pool (demand clamped to the pool's min..max).",
    ["model"],
    registry=REGISTRY,
)
SCALER_RUNNING = Gauge(
    "kuwa_kernel_scaler_executors",
    "Executor processes the local scaler runs for a pool.",
    ["model"],
    registry=REGISTRY,
)


def ticked(leader: bool, seconds: float) -> None:
    LEADER.set(1 if leader else 0)
    TICKS.inc()
    TICK_SECONDS.observe(seconds)
    if not leader:  # the leader's scaler decides; a standby's figures would be stale
        SCALER_DESIRED.clear()
        SCALER_RUNNING.clear()


def scaled(scaler: LocalScaler, running: dict[str, int]) -> None:
    for code, target in scaler.targets.items():
        SCALER_DESIRED.labels(code).set(target)
    for code, n in running.items():
        SCALER_RUNNING.labels(code).set(n)
