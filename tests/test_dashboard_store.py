"""What the dashboard keeps in Redis: the job log (filters, paging, its cap), usage per day,
the time series (bounded however long it runs) and the kernels' presence. Real Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker import ExecutorInfo, Registry, joblog, kernels, usage
from kuwa.broker.joblog import JobFilter, JobLog
from kuwa.broker.timeseries import Recent, Sample, Sampler, percentile, series
from kuwa.schemas import Job, JobStatus, Message, Usage

pytestmark = pytest.mark.anyio


def job(i: int, *, user: int | None = 1, group: str | None = "Users", created: float = 0) -> Job:
    return Job(
        id=f"chatcmpl-{i}",
        model="echo",
        messages=(Message("user", "hi"),),
        user_id=user,
        created=created or time.time() - 1,
        group=group,
    )


async def write(
    redis: aioredis.Redis,
    log: JobLog,
    j: Job,
    code: str = "echo",
    status: JobStatus = JobStatus.DONE,
    *,
    tokens: int = 10,
    at: float | None = None,
) -> None:
    now = time.time() if at is None else at
    await log.write(
        redis,
        j,
        code,
        status,
        reason="stop" if status == JobStatus.DONE else "error",
        error="" if status == JobStatus.DONE else "model_error",
        tokens=Usage(5, tokens),
        first=j.created + 0.1,
        finished=now,
    )


async def test_job_log_filters_pages_and_timing(redis: aioredis.Redis) -> None:
    log = JobLog()
    for i in range(30):
        status = JobStatus.FAILED if i % 10 == 0 else JobStatus.DONE
        await write(redis, log, job(i, user=1 + i % 3), "echo" if i % 2 else "slow", status)
    page = await joblog.read(redis, limit=100)
    assert len(page.records) == 30 and page.next is None
    newest = page.records[0]
    assert newest.job == "chatcmpl-29" and newest.user_id == 3 and newest.group == "Users"
    assert newest.prompt_tokens == 5 and newest.completion_tokens == 10
    assert newest.ttft == pytest.approx(0.1, abs=0.01)
    assert newest.tpot is not None and newest.duration is not None
    assert newest.duration >= newest.ttft
    failed = await joblog.read(redis, JobFilter(status="failed"))
    assert [r.job for r in failed.records] == ["chatcmpl-20", "chatcmpl-10", "chatcmpl-0"]
    mine = await joblog.read(redis, JobFilter(user_id=2, model="echo"))
    assert {r.job for r in mine.records} == {
        f"chatcmpl-{i}" for i in range(30) if i % 3 == 1 and i % 2
    }
    assert (await joblog.read(redis, JobFilter(group="Admins"))).records == []
    # Pages of seven follow each other without gaps or repeats.
    ids: list[str] = []
    before = None
    while True:
        chunk = await joblog.read(redis, limit=7, before=before)
        ids += [r.job for r in chunk.records]
        if chunk.next is None:
            break
        before = chunk.next
    assert ids == [f"chatcmpl-{i}" for i in range(29, -1, -1)]
    # A rare filter reads at most `scan` entries and says where to go on.
    short = await joblog.read(redis, JobFilter(status="failed"), limit=10, scan=12)
    assert [r.job for r in short.records] == ["chatcmpl-20"] and short.next is not None
    rest = await joblog.read(redis, JobFilter(status="failed"), limit=10, before=short.next)
    assert [r.job for r in rest.records] == ["chatcmpl-10", "chatcmpl-0"]


async def test_job_log_time_range(redis: aioredis.Redis) -> None:
    log = JobLog()
    await write(redis, log, job(1))
    await asyncio.sleep(0.05)
    middle = time.time()
    await asyncio.sleep(0.05)
    await write(redis, log, job(2))
    later = await joblog.read(redis, JobFilter(since=middle))
    assert [r.job for r in later.records] == ["chatcmpl-2"]
    earlier = await joblog.read(redis, JobFilter(until=middle))
    assert [r.job for r in earlier.records] == ["chatcmpl-1"]
    assert (await joblog.read(redis, JobFilter(since=middle, until=middle + 0.01))).records == []


async def test_job_log_is_capped(redis: aioredis.Redis) -> None:
    log = JobLog(max_entries=200)
    for start in range(0, 1000, 100):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, start + 100):
                log.record(pipe, job(i), "echo", JobStatus.DONE, tokens=Usage(1, 1))
            await pipe.execute()
    length = await joblog.length(redis)
    assert 200 <= length <= 300  # MAXLEN ~ trims whole stream nodes (100 entries each)


async def test_usage_per_model_group_and_day(redis: aioredis.Redis) -> None:
    log = JobLog(retention_days=2)
    await write(redis, log, job(1, group="Users"), "echo", tokens=7)
    await write(redis, log, job(2, group="Users"), "echo", JobStatus.FAILED, tokens=0)
    await write(redis, log, job(3, group="R&D | lab"), "slow", tokens=3)
    await write(redis, log, job(4, group=None, user=None), "slow", JobStatus.CANCELLED, tokens=1)
    today = dt.datetime.now(dt.UTC).date()
    report = await usage.report(redis, today - dt.timedelta(days=6), today)
    assert report.total.requests == 4 and report.total.failed == 1
    assert report.total.cancelled == 1 and report.total.completion_tokens == 11
    assert report.by_model["echo"].requests == 2 and report.by_model["echo"].failure_rate == 0.5
    assert report.by_group["R&D | lab"].completion_tokens == 3
    assert report.by_group[""].cancelled == 1
    assert list(report.by_day) == usage.days(today - dt.timedelta(days=6), today)
    assert report.by_day[today.isoformat()].requests == 4
    assert report.by_day[(today - dt.timedelta(days=1)).isoformat()].requests == 0
    slow = await usage.report(redis, today, today, model="slow")
    assert set(slow.by_model) == {"slow"} and slow.total.requests == 2
    nogroup = await usage.report(redis, today, today, group="")
    assert nogroup.total.requests == 1
    ttl = await redis.ttl(keys.usage_day(today.isoformat()))
    assert 86400 < ttl <= 2 * 86400
    # A range given backwards is read forwards; a huge one is cut to MAX_DAYS.
    backwards = await usage.report(redis, today, today - dt.timedelta(days=1))
    assert backwards.start < backwards.end
    huge = await usage.report(redis, today - dt.timedelta(days=5000), today)
    assert len(huge.by_day) == usage.MAX_DAYS


async def test_time_series_stays_bounded(redis: aioredis.Redis) -> None:
    registry = Registry(redis, ttl=30)
    await registry.heartbeat(ExecutorInfo("ex-1", ("echo",), "debug", "debug-echo", "h", 1, 4))
    sampler = Sampler(redis, registry, interval=5, window=60)  # 12 samples kept
    assert sampler.kept == 12
    log = JobLog()
    start = time.time()
    for i in range(50):
        now = start + i * 5
        await write(redis, log, job(i), tokens=20)
        await sampler.sample(now)
    assert await redis.llen(keys.queue_timeseries("echo")) == 12
    assert 0 < await redis.ttl(keys.queue_timeseries("echo")) <= 60 + 10
    found = await series(redis, ["echo"], since=0)
    samples = found["echo"]
    assert len(samples) == 12 and [s.t for s in samples] == sorted(s.t for s in samples)
    assert samples[-1].executors == 1
    # Each job is counted once, in the sample after it finished.
    assert sum(s.requests for s in samples) <= 12
    raw = await redis.lrange(keys.queue_timeseries("echo"), 0, -1)
    assert max(len(r) for r in raw) < 200  # compact samples


async def test_one_sample_per_bucket_whoever_asks(redis: aioredis.Redis) -> None:
    registry = Registry(redis)
    a = Sampler(redis, registry, interval=10, window=100)
    b = Sampler(redis, registry, interval=10, window=100)
    now = 1_000_000.0
    await redis.hset(keys.MODELS, "echo", b'{"backend": "debug"}')
    assert await a.maybe_sample(now) is True
    assert await b.maybe_sample(now + 1) is False  # same bucket
    assert await b.maybe_sample(now + 10) is True  # the next one
    assert await redis.llen(keys.queue_timeseries("echo")) == 2


async def test_samples_count_finished_jobs_and_latency(redis: aioredis.Redis) -> None:
    registry = Registry(redis)
    sampler = Sampler(redis, registry, interval=1, window=60)
    log = JobLog()
    await redis.hset(keys.MODELS, "echo", b'{"backend": "debug"}')  # a known model
    await sampler.sample()
    for i in range(4):
        await write(redis, log, job(i), tokens=30)
    await write(redis, log, job(9), status=JobStatus.FAILED, tokens=0)
    taken = await sampler.sample()
    s = taken["echo"]
    assert s.requests == 5 and s.failed == 1 and s.tokens == 120
    assert s.ttft_p50 == pytest.approx(0.1, abs=0.01) and s.ttft_p95 is not None
    assert Sample.decode(s.encode()) == s
    again = await sampler.sample()
    assert again["echo"].requests == 0  # nothing counted twice
    recent = Recent.of([s], s.t + 1)
    assert recent.requests_per_min > 0 and recent.error_rate == pytest.approx(0.2)
    assert Recent.of([s], s.t + 600).requests_per_min == 0


def test_percentile() -> None:
    assert percentile([], 95) is None
    assert percentile([3.0], 50) == 3.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0


async def test_kernels_presence(redis: aioredis.Redis) -> None:
    await redis.set(keys.KERNEL_LEADER, "kernel-a")
    await kernels.beat(redis, "kernel-a", ttl=3, leader=True, started=time.time())
    await kernels.beat(redis, "kernel-b", ttl=3, leader=False, started=time.time())
    found = await kernels.kernels(redis)
    assert [(k.id, k.leader, k.live) for k in found] == [
        ("kernel-a", True, True),
        ("kernel-b", False, True),
    ]
    assert found[1].to_json()["role"] == "standby"
    await kernels.leave(redis, "kernel-b")
    assert [k.id for k in await kernels.kernels(redis)] == ["kernel-a"]
    # A kernel that stopped heartbeating shows as dead, then is forgotten.
    await redis.zadd(keys.KERNELS, {"kernel-c": time.time() - 5})
    await redis.hset(keys.KERNEL_INFO, "kernel-c", b"{}")
    assert (await kernels.kernels(redis))[-1].to_json()["role"] == "dead"
    await redis.zadd(keys.KERNELS, {"kernel-c": time.time() - kernels.FORGET_AFTER - 5})
    await kernels.beat(redis, "kernel-a", ttl=3, leader=True, started=time.time())
    assert [k.id for k in await kernels.kernels(redis)] == ["kernel-a"]
    assert not await redis.hexists(keys.KERNEL_INFO, "kernel-c")


def test_dashboard_keys() -> None:
    names = [
        keys.JOB_LOG,
        keys.KERNELS,
        keys.KERNEL_INFO,
        keys.TIMESERIES_CURSOR,
        keys.STRESS_RUNS,
        keys.usage_day("2026-11-26"),
        keys.timeseries_tick(123),
        keys.queue_timeseries("echo"),
        keys.stress_run("st-abc"),
        keys.stress_stop("st-abc"),
    ]
    assert all(n.startswith("kuwa:") and "::" not in n for n in names)
    assert len(set(names)) == len(names)
    assert keys.queue_timeseries("echo").startswith("kuwa:{q:echo}:")  # the queue's shard
    for bad in ("26-11-2026", "2026-11-26x", ""):
        with pytest.raises(ValueError):
            keys.usage_day(bad)
    with pytest.raises(ValueError):
        keys.stress_run("../x")
