"""The gateway's executor watch against a real Redis: readers of a dead executor's jobs are
released as the kernel's recovery would judge each job (see ``kuwa.broker.watch``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker import ChunkPublisher, ExecutorInfo, Hub, JobQueue, Registry
from kuwa.broker.watch import BEFORE_ANSWER, MID_ANSWER
from kuwa.errors import JobFailedError
from kuwa.gateway.chat import ChatService, ChatStream
from kuwa.schemas import ChatRequest, Chunk, Message

pytestmark = pytest.mark.anyio


@pytest.fixture
async def quiet_hub(redis: aioredis.Redis) -> AsyncIterator[Hub]:
    """A hub whose own watch never ticks: the tests call ``hub.watch.check()`` themselves."""
    h = Hub(redis, watch_interval=3600)
    await h.start()
    yield h
    await h.stop()


async def executor(redis: aioredis.Redis, name: str) -> ExecutorInfo:
    info = ExecutorInfo(name, ("m",), "debug", "debug-echo", "host", 1, slots=4)
    await Registry(redis, ttl=30).heartbeat(info)
    await JobQueue(redis).ensure_groups(["m"])
    return info


async def started(redis: aioredis.Redis, chat: ChatService, executor_id: str) -> ChatStream:
    """A chat job enqueued through the service and started by ``executor_id``."""
    request = ChatRequest(model="m", messages=(Message("user", "hi"),), stream=True)
    stream = await chat.start(request, None, check_model=False)
    queue = JobQueue(redis)
    taken = await queue.read(executor_id, ["m"], count=1, block_ms=1000)
    assert [q.job.id for q in taken] == [stream.id]
    await queue.start(taken, executor_id)
    return stream


async def kill(redis: aioredis.Redis, executor_id: str) -> None:
    """What a SIGKILL leaves: the heartbeat key lapses, nothing else is cleaned up."""
    await redis.delete(keys.executor(executor_id))


async def test_readers_of_an_answer_in_flight_get_executor_lost(
    redis: aioredis.Redis, quiet_hub: Hub
) -> None:
    chat = ChatService(quiet_hub, JobQueue(redis), Registry(redis), idle_timeout=300)
    await executor(redis, "victim")
    await executor(redis, "healthy")
    mid = await started(redis, chat, "victim")
    other = await started(redis, chat, "healthy")
    follower, _ = await chat.follow_any(mid.id)  # a second reader of the same job
    ChunkPublisher(redis, mid.id, interval=0, reply_to=quiet_hub.inbox).write("half an ans")
    chunks = mid.chunks()
    first = await anext(chunks)
    assert first.text == "half an ans"
    assert await quiet_hub.watch.check() == 0  # both executors heartbeat
    assert quiet_hub.watch.running_on == {mid.id: "victim", other.id: "healthy"}
    await kill(redis, "victim")
    await redis.set(keys.KERNEL_LEADER, b"k")  # a kernel would fail it the same way: no waiting
    assert await quiet_hub.watch.check() == 1
    with pytest.raises(JobFailedError) as info:
        async for _ in chunks:
            pass
    assert (info.value.code, info.value.message) == ("executor_lost", MID_ANSWER)
    assert mid.finished  # ended like the kernel's error chunk: nothing to cancel
    await mid.close()
    assert not await redis.exists(keys.job_cancel(mid.id))
    got = [c async for c in follower.chunks(idle_timeout=5)]
    assert got[-1] == Chunk(
        1, finish_reason="error", error={"message": MID_ANSWER, "code": "executor_lost"}
    )
    await follower.close()
    assert other.sub.queue.empty()  # the healthy executor's job is untouched
    await other.close()


async def test_a_job_with_nothing_streamed_waits_for_the_kernel(
    redis: aioredis.Redis, quiet_hub: Hub
) -> None:
    """The kernel hands such a job to another executor, so its reader keeps waiting; with no
    kernel nobody would, so the reader is released and the job cancelled."""
    chat = ChatService(quiet_hub, JobQueue(redis), Registry(redis), idle_timeout=300)
    await executor(redis, "victim")
    stream = await started(redis, chat, "victim")
    await kill(redis, "victim")
    await redis.set(keys.KERNEL_LEADER, b"k")
    assert await quiet_hub.watch.check() == 0
    assert await quiet_hub.watch.check() == 0
    # The kernel queues it again; another executor takes it; that one dies too, and by now
    # no kernel runs any more.
    await redis.hset(keys.job_state(stream.id), "status", "queued")
    assert await quiet_hub.watch.check() == 0
    assert quiet_hub.watch.running_on == {}
    await executor(redis, "second")
    await redis.hset(keys.job_state(stream.id), mapping={"status": "running", "executor": "second"})
    assert await quiet_hub.watch.check() == 0
    assert quiet_hub.watch.running_on == {stream.id: "second"}
    assert stream.sub.queue.empty()
    await kill(redis, "second")
    await redis.delete(keys.KERNEL_LEADER)
    assert await quiet_hub.watch.check() == 1
    with pytest.raises(JobFailedError) as info:
        async for _ in stream.chunks():
            pass
    assert (info.value.code, info.value.message) == ("executor_lost", BEFORE_ANSWER)
    await stream.close()
    assert await redis.exists(keys.job_cancel(stream.id))  # a later kernel drops it
    assert quiet_hub.active == 0
    assert await quiet_hub.watch.check() == 0
    assert quiet_hub.watch.running_on == {}
