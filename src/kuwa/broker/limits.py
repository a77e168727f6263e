"""Per-user limits: running jobs at once and requests per minute, shared by all gateways."""

from __future__ import annotations

import time
from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from kuwa import keys
from kuwa.broker.connection import redis_errors
from kuwa.errors import RateLimitError

_LIMITS = resources.files("kuwa.broker").joinpath("limits.lua").read_text()


class UserLimits:
    """``max_jobs`` running jobs and ``per_minute`` requests per user (0: no limit).

    A job's claim lapses after ``claim_seconds`` even if its gateway died without releasing
    it, so a crash never locks a user out for good."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_jobs: int = 0,
        per_minute: int = 0,
        claim_seconds: float = 3600.0,
    ) -> None:
        self.redis = redis
        self.max_jobs = max_jobs
        self.per_minute = per_minute
        self.claim_seconds = claim_seconds
        self._script = redis.register_script(_LIMITS)

    @property
    def active(self) -> bool:
        return bool(self.max_jobs or self.per_minute)

    async def admit(
        self,
        user: str,
        job_id: str,
        *,
        max_jobs: int | None = None,
        per_minute: int | None = None,
    ) -> bool:
        """Count the request and claim a running-job slot; raise RateLimitError if over.

        ``max_jobs``/``per_minute`` override the defaults for this user (their group's
        limits). True when a running-job slot was claimed (release it when the job ends)."""
        max_jobs = self.max_jobs if max_jobs is None else max_jobs
        per_minute = self.per_minute if per_minute is None else per_minute
        if not (max_jobs or per_minute):
            return False
        now = time.time()
        with redis_errors("checking your limits"):
            try:
                await self._script(
                    keys=[keys.user_jobs(user), keys.user_requests(user, int(now // 60))],
                    args=[now, max_jobs, per_minute, job_id, self.claim_seconds],
                )
                return bool(max_jobs)
            except ResponseError as exc:
                if not str(exc).startswith(("RPM", "JOBS")):
                    raise
                reason = str(exc)
        if reason.startswith("RPM"):
            raise RateLimitError(
                f"You sent more than {per_minute} requests this minute; "
                "wait a little and try again.",
                code="user_rate_limit",
                headers={"Retry-After": str(60 - int(now % 60))},
            )
        raise RateLimitError(
            f"You already have {max_jobs} answers running; wait for one to finish.",
            code="user_job_limit",
            headers={"Retry-After": "2"},
        )

    async def release(self, user: str, job_id: str) -> None:
        with redis_errors("releasing your job"):
            await self.redis.zrem(keys.user_jobs(user), job_id)
