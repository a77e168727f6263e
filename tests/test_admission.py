"""Admission that keeps every slot busy: jobs that free slots can take now go straight to the
stream and never count against the queue limit; only live executors' free slots count."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker import ExecutorInfo, JobQueue, Registry
from kuwa.errors import QueueFullError
from kuwa.executors.debug import DebugBackend
from kuwa.executors.runtime import ExecutorRuntime
from kuwa.schemas import Job, JobStatus, Message
from kuwa.settings import Settings
from tests.stack import RedisServer, Stack, wait_until


def job(user: int, n: int) -> Job:
    return Job(
        f"chatcmpl-u{user}-{n}", "m", (Message("user", "x"),), user_id=user, created=time.time()
    )


async def live(redis: aioredis.Redis, name: str, *, ttl: float = 5.0, state: str = "ready") -> None:
    info = ExecutorInfo(name, ("m",), "debug", "m", "h", 1, 4, state=state)
    await Registry(redis, ttl=ttl).heartbeat(info)
    await JobQueue(redis).ensure_groups(["m"])


async def backlogged(redis: aioredis.Redis) -> int:
    return int(await redis.get(keys.queue_backlogged("m")) or 0)


@pytest.mark.anyio
async def test_jobs_for_free_slots_go_straight_to_the_stream(redis: aioredis.Redis) -> None:
    await live(redis, "ex")
    queue = JobQueue(redis, max_queue=1, fair_window=0)
    await queue.report("ex", {"m": 100})
    for n in range(100):  # many users or one: free slots take them all at once
        await queue.enqueue(job(n % 3, n))
    assert await redis.xlen(keys.queue_stream("m")) == 100
    assert await backlogged(redis) == 0
    await queue.enqueue(job(1, 100))  # the first job that waits for a slot
    with pytest.raises(QueueFullError):
        await queue.enqueue(job(1, 101))


@pytest.mark.anyio
async def test_queue_limit_counts_only_jobs_waiting_for_a_slot(redis: aioredis.Redis) -> None:
    await live(redis, "ex")
    queue = JobQueue(redis, max_queue=5)  # the default fair window (8)
    await queue.report("ex", {"m": 10})
    for n in range(15):  # 10 for the free slots, 5 waiting
        await queue.enqueue(job(n % 2, n))
    with pytest.raises(QueueFullError):
        await queue.enqueue(job(9, 0))
    # The executor takes 10 (the read itself uses its slots up): 5 still wait, still full.
    taken = await queue.read("ex", ["m"], 10, 100)
    with pytest.raises(QueueFullError):
        await queue.enqueue(job(9, 1))
    # Three finish: three slots free up, and as many jobs are admitted again.
    for q in taken[:3]:
        await queue.finish(q, JobStatus.DONE)
    for n in range(3):
        await queue.enqueue(job(9, 2 + n))
    with pytest.raises(QueueFullError):
        await queue.enqueue(job(9, 5))


@pytest.mark.anyio
async def test_dead_or_draining_executors_free_slots_do_not_count(redis: aioredis.Redis) -> None:
    await live(redis, "ex-live")
    await live(redis, "ex-dead", ttl=0.05)
    await live(redis, "ex-draining", state="draining")
    queue = JobQueue(redis, max_queue=2, fair_window=0)
    await queue.report("ex-live", {"m": 0})
    await queue.report("ex-dead", {"m": 100})  # its last report before it died
    await queue.report("ex-draining", {"m": 100})
    await asyncio.sleep(0.1)
    await queue.enqueue(job(1, 0))
    await queue.enqueue(job(1, 1))
    with pytest.raises(QueueFullError):
        await queue.enqueue(job(1, 2))
    await live(redis, "ex-dead")  # back to life: its 100 free slots count again
    await queue.enqueue(job(1, 2))
    assert await backlogged(redis) == 0  # ...and the waiting jobs moved into the stream


@pytest.mark.anyio
async def test_leaving_executors_take_their_free_slots_along(redis: aioredis.Redis) -> None:
    registry = Registry(redis)
    info = ExecutorInfo("ex-1", ("m",), "debug", "m", "h", 1, 4)
    await registry.heartbeat(info)
    queue = JobQueue(redis)
    await queue.report("ex-1", {"m": 4})
    await queue.report("ex-2", {"m": 4})
    await registry.deregister(info)
    await registry.forget("ex-2", ["m"])
    assert await redis.hgetall(keys.queue_slots("m")) == {}


@pytest.mark.anyio
async def test_backlogs_move_as_soon_as_slots_free_up(redis: aioredis.Redis) -> None:
    await live(redis, "ex")
    queue = JobQueue(redis, fair_window=2)
    await queue.report("ex", {"m": 0})
    for n in range(6):
        await queue.enqueue(job(n % 2, n))
    assert (await redis.xlen(keys.queue_stream("m")), await backlogged(redis)) == (2, 4)
    assert await queue.report("ex", {"m": 3}) == 3  # more slots offered: jobs move at once
    assert (await redis.xlen(keys.queue_stream("m")), await backlogged(redis)) == (5, 1)
    # A finished job frees its slot in the same round trip that moves the next one in.
    taken = await queue.read("ex", ["m"], 3, 100)
    await queue.finish(taken[0], JobStatus.DONE)
    assert (await redis.xlen(keys.queue_stream("m")), await backlogged(redis)) == (5, 0)
    for n in range(2):  # the line is full again
        await queue.enqueue(job(n, 10 + n))
    assert (await redis.xlen(keys.queue_stream("m")), await backlogged(redis)) == (5, 2)
    # An executor that offered slots before it became live: the next enqueue sees them and
    # moves the backlog (users in turn) instead of leaving it behind free slots.
    await queue.report("ex-2", {"m": 5})
    await live(redis, "ex-2")
    await queue.enqueue(job(2, 0))
    assert (await redis.xlen(keys.queue_stream("m")), await backlogged(redis)) == (8, 0)


def test_a_burst_no_larger_than_the_free_slots_starts_at_once(tmp_path: Path) -> None:
    """Real processes, a small queue limit (8): a burst of 48 on 64 free slots gets no 429 and
    every job starts before the first one ends (none waited for a slot). The slots the executor
    offers are in Redis while it runs and gone once it stopped."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    client = server.client()
    try:
        token = stack.create_user()
        executor = stack.executor("m", delay=0.4, concurrency=64, name="ex-burst")
        wait_until(lambda: client.hget(keys.queue_slots("m"), "ex-burst") == b"64", 5, "offer")
        base = stack.gateway({"KUWA_MAX_QUEUE": "8"})

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(
                limits=httpx.Limits(max_connections=64), timeout=60
            ) as http:
                return await asyncio.gather(
                    *(
                        http.post(
                            base + "/v1/chat/completions",
                            headers={"Authorization": f"Bearer {token}"},
                            json={"model": "m", "messages": [{"role": "user", "content": "x y"}]},
                        )
                        for _ in range(48)
                    )
                )

        responses = asyncio.run(burst())
        assert [r.status_code for r in responses] == [200] * 48, responses[0].text
        states = [client.hgetall(keys.job_state(r.json()["id"])) for r in responses]
        first_end = min(float(s[b"finished"]) for s in states)
        assert all(float(s[b"started"]) < first_end for s in states)
        executor.stop()
        assert client.hget(keys.queue_slots("m"), "ex-burst") is None
    finally:
        client.close()
        stack.stop()
        server.stop()


@pytest.mark.anyio
async def test_an_executor_of_two_queues_offers_each_what_the_other_leaves(
    redis: aioredis.Redis,
) -> None:
    """In-process runtime serving two access codes with 4 slots: 3 jobs running on one leave
    1 slot offered to the other; a draining executor offers none; a stopped one is gone."""
    s = Settings(access_code=("m", "n"), max_concurrency=4, debug_delay=0.3, heartbeat_ttl=3.0)
    runtime = ExecutorRuntime(s, DebugBackend(s), redis)
    task = asyncio.create_task(runtime.run())

    async def offers() -> dict[str, int]:
        return {
            code: int(await redis.hget(keys.queue_slots(code), runtime.id) or -1)
            for code in ("m", "n")
        }

    async def until(expected: dict[str, int]) -> None:
        for _ in range(300):
            if await offers() == expected:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{await offers()} != {expected}")

    await until({"m": 4, "n": 4})
    queue = JobQueue(redis)
    for n in range(3):
        await queue.enqueue(job(1, n))  # "x": one token, 0.3 s
    await until({"m": 4, "n": 1})  # m's own jobs are its pending entries in Redis
    await until({"m": 4, "n": 4})  # finished
    await queue.enqueue(job(1, 3))
    await until({"m": 4, "n": 3})
    runtime.request_stop()
    await until({"m": 0, "n": 0})  # draining its last job
    await asyncio.wait_for(task, 10)
    assert await offers() == {"m": -1, "n": -1}
