"""Settings of jobs in Redis (the data plane) and of the dashboard that watches them."""

from __future__ import annotations

from dataclasses import dataclass, field

from kuwa.settings.values import doc


@dataclass(frozen=True)
class JobSettings:
    """How long jobs and their transcripts live in Redis; what the dashboard keeps."""

    __slots__ = ()  # Settings holds the fields in slots of its own
    # --- data plane ---------------------------------------------------------------------
    heartbeat_ttl: float = field(
        default=3.0,
        metadata=doc("Seconds an executor counts as live after its last heartbeat."),
    )
    transcript_ttl: int = field(
        default=3600,
        metadata=doc(
            "Seconds a running job's state and chunk transcript are kept in Redis (the "
            "longest a job may run and still be replayed)."
        ),
    )
    finished_job_ttl: int = field(
        default=300,
        metadata=doc(
            "Seconds a finished job's state and transcript stay in Redis: how long a reader "
            "cut off from its gateway may resume it (GET /v1/jobs/{id}/events) and a room "
            "whose gateway went away still finds the answer. Redis's memory for finished "
            "jobs is about request rate x this x transcript size (docs/operations.md)."
        ),
    )
    transcript_max_chunks: int = field(
        default=20000, metadata=doc("Most chunk messages kept in one job's transcript.")
    )
    coalesce_ms: float = field(
        default=3.0,
        metadata=doc(
            "An executor sends at most one chunk message per job this often, besides the "
            "job's first and last (never delayed); tokens that arrive faster are coalesced "
            "into one message."
        ),
    )
    max_deliveries: int = field(
        default=3, metadata=doc("Times a job is handed to an executor before it fails.")
    )
    # --- dashboard ----------------------------------------------------------------------
    joblog_max_entries: int = field(
        default=100_000,
        metadata=doc("Finished jobs kept in the dashboard's job log (a capped Redis stream)."),
    )
    usage_retention_days: int = field(
        default=400, metadata=doc("Days the per-day usage statistics are kept in Redis.")
    )
    timeseries_interval: float = field(
        default=5.0, metadata=doc("Seconds between two samples of the dashboard's charts.")
    )
    timeseries_window: int = field(
        default=3600, metadata=doc("Seconds of samples kept for the dashboard's charts.")
    )
