"""Usage per UTC day: requests, failures and tokens per model and group, kept for months.

One Redis hash per day (``keys.usage_day``) whose fields are ``metric|model|group`` counters,
incremented when a job finishes (in the same round trip as its job-log entry) and expiring
``retention_days`` after the day's last job. A year of a deployment with 20 models and 10
groups is 365 hashes of at most 1,000 small fields.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker.connection import text

METRICS = ("requests", "failed", "cancelled", "prompt_tokens", "completion_tokens")
MAX_DAYS = 400  # the longest range one report reads


def day_of(at: float) -> str:
    """The UTC day (``YYYY-MM-DD``) of a unix time."""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d")


def count(
    pipe: Any,
    at: float,
    model: str,
    group: str,
    figures: dict[str, int],
    *,
    retention_days: int,
) -> None:
    """Add one job's figures (``METRICS`` names) to its day, on a pipeline."""
    key = keys.usage_day(day_of(at))
    for metric, n in figures.items():
        if n:
            pipe.hincrby(key, f"{metric}|{model}|{group}", n)
    pipe.expire(key, retention_days * 86400)


@dataclass(slots=True)
class Figures:
    """The sums of one row of a report."""

    requests: int = 0
    failed: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def failure_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def add(self, metric: str, n: int) -> None:
        setattr(self, metric, getattr(self, metric) + n)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


@dataclass(slots=True)
class Report:
    """Usage between two days (inclusive), summed per model, per group and per day."""

    start: dt.date
    end: dt.date
    total: Figures = field(default_factory=Figures)
    by_model: dict[str, Figures] = field(default_factory=dict)
    by_group: dict[str, Figures] = field(default_factory=dict)  # "" = no group
    by_day: dict[str, Figures] = field(default_factory=dict)  # every day of the range

    def models(self) -> list[str]:
        return sorted(self.by_model)

    def groups(self) -> list[str]:
        return sorted(self.by_group)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "total": self.total.to_json(),
            "by_model": {k: v.to_json() for k, v in sorted(self.by_model.items())},
            "by_group": {k: v.to_json() for k, v in sorted(self.by_group.items())},
            "by_day": {k: v.to_json() for k, v in self.by_day.items()},
        }


def days(start: dt.date, end: dt.date) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


async def report(
    redis: aioredis.Redis,
    start: dt.date,
    end: dt.date,
    *,
    model: str = "",
    group: str | None = None,
) -> Report:
    """Usage from ``start`` to ``end`` (inclusive, at most ``MAX_DAYS`` days), only of
    ``model`` and ``group`` when given (``group=""``: jobs of users without a group)."""
    if end < start:
        start, end = end, start
    if (end - start).days >= MAX_DAYS:
        start = end - dt.timedelta(days=MAX_DAYS - 1)
    names = days(start, end)
    async with redis.pipeline(transaction=False) as pipe:
        for day in names:
            pipe.hgetall(keys.usage_day(day))
        raws = await pipe.execute()
    result = Report(start, end, by_day={day: Figures() for day in names})
    for day, raw in zip(names, raws, strict=True):
        for raw_field, raw_value in raw.items():
            metric, _, rest = text(raw_field).partition("|")
            code, _, grp = rest.partition("|")
            if metric not in METRICS or (model and code != model):
                continue
            if group is not None and grp != group:
                continue
            n = int(raw_value)
            result.total.add(metric, n)
            result.by_day[day].add(metric, n)
            result.by_model.setdefault(code, Figures()).add(metric, n)
            result.by_group.setdefault(grp, Figures()).add(metric, n)
    return result
