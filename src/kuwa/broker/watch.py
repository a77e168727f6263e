"""Gateway side of a dead executor: release the readers of its jobs, kernel or not.

One task per gateway process (the hub's) looks about once a second at the heartbeats of only
the executors that run jobs this process has readers for. It learns which executor runs a
job from the job's state (``executor``, written with ``status = running`` when it starts) and
asks again only about jobs not running yet, so a running stream costs nothing per chunk and
one ``EXISTS`` per executor per tick.

When an executor's heartbeat has expired, each of its jobs with readers here is judged as the
kernel's recovery (``Kernel._recover``) would judge it, so both always agree:

* no longer ``running`` on that executor (queued again, or taken by another one): keep
  waiting, and learn its new executor later;
* it had streamed something (its transcript is not empty): it can never be handed out again,
  so its readers get a final ``executor_lost`` error chunk at once (the kernel, if any, fails
  it with the same error and keeps the books);
* it had streamed nothing and a kernel holds the lease: the kernel hands it out again (or
  fails it after ``KUWA_MAX_DELIVERIES``), so its readers keep waiting;
* it had streamed nothing and no kernel runs: nobody will hand it out again, so its readers
  get an ``executor_lost`` error; this one is raised rather than sent as a final chunk, so the
  request that started the job cancels it (a kernel started later then drops it instead of
  running it for nobody).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kuwa import keys
from kuwa.broker.connection import text
from kuwa.broker.kernels import leader_id
from kuwa.broker.registry import Registry
from kuwa.schemas import JobStatus

log = logging.getLogger(__name__)

EXECUTOR_LOST = "executor_lost"
MID_ANSWER = "The executor serving this model stopped in the middle of the answer."
BEFORE_ANSWER = (
    "The executor serving this model stopped before it answered, and no kernel is running "
    "to hand the request to another one; please retry."
)

# lose(job_id, error, final): end that job's readers with ``error`` ({"message", "code"}), as a
# final chunk (``final``) or as a raised error.
LoseFn = Callable[[str, dict[str, str], bool], None]


class ExecutorWatch:
    def __init__(
        self,
        redis: aioredis.Redis,
        jobs: Callable[[], Collection[str]],
        lose: LoseFn,
        *,
        interval: float = 1.0,
    ) -> None:
        self.redis = redis
        self.registry = Registry(redis)
        self.jobs = jobs  # ids of the jobs this process has readers for
        self.lose = lose
        self.interval = interval
        self.running_on: dict[str, str] = {}  # job id -> the executor its state says runs it
        self.released = 0

    async def run(self) -> None:
        """Check every ``interval`` seconds; the one exit is cancellation (the hub stops)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except (RedisError, OSError) as exc:  # the hub's reader logs the outage
                log.debug("executor watch: Redis error (%s); next tick", exc)
            except Exception:  # a bug must not end the watch for good
                log.exception("executor watch: unexpected error; next tick")

    async def check(self) -> int:
        """One look; returns how many jobs' readers were released."""
        jobs = set(self.jobs())
        for gone in self.running_on.keys() - jobs:
            del self.running_on[gone]
        if not jobs:
            return 0
        await self._learn([j for j in jobs if j not in self.running_on])
        if not self.running_on:
            return 0
        executors = set(self.running_on.values())
        dead = executors - await self.registry.live_among(executors)
        if not dead:
            return 0
        return await self._judge([j for j, e in self.running_on.items() if e in dead])

    async def _learn(self, jobs: list[str]) -> None:
        """Which executor runs each of these jobs (those that run)."""
        if not jobs:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in jobs:
                pipe.hmget(keys.job_state(job_id), ["status", "executor"])
            states: list[Any] = await pipe.execute()
        for job_id, (status, executor) in zip(jobs, states, strict=True):
            if status is not None and text(status) == JobStatus.RUNNING.value and executor:
                self.running_on[job_id] = text(executor)

    async def _judge(self, suspects: list[str]) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in suspects:
                pipe.hmget(keys.job_state(job_id), ["status", "executor"])
                pipe.llen(keys.job_transcript(job_id))
            replies: list[Any] = await pipe.execute()
        kernel = await leader_id(self.redis) is not None
        released = 0
        for i, job_id in enumerate(suspects):
            (status, executor), streamed = replies[2 * i], int(replies[2 * i + 1])
            was_on = self.running_on.pop(job_id)
            if status is None or text(status) != JobStatus.RUNNING.value or not executor:
                continue  # queued again (or over): learn where it runs next time
            if text(executor) != was_on:
                self.running_on[job_id] = text(executor)  # another executor has taken it
                continue
            if not streamed and kernel:
                self.running_on[job_id] = was_on  # the kernel hands it out again; look again
                continue
            message = MID_ANSWER if streamed else BEFORE_ANSWER
            log.warning(
                "executor %s stopped heartbeating: releasing the readers of job %s (%s)",
                was_on,
                job_id,
                "mid-answer" if streamed else "not started, no kernel",
            )
            self.lose(job_id, {"message": message, "code": EXECUTOR_LOST}, bool(streamed))
            released += 1
        self.released += released
        return released
