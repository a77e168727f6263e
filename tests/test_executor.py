"""The executor runtime with the debug backend, in-process and as a real process."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from kuwa import keys
from kuwa.broker import ExecutorInfo, Hub, JobQueue, Registry, connect
from kuwa.executors import load_backend
from kuwa.executors.base import Completion, Emit
from kuwa.executors.debug import DebugBackend
from kuwa.executors.runtime import ExecutorRuntime
from kuwa.schemas import Chunk, GenerationParams, Job, Message
from kuwa.settings import Settings
from tests.stack import RedisServer, Stack, wait_until

pytestmark = pytest.mark.anyio


def settings(**kw: object) -> Settings:
    base: dict[str, object] = {"access_code": ("echo",), "heartbeat_ttl": 3.0}
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def job(text: str, **params: object) -> Job:
    return Job(
        f"chatcmpl-{time.monotonic_ns()}",
        "echo",
        (Message("user", text),),
        GenerationParams(**params),  # type: ignore[arg-type]
    )


async def start_runtime(
    s: Settings, redis: aioredis.Redis, backend: DebugBackend | None = None
) -> tuple[ExecutorRuntime, asyncio.Task[None]]:
    runtime = ExecutorRuntime(s, backend or DebugBackend(s), redis)
    task = asyncio.create_task(runtime.run())
    registry = Registry(redis)
    for _ in range(200):
        if (await registry.live_counts(["echo"]))["echo"]:
            break
        await asyncio.sleep(0.01)
    return runtime, task


async def stop_runtime(runtime: ExecutorRuntime, task: asyncio.Task[None]) -> None:
    runtime.request_stop()
    await asyncio.wait_for(task, 10)


async def ask(hub: Hub, redis: aioredis.Redis, j: Job) -> list[Chunk]:
    sub = await hub.subscribe(j.id)
    await JobQueue(redis).enqueue(j)
    try:
        return [c async for c in sub.chunks(idle_timeout=10)]
    finally:
        await sub.close()


def test_debug_backend_is_an_entry_point() -> None:
    assert load_backend("debug") is DebugBackend
    with pytest.raises(LookupError, match="no executor backend"):
        load_backend("nope")


async def test_answers_and_registers(redis: aioredis.Redis, hub: Hub) -> None:
    runtime, task = await start_runtime(settings(), redis)
    try:
        chunks = await ask(hub, redis, job("Hello, 世界 🌍"))
        assert "".join(c.text for c in chunks) == "Hello, 世界 🌍"
        assert chunks[-1].finish_reason == "stop"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
        [info] = await Registry(redis).executors()
        assert info.access_codes == ("echo",) and info.backend == "debug"
    finally:
        await stop_runtime(runtime, task)
    assert await Registry(redis).executors() == []


async def test_a_jobs_output_follows_its_mark_as_running(redis: aioredis.Redis, hub: Hub) -> None:
    """A job read by a blocking read starts before Redis marks it running (that round trip
    overlaps its start), but nothing of it reaches a reader before the mark."""
    runtime, task = await start_runtime(settings(), redis)
    try:
        for _ in range(5):
            j = job("quick")
            sub = await hub.subscribe(j.id)
            await JobQueue(redis).enqueue(j)
            chunks = sub.chunks(idle_timeout=10)
            first = await chunks.__anext__()
            state = await redis.hgetall(keys.job_state(j.id))
            assert first.text == "quick"
            assert state[b"executor"] == runtime.id.encode() and b"started" in state
            await chunks.aclose()
            await sub.close()
    finally:
        await stop_runtime(runtime, task)


async def test_max_tokens_and_stop(redis: aioredis.Redis, hub: Hub) -> None:
    runtime, task = await start_runtime(settings(), redis)
    try:
        limited = await ask(hub, redis, job("one two three four", max_tokens=2))
        assert "".join(c.text for c in limited) == "one two"
        assert limited[-1].finish_reason == "length"
        stopped = await ask(hub, redis, job("one two three four", stop=("thr",)))
        assert "".join(c.text for c in stopped) == "one two "
    finally:
        await stop_runtime(runtime, task)


class CountingBackend(DebugBackend):
    """Records how many jobs run at once."""

    running = 0
    peak = 0

    async def generate(self, job: Job, emit: Emit) -> Completion:
        type(self).running += 1
        type(self).peak = max(type(self).peak, type(self).running)
        try:
            return await super().generate(job, emit)
        finally:
            type(self).running -= 1


async def test_never_runs_more_jobs_than_slots(redis: aioredis.Redis, hub: Hub) -> None:
    s = settings(max_concurrency=2, debug_delay=0.01)
    runtime, task = await start_runtime(s, redis, CountingBackend(s))
    try:
        answers = await asyncio.gather(*(ask(hub, redis, job(f"job {i} a b c")) for i in range(8)))
        assert ["".join(c.text for c in a) for a in answers] == [f"job {i} a b c" for i in range(8)]
        assert CountingBackend.peak == 2
    finally:
        await stop_runtime(runtime, task)


async def test_cancel_stops_generation_within_100_ms(redis: aioredis.Redis, hub: Hub) -> None:
    runtime, task = await start_runtime(settings(debug_delay=0.05), redis)
    try:
        j = job(" ".join(["word"] * 200))
        sub = await hub.subscribe(j.id)
        await JobQueue(redis).enqueue(j)
        chunks = sub.chunks(idle_timeout=5)
        await chunks.__anext__()
        cancelled_at = time.time()
        await JobQueue(redis).cancel(j.id)
        rest = [c async for c in chunks]
        assert rest[-1].finish_reason == "cancelled"
        for _ in range(100):
            if await redis.hget(keys.job_state(j.id), "finished"):
                break
            await asyncio.sleep(0.005)
        finished = float(await redis.hget(keys.job_state(j.id), "finished") or 0)
        assert finished - cancelled_at < 0.1
        assert (await redis.hget(keys.job_state(j.id), "status")) == b"cancelled"
    finally:
        await stop_runtime(runtime, task)


async def test_job_cancelled_while_queued_never_runs(redis: aioredis.Redis, hub: Hub) -> None:
    await JobQueue(redis).ensure_groups(["echo"])
    # A placeholder registration, so the job can be queued before the executor starts.
    await Registry(redis).heartbeat(ExecutorInfo("placeholder", ("echo",), "debug", "m", "h", 1, 1))
    j = job("never")
    sub = await hub.subscribe(j.id)
    await JobQueue(redis).enqueue(j)
    await JobQueue(redis).cancel(j.id)
    runtime, task = await start_runtime(settings(), redis)
    try:
        got = [c async for c in sub.chunks(idle_timeout=5)]
        assert [(c.text, c.finish_reason) for c in got] == [("", "cancelled")]
    finally:
        await sub.close()
        await stop_runtime(runtime, task)


async def test_backend_error_reaches_the_reader(redis: aioredis.Redis, hub: Hub) -> None:
    runtime, task = await start_runtime(settings(), redis)
    try:
        chunks = await ask(hub, redis, job("/debug error partial answer"))
        assert "".join(c.text for c in chunks) == "partial answer"
        assert chunks[-1].finish_reason == "error"
        assert chunks[-1].error is not None and "fail" in chunks[-1].error["message"]
        for _ in range(100):
            if not runtime.running:
                break
            await asyncio.sleep(0.01)
        assert not runtime.running
    finally:
        await stop_runtime(runtime, task)


def test_sigterm_drains_running_jobs(tmp_path: Path) -> None:
    """A real executor process finishes its job after SIGTERM, then deregisters and exits 0."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        proc = stack.executor("echo", delay=0.02, name="drainer")

        async def scenario() -> list[Chunk]:
            client = connect(server.url)
            h = Hub(client)
            await h.start()
            try:
                j = job(" ".join(["w"] * 40))
                sub = await h.subscribe(j.id)
                await JobQueue(client).enqueue(j)
                chunks = sub.chunks(idle_timeout=10)
                got = [await chunks.__anext__()]
                proc.popen.send_signal(signal.SIGTERM)
                got += [c async for c in chunks]
                return got
            finally:
                await h.stop()
                await client.aclose()

        got = asyncio.run(scenario())
        assert "".join(c.text for c in got) == " ".join(["w"] * 40)
        assert got[-1].finish_reason == "stop"
        assert proc.popen.wait(10) == 0
        client = server.client()
        wait_until(lambda: client.zcard(keys.EXECUTORS) == 0, 5, "deregistration")
        assert "draining" in proc.text() or "stop requested" in proc.text()
    finally:
        stack.stop()
        server.stop()


async def test_drain_puts_untaken_jobs_back(redis: aioredis.Redis, hub: Hub) -> None:
    """Jobs read but not started when SIGTERM comes go back to the queue, not to an error."""
    s = settings(max_concurrency=1, debug_delay=0.01)
    runtime = ExecutorRuntime(s, DebugBackend(s), redis)
    await runtime.backend.start()
    await runtime.queue.ensure_groups(["echo"])
    await runtime.registry.heartbeat(runtime.info)
    j = job("later")
    await JobQueue(redis).enqueue(j)
    runtime.backlog.extend(await runtime.queue.read(runtime.id, ["echo"], 1, 100))
    await runtime._drain()
    [again] = await JobQueue(redis).read("other", ["echo"], 1, 100)
    assert again.job.id == j.id
    assert await redis.hget(keys.job_state(j.id), "status") == b"queued"


class SlowStart(DebugBackend):
    started = asyncio.Event()

    async def start(self) -> None:
        await asyncio.sleep(0.5)  # like an engine loading its weights
        await super().start()


async def test_loading_executor_is_starting_and_requests_say_so(
    redis: aioredis.Redis, hub: Hub
) -> None:
    from kuwa.errors import ModelUnavailableError
    from kuwa.gateway.chat import ChatService
    from kuwa.schemas import ChatRequest

    s = settings(heartbeat_ttl=3.0)
    runtime = ExecutorRuntime(s, SlowStart(s), redis)
    task = asyncio.create_task(runtime.run())
    chat = ChatService(hub, JobQueue(redis), Registry(redis), idle_timeout=5)
    request = ChatRequest("echo", (Message("user", "hi"),))
    for _ in range(50):
        if await Registry(redis).executors():
            break
        await asyncio.sleep(0.01)
    [info] = await Registry(redis).executors()
    assert info.state == "starting"
    with pytest.raises(ModelUnavailableError) as refused:
        await chat.start(request, None)
    assert refused.value.code == "model_starting"
    assert refused.value.headers["Retry-After"] == "5"
    for _ in range(200):
        if (await Registry(redis).executors())[0].state == "ready":
            break
        await asyncio.sleep(0.01)
    stream = await chat.start(request, None)
    assert (await stream.collect()).text == "hi"
    await stream.close()
    await stop_runtime(runtime, task)
