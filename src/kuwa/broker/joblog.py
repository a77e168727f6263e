"""The job log: one entry per finished job — who, which model, tokens, timing, status.

Written by whoever finishes a job (the executor, in the round trip that publishes the final
chunk; the kernel, for jobs it fails) together with the day's usage figures
(:mod:`kuwa.broker.usage`). The log is a Redis stream (``keys.JOB_LOG``) trimmed to about
``max_entries`` (``MAXLEN ~``), so it costs a bounded amount of memory (about 180 bytes an
entry). Entry ids are the finish times in milliseconds, so a time range is a range of ids.
The dashboard reads it newest first, a page at a time, filtering as it goes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker import usage
from kuwa.broker.connection import text
from kuwa.schemas import Job, JobStatus, Usage
from kuwa.settings import Settings

SCAN_BATCH = 1000


@dataclass(frozen=True, slots=True)
class JobLog:
    """How much of the log and the usage figures to keep (from the settings)."""

    max_entries: int = 100_000
    retention_days: int = 400

    @classmethod
    def from_settings(cls, settings: Settings) -> JobLog:
        return cls(settings.joblog_max_entries, settings.usage_retention_days)

    def record(
        self,
        pipe: Any,
        job: Job,
        code: str,
        status: JobStatus,
        *,
        reason: str = "",
        error: str = "",
        tokens: Usage | None = None,
        first: float | None = None,
        finished: float | None = None,
    ) -> None:
        """Queue the job's log entry and usage figures on ``pipe`` (a pipeline)."""
        now = time.time() if finished is None else finished
        tokens = tokens or Usage()
        pipe.xadd(
            keys.JOB_LOG,
            {
                "job": job.id,
                "user": "" if job.user_id is None else str(job.user_id),
                "group": job.group or "",
                "model": code,
                "status": status.value,
                "reason": reason,
                "error": error,
                "pt": tokens.prompt_tokens,
                "ct": tokens.completion_tokens,
                "created": f"{job.created:.3f}",
                "first": "" if first is None else f"{first:.4f}",
                "finished": f"{now:.4f}",
            },
            maxlen=self.max_entries,
            approximate=True,
        )
        usage.count(
            pipe,
            now,
            code,
            job.group or "",
            {
                "requests": 1,
                "failed": int(status == JobStatus.FAILED),
                "cancelled": int(status == JobStatus.CANCELLED),
                "prompt_tokens": tokens.prompt_tokens,
                "completion_tokens": tokens.completion_tokens,
            },
            retention_days=self.retention_days,
        )

    async def write(
        self, redis: aioredis.Redis, job: Job, code: str, status: JobStatus, **kwargs: Any
    ) -> None:
        """:meth:`record` in a round trip of its own."""
        async with redis.pipeline(transaction=False) as pipe:
            self.record(pipe, job, code, status, **kwargs)
            await pipe.execute()


@dataclass(frozen=True, slots=True)
class JobRecord:
    entry: str  # the stream id: finish time in ms, then a sequence number
    job: str
    user_id: int | None
    group: str
    model: str
    status: str
    reason: str
    error: str
    prompt_tokens: int
    completion_tokens: int
    created: float
    first: float | None
    finished: float

    @property
    def ttft(self) -> float | None:
        """Seconds from queued to the first token sent."""
        return None if self.first is None or not self.created else self.first - self.created

    @property
    def duration(self) -> float | None:
        """Seconds from queued to finished."""
        return self.finished - self.created if self.created else None

    @property
    def tpot(self) -> float | None:
        """Seconds per output token after the first."""
        if self.first is None or self.completion_tokens < 2:
            return None
        return (self.finished - self.first) / (self.completion_tokens - 1)

    @classmethod
    def parse(cls, entry: bytes | str, fields: dict[bytes, bytes]) -> JobRecord:
        f = {text(k): text(v) for k, v in fields.items()}
        return cls(
            entry=text(entry),
            job=f.get("job", ""),
            user_id=int(f["user"]) if f.get("user", "").isdigit() else None,
            group=f.get("group", ""),
            model=f.get("model", ""),
            status=f.get("status", ""),
            reason=f.get("reason", ""),
            error=f.get("error", ""),
            prompt_tokens=int(f.get("pt") or 0),
            completion_tokens=int(f.get("ct") or 0),
            created=float(f.get("created") or 0),
            first=float(f["first"]) if f.get("first") else None,
            finished=float(f.get("finished") or 0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "job": self.job,
            "user_id": self.user_id,
            "group": self.group,
            "model": self.model,
            "status": self.status,
            "reason": self.reason,
            "error": self.error,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "created": self.created,
            "ttft": self.ttft,
            "tpot": self.tpot,
            "duration": self.duration,
            "finished": self.finished,
        }


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a page of the log shows; empty fields match everything."""

    user_id: int | None = None
    model: str = ""
    group: str | None = None
    status: str = ""
    since: float | None = None  # unix seconds, inclusive
    until: float | None = None  # unix seconds, exclusive

    def matches(self, r: JobRecord) -> bool:
        return (
            (self.user_id is None or r.user_id == self.user_id)
            and (not self.model or r.model == self.model)
            and (self.group is None or r.group == self.group)
            and (not self.status or r.status == self.status)
        )


@dataclass(frozen=True, slots=True)
class JobPage:
    records: list[JobRecord]
    next: str | None  # pass as ``before`` for the next (older) page; None at the end
    scanned: int  # entries read to fill this page


def _ms(at: float) -> int:
    return max(int(at * 1000), 0)


async def read(
    redis: aioredis.Redis,
    flt: JobFilter = JobFilter(),
    *,
    before: str | None = None,
    limit: int = 50,
    scan: int = 20_000,
) -> JobPage:
    """Up to ``limit`` matching entries, newest first, older than the entry ``before``.

    Reads at most ``scan`` entries: a rare filter over a long log returns a short page with
    ``next`` set, to go on searching from there."""
    high = f"({before}" if before else (str(_ms(flt.until) - 1) if flt.until else "+")
    low = str(_ms(flt.since)) if flt.since else "-"
    found: list[JobRecord] = []
    scanned = 0
    last: str | None = None
    while len(found) < limit and scanned < scan:
        batch: Any = await redis.xrevrange(keys.JOB_LOG, high, low, count=SCAN_BATCH)
        if not batch:
            return JobPage(found, None, scanned)
        for entry, fields in batch:
            scanned += 1
            last = text(entry)
            record = JobRecord.parse(entry, fields)
            if flt.matches(record):
                found.append(record)
                if len(found) == limit:
                    break
            if scanned >= scan:
                break
        if len(batch) < SCAN_BATCH and last == text(batch[-1][0]):
            return JobPage(found, None, scanned)
        high = f"({last}"
    return JobPage(found, last, scanned)


async def length(redis: aioredis.Redis) -> int:
    return int(await redis.xlen(keys.JOB_LOG))
