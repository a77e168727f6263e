"""The kernel: leader lease and recovery of jobs whose executor died."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker import ExecutorInfo, Hub, JobQueue, Registry, connect
from kuwa.kernel import Kernel
from kuwa.schemas import Chunk, Job, JobStatus, Message
from kuwa.settings import Settings
from tests.stack import RedisServer, Stack

pytestmark = pytest.mark.anyio


def make_job(deliveries: int = 0) -> Job:
    return Job(
        f"chatcmpl-{time.monotonic_ns()}", "echo", (Message("user", "x"),), deliveries=deliveries
    )


async def orphan(redis: aioredis.Redis, job: Job) -> None:
    """Queue a job and let a 'ghost' executor take it and die without a trace."""
    ghost = ExecutorInfo("ghost", ("echo",), "debug", "m", "h", 1, 1)
    await JobQueue(redis).ensure_groups(["echo"])
    await Registry(redis, ttl=0.05).heartbeat(ghost)
    await JobQueue(redis).enqueue(job)
    taken = await JobQueue(redis).read("ghost", ["echo"], 1, 100)
    assert [q.job.id for q in taken] == [job.id]
    await asyncio.sleep(0.1)  # its heartbeat lapses


async def test_one_leader_at_a_time(redis: aioredis.Redis) -> None:
    a, b = Kernel(Settings(), redis), Kernel(Settings(), redis)
    await a.tick()
    await b.tick()
    assert (a.leader, b.leader) == (True, False)
    await a.tick()
    assert a.leader
    await redis.delete(keys.KERNEL_LEADER)  # the leader died and its lease ran out
    await b.tick()
    assert b.leader


async def test_unstarted_job_of_dead_executor_is_queued_again(
    redis: aioredis.Redis, hub: Hub
) -> None:
    job = make_job()
    sub = await hub.subscribe(job.id)
    await orphan(redis, job)
    kernel = Kernel(Settings(), redis)
    await kernel.tick()
    assert kernel.recovered == 1
    # Another executor picks it up again, with one more delivery counted.
    await Registry(redis).heartbeat(ExecutorInfo("alive", ("echo",), "debug", "m", "h", 1, 1))
    [again] = await JobQueue(redis).read("alive", ["echo"], 1, 100)
    assert again.job.id == job.id and again.job.deliveries == 1
    await sub.close()


async def test_job_that_failed_too_often_fails_its_reader(redis: aioredis.Redis, hub: Hub) -> None:
    job = make_job(deliveries=2)
    sub = await hub.subscribe(job.id)
    await orphan(redis, job)
    await Kernel(Settings(max_deliveries=3), redis).tick()
    [chunk] = [c async for c in sub.chunks(idle_timeout=5)]
    assert chunk.finish_reason == "error"
    assert chunk.error is not None and chunk.error["code"] == "executor_lost"
    await sub.close()


async def test_reader_of_half_streamed_job_gets_an_error(redis: aioredis.Redis, hub: Hub) -> None:
    job = make_job()
    sub = await hub.subscribe(job.id)
    await orphan(redis, job)
    await redis.rpush(keys.job_transcript(job.id), Chunk(0, "half").encode())
    await Kernel(Settings(), redis).tick()
    got = [c async for c in sub.chunks(idle_timeout=5)]
    assert got[0].text == "half"
    assert got[-1].finish_reason == "error"
    assert got[-1].error is not None and "stopped" in got[-1].error["message"]
    assert await redis.xlen(keys.queue_stream("echo")) == 0
    await sub.close()


def test_killed_executor_mid_stream_ends_the_stream_with_an_error(tmp_path: Path) -> None:
    """Real processes: SIGKILL an executor mid-answer; the kernel tells the reader."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        stack.spawn("kernel", ["kernel", "start"], {"KUWA_HEARTBEAT_TTL": "1"})
        victim = stack.executor("echo", delay=0.05, name="victim", env={"KUWA_HEARTBEAT_TTL": "1"})

        async def scenario() -> list[Chunk]:
            client = connect(server.url)
            h = Hub(client)
            await h.start()
            try:
                job = make_job()
                job = Job(job.id, "echo", (Message("user", " ".join(["w"] * 200)),))
                sub = await h.subscribe(job.id)
                await JobQueue(client).enqueue(job)
                chunks = sub.chunks(idle_timeout=20)
                got = [await chunks.__anext__()]
                victim.popen.send_signal(signal.SIGKILL)
                got += [c async for c in chunks]
                return got
            finally:
                await h.stop()
                await client.aclose()

        started = time.monotonic()
        got = asyncio.run(scenario())
        assert got[-1].finish_reason == "error"
        assert got[-1].error is not None and got[-1].error["code"] == "executor_lost"
        assert time.monotonic() - started < 15  # heartbeat TTL (1 s) + a kernel tick + start-up
    finally:
        stack.stop()
        server.stop()


async def test_jobs_stranded_without_executor_fail_after_a_grace(
    redis: aioredis.Redis, hub: Hub
) -> None:
    await JobQueue(redis).ensure_groups(["echo"])
    await Registry(redis, ttl=0.05).heartbeat(
        ExecutorInfo("leaving", ("echo",), "debug", "m", "h", 1, 1)
    )
    job = make_job()
    sub = await hub.subscribe(job.id)
    await JobQueue(redis).enqueue(job)
    await asyncio.sleep(0.1)  # the only executor is gone; nobody will read the queue
    kernel = Kernel(Settings(heartbeat_ttl=0.05), redis)
    await kernel.tick()
    [chunk] = [c async for c in sub.chunks(idle_timeout=5)]
    assert chunk.error is not None and chunk.error["code"] == "model_unavailable"
    assert await redis.xlen(keys.queue_stream("echo")) == 0
    await sub.close()


async def test_fresh_waiting_jobs_are_left_alone(redis: aioredis.Redis) -> None:
    await JobQueue(redis).ensure_groups(["echo"])
    await Registry(redis, ttl=0.05).heartbeat(
        ExecutorInfo("leaving", ("echo",), "debug", "m", "h", 1, 1)
    )
    await JobQueue(redis).enqueue(make_job())
    await asyncio.sleep(0.1)
    await Kernel(Settings(heartbeat_ttl=30), redis).tick()  # grace of 60 s not over
    assert await redis.xlen(keys.queue_stream("echo")) == 1


async def test_stopping_kernel_releases_only_its_own_lease(redis: aioredis.Redis) -> None:
    kernel = Kernel(Settings(), redis)
    await kernel.tick()
    await redis.set(keys.KERNEL_LEADER, "someone-else")
    kernel.request_stop()
    await kernel.run()
    assert await redis.get(keys.KERNEL_LEADER) == b"someone-else"


async def test_job_waiting_past_the_queue_timeout_fails(redis: aioredis.Redis, hub: Hub) -> None:
    await JobQueue(redis).ensure_groups(["echo"])
    await Registry(redis, ttl=30).heartbeat(
        ExecutorInfo("busy", ("echo",), "debug", "m", "h", 1, 1)
    )
    job = make_job()
    sub = await hub.subscribe(job.id)
    await JobQueue(redis).enqueue(job)
    await asyncio.sleep(0.3)
    await Kernel(Settings(queue_timeout=10), redis).tick()  # not overdue yet
    assert await redis.xlen(keys.queue_stream("echo")) == 1
    await redis.delete(keys.KERNEL_LEADER)  # hand over to a kernel with a shorter timeout
    await Kernel(Settings(queue_timeout=0.2), redis).tick()
    [chunk] = [c async for c in sub.chunks(idle_timeout=5)]
    assert chunk.error is not None and chunk.error["code"] == "queue_timeout"
    assert await redis.xlen(keys.queue_stream("echo")) == 0
    await sub.close()


async def test_a_models_own_queue_timeout_wins(redis: aioredis.Redis, hub: Hub) -> None:
    await JobQueue(redis).ensure_groups(["echo"])
    await Registry(redis, ttl=30).heartbeat(
        ExecutorInfo("busy", ("echo",), "debug", "m", "h", 1, 1)
    )
    job = make_job()
    sub = await hub.subscribe(job.id)
    await JobQueue(redis).enqueue(job)
    await asyncio.sleep(0.3)
    # As a gateway publishes it from the model catalog:
    await redis.hset(keys.MODEL_CONFIG, "echo", orjson.dumps({"queue_timeout": 0.2}))
    await Kernel(Settings(queue_timeout=600), redis).tick()
    [chunk] = [c async for c in sub.chunks(idle_timeout=5)]
    assert chunk.error is not None and chunk.error["code"] == "queue_timeout"
    assert "0.2 s" in chunk.error["message"]
    await sub.close()


async def test_overdue_jobs_in_backlogs_fail_too(redis: aioredis.Redis, hub: Hub) -> None:
    await JobQueue(redis).ensure_groups(["echo"])
    await Registry(redis, ttl=30).heartbeat(
        ExecutorInfo("busy", ("echo",), "debug", "m", "h", 1, 1)
    )
    queue = JobQueue(redis, fair_window=1)
    jobs = [
        dataclasses.replace(make_job(), id=f"chatcmpl-b{i}", user_id=7, created=time.time())
        for i in range(3)
    ]
    subs = [await hub.subscribe(j.id) for j in jobs]
    for j in jobs:
        await queue.enqueue(j)
    assert int(await redis.get(keys.queue_backlogged("echo")) or 0) == 2
    await asyncio.sleep(0.3)
    await Kernel(Settings(queue_timeout=0.2, fair_window=1), redis).tick()
    for sub in subs:
        [chunk] = [c async for c in sub.chunks(idle_timeout=5)]
        assert chunk.error is not None and chunk.error["code"] == "queue_timeout"
        await sub.close()
    assert int(await redis.get(keys.queue_backlogged("echo")) or 0) == 0
    assert await redis.xlen(keys.queue_stream("echo")) == 0


async def test_dead_executor_is_listed_as_dead_for_a_while(redis: aioredis.Redis) -> None:
    registry = Registry(redis, ttl=0.05)
    await registry.heartbeat(ExecutorInfo("gone", ("echo",), "debug", "m", "h", 1, 1))
    await asyncio.sleep(0.1)
    assert await registry.executors() == []
    [dead] = await registry.executors(include_dead=True)
    assert (dead.id, dead.state) == ("gone", "dead")
    await Kernel(Settings(), redis).tick()  # just died: still shown
    assert [e.id for e in await registry.executors(include_dead=True)] == ["gone"]
    await redis.zadd(keys.EXECUTORS, {"gone": time.time() - 120})  # died two minutes ago
    await redis.delete(keys.KERNEL_LEADER)
    await Kernel(Settings(), redis).tick()
    assert await registry.executors(include_dead=True) == []


async def hold(redis: aioredis.Redis, consumer: str, n: int) -> list[Job]:
    """Queue ``n`` jobs and let ``consumer`` take them all (they stay pending in the group)."""
    queue = JobQueue(redis, max_queue=10_000, fair_window=10_000)
    jobs = [make_job() for _ in range(n)]
    for job in jobs:
        await queue.enqueue(job)
    taken = await queue.read(consumer, ["echo"], n, 100)
    assert len(taken) == n
    return jobs


async def consumer_names(redis: aioredis.Redis) -> set[str]:
    found = await redis.xinfo_consumers(keys.queue_stream("echo"), keys.CONSUMER_GROUP)
    return {c["name"].decode() for c in found}


async def test_dead_executors_jobs_behind_a_thousand_taken_ones_are_recovered(
    redis: aioredis.Redis,
) -> None:
    await JobQueue(redis).ensure_groups(["echo"])
    await Registry(redis, ttl=30).heartbeat(
        ExecutorInfo("busy", ("echo",), "debug", "m", "h", 1, 1000)
    )
    await Registry(redis, ttl=0.05).heartbeat(
        ExecutorInfo("ghost", ("echo",), "debug", "m", "h", 1, 250)
    )
    await hold(redis, "busy", 1000)  # a live executor's running jobs, older than the ghost's
    lost = await hold(redis, "ghost", 250)  # more than a page
    await asyncio.sleep(0.1)  # the ghost's heartbeat lapses
    kernel = Kernel(Settings(), redis)
    await kernel.tick()
    assert kernel.recovered == 250
    pending = await redis.xpending(keys.queue_stream("echo"), keys.CONSUMER_GROUP)
    assert pending["pending"] == 1000  # the live executor's jobs are left alone
    await Registry(redis, ttl=30).heartbeat(
        ExecutorInfo("fresh", ("echo",), "debug", "m", "h", 1, 1000)
    )
    again = await JobQueue(redis).read("fresh", ["echo"], 1000, 100)
    assert [q.job.id for q in again] == [j.id for j in lost]
    assert {q.job.deliveries for q in again} == {1}
    # The dead executor left the consumer group; the kernel's own claims are gone next tick.
    assert "ghost" not in await consumer_names(redis)
    await kernel.tick()
    assert await consumer_names(redis) == {"busy", "fresh"}


async def test_only_consumers_that_hold_nothing_and_are_not_live_leave_the_group(
    redis: aioredis.Redis,
) -> None:
    queue = JobQueue(redis)
    await queue.ensure_groups(["echo"])
    await Registry(redis, ttl=30).heartbeat(
        ExecutorInfo("idle", ("echo",), "debug", "m", "h", 1, 1)
    )
    await Registry(redis, ttl=0.05).heartbeat(
        ExecutorInfo("left", ("echo",), "debug", "m", "h", 1, 1)
    )
    for consumer in ("idle", "left"):  # each serves a job to its end
        await queue.enqueue(make_job())
        [q] = await queue.read(consumer, ["echo"], 1, 100)
        await queue.finish(q, JobStatus.DONE)
    await asyncio.sleep(0.1)
    assert await consumer_names(redis) == {"idle", "left"}
    await Kernel(Settings(), redis).tick()
    assert await consumer_names(redis) == {"idle"}
    # Dropping is checked against the pending list in the same step: a holder stays.
    await hold(redis, "left", 1)
    assert not await queue.drop_consumer("echo", "left")
    assert await consumer_names(redis) == {"idle", "left"}


async def test_overdue_jobs_behind_a_thousand_taken_ones_fail(
    redis: aioredis.Redis, hub: Hub
) -> None:
    await JobQueue(redis).ensure_groups(["echo"])
    await Registry(redis, ttl=30).heartbeat(
        ExecutorInfo("busy", ("echo",), "debug", "m", "h", 1, 1000)
    )
    await hold(redis, "busy", 1000)  # running for longer than the queue timeout, rightly
    queue = JobQueue(redis, max_queue=10_000, fair_window=10_000)
    waiting = [make_job() for _ in range(150)]  # more than a page
    sub = await hub.subscribe(waiting[-1].id)
    for job in waiting:
        await queue.enqueue(job)
    await asyncio.sleep(0.3)
    await Kernel(Settings(queue_timeout=0.2), redis).tick()
    [chunk] = [c async for c in sub.chunks(idle_timeout=5)]
    assert chunk.error is not None and chunk.error["code"] == "queue_timeout"
    await sub.close()
    assert await redis.xlen(keys.queue_stream("echo")) == 1000  # only the taken ones are left
    pending = await redis.xpending(keys.queue_stream("echo"), keys.CONSUMER_GROUP)
    assert pending["pending"] == 1000
    states = [await JobQueue(redis).state(j.id) for j in waiting]
    assert {s["status"] for s in states} == {"failed"}
    # A job that an executor holds is never withdrawn, even when asked for by id.
    taken = await queue.held("echo", "busy", 1)
    assert await queue.withdraw("echo", taken) == set()
    assert await redis.xlen(keys.queue_stream("echo")) == 1000
