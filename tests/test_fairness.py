"""Fair turns between users of one model: one user's 200 jobs do not hold up another's one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker import ExecutorInfo, JobQueue, Registry, connect
from kuwa.schemas import Job, Message
from tests.stack import RedisServer, Stack


def job(user: int, n: int) -> Job:
    return Job(
        f"chatcmpl-u{user}-{n}", "m", (Message("user", "x"),), user_id=user, created=time.time()
    )


@pytest.mark.anyio
async def test_users_take_turns_once_the_line_is_full(redis: aioredis.Redis) -> None:
    await JobQueue(redis).ensure_groups(["m"])
    await Registry(redis).heartbeat(ExecutorInfo("ex", ("m",), "debug", "m", "h", 1, 4))
    queue = JobQueue(redis, fair_window=4)
    for n in range(50):
        await queue.enqueue(job(1, n))
    await queue.enqueue(job(2, 0))
    await queue.enqueue(job(3, 0))
    assert await redis.xlen(keys.queue_stream("m")) == 4  # the window; the rest wait in turns
    assert int(await redis.get(keys.queue_backlogged("m")) or 0) == 48
    order: list[str] = []
    while len(order) < 52:
        taken = await queue.read("ex", ["m"], 4, 100)
        await queue.start(taken, "ex")
        order += [q.job.id for q in taken]
    assert order.index("chatcmpl-u2-0") <= 5 and order.index("chatcmpl-u3-0") <= 6
    assert sorted(order) == sorted({*order})  # every job exactly once
    assert int(await redis.get(keys.queue_backlogged("m")) or 0) == 0
    assert await redis.llen(keys.queue_ring("m")) == 0


@pytest.mark.anyio
async def test_queue_limit_counts_backlogs(redis: aioredis.Redis) -> None:
    from kuwa.errors import QueueFullError

    await JobQueue(redis).ensure_groups(["m"])
    await Registry(redis).heartbeat(ExecutorInfo("ex", ("m",), "debug", "m", "h", 1, 4))
    queue = JobQueue(redis, max_queue=6, fair_window=2)
    for n in range(6):
        await queue.enqueue(job(n % 2, n))
    with pytest.raises(QueueFullError):
        await queue.enqueue(job(9, 0))


def test_one_job_of_user_b_starts_within_one_slot_turnover(tmp_path: Path) -> None:
    """Real processes, default settings, slots scarce: user A submits 200 jobs to an executor
    with 16 slots, then user B one; B's starts before A's have taken every slot once more."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        a = stack.create_user("a@example.com")
        b = stack.create_user("b@example.com")
        stack.executor("m", delay=0.05, concurrency=16)
        base = stack.gateway()

        async def scenario() -> str:
            async with httpx.AsyncClient(
                limits=httpx.Limits(max_connections=220), timeout=120
            ) as client:

                def ask(token: str, text: str) -> asyncio.Task[httpx.Response]:
                    return asyncio.create_task(
                        client.post(
                            base + "/v1/chat/completions",
                            headers={"Authorization": f"Bearer {token}"},
                            json={"model": "m", "messages": [{"role": "user", "content": text}]},
                        )
                    )

                flood = [ask(a, f"a{i} x y") for i in range(200)]
                async with connect(stack.redis.url) as redis:  # a long line of A's jobs
                    while int(await redis.get(keys.queue_backlogged("m")) or 0) < 100:
                        await asyncio.sleep(0.01)
                mine = ask(b, "b x y")
                results = await asyncio.gather(*flood, mine)
                assert all(r.status_code == 200 for r in results)
                return str(results[-1].json()["id"])

        b_job = asyncio.run(scenario())
        client = server.client()
        b_state = client.hgetall(keys.job_state(b_job))
        b_queued, b_started = float(b_state[b"queued"]), float(b_state[b"started"])
        started_meanwhile = 0  # A's jobs that started while B's job waited
        queued_at_b = 0  # A's jobs that had arrived but not started when B's arrived
        for key in client.scan_iter(match="kuwa:{job:*}:state"):
            state = client.hgetall(key)
            created, started = float(state[b"created"]), float(state[b"started"])
            started_meanwhile += b_queued < started < b_started
            queued_at_b += created < b_queued < started
        assert queued_at_b > 50  # B really arrived behind a long line of A's jobs
        # Fewer than the executor's slots: the fair window (8), A's turn before B's in the
        # ring (1) and a job or two in flight.
        assert started_meanwhile <= 8 + 1 + 2 < 16, (started_meanwhile, queued_at_b)
        client.close()
    finally:
        stack.stop()
        server.stop()
