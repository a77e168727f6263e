"""The Redis data plane against a real Redis: queues, chunk streams, transcripts, replay."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis as sync_redis
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError

from kuwa import keys
from kuwa.broker import (
    ChunkBatcher,
    ChunkPublisher,
    ExecutorInfo,
    Hub,
    JobQueue,
    Registry,
    Subscription,
    cancel_and_wait,
)
from kuwa.broker.batch import SCRIPT as BATCH_SCRIPT
from kuwa.broker.batch import CommandBatch
from kuwa.errors import JobFailedError, ModelUnavailableError, QueueFullError
from kuwa.schemas import Chunk, Job, Message, Usage

pytestmark = pytest.mark.anyio


def make_job(code: str = "echo", text: str = "hi", job_id: str | None = None) -> Job:
    return Job(
        job_id or f"chatcmpl-{time.monotonic_ns()}", code, (Message("user", text),), created=1.0
    )


async def register(redis: aioredis.Redis, *codes: str, ttl: float = 5.0) -> ExecutorInfo:
    info = ExecutorInfo("ex-1", codes, "debug", "debug-echo", "host", 1, slots=4)
    await Registry(redis, ttl=ttl).heartbeat(info)
    await JobQueue(redis).ensure_groups(list(codes))
    return info


async def test_enqueue_without_live_executor_is_refused_at_once(redis: aioredis.Redis) -> None:
    started = time.monotonic()
    job = make_job()
    with pytest.raises(ModelUnavailableError):
        await JobQueue(redis).enqueue(job)
    assert time.monotonic() - started < 0.5
    assert await redis.exists(keys.queue_stream("echo"), keys.job_state(job.id)) == 0


async def test_expired_executor_does_not_count(redis: aioredis.Redis) -> None:
    await register(redis, "echo", ttl=0.05)
    await asyncio.sleep(0.1)
    with pytest.raises(ModelUnavailableError):
        await JobQueue(redis).enqueue(make_job())


async def test_enqueue_and_read_back(redis: aioredis.Redis) -> None:
    await register(redis, "echo")
    queue = JobQueue(redis)
    job = make_job(text="你好")
    before = time.time()
    await queue.enqueue(job)
    after = time.time()
    state = await queue.state(job.id)
    assert {k: state[k] for k in ("status", "model", "owner", "created")} == {
        "status": "queued", "model": "echo", "owner": "", "created": "1.0"
    }  # fmt: skip
    assert before - 0.01 <= float(state["queued"]) <= after + 0.01  # Redis's clock, as `started`
    assert 0 < await redis.ttl(keys.job_state(job.id)) <= queue.state_ttl
    got = await queue.read("ex-1", ["echo"], count=10, block_ms=100)
    assert [q.job for q in got] == [job]
    assert await queue.owner_and_status(job.id) == ("", "queued")
    await queue.start(got, "ex-1")
    assert await queue.owner_and_status(job.id) == ("", "running")


async def test_take_marks_the_jobs_started_in_the_same_step(redis: aioredis.Redis) -> None:
    """``take`` hands out the waiting jobs, in order, already running on the executor, with
    ``started`` by Redis's clock and a cancelled-while-queued flag; nothing waiting: nothing
    taken (it never blocks)."""
    await register(redis, "echo")
    queue = JobQueue(redis)
    jobs = [make_job(text=f"job {n}") for n in range(3)]
    for job in jobs:
        await queue.enqueue(job)
    await queue.cancel(jobs[1].id)
    before = time.time()
    taken = await queue.take("ex-1", ["echo"], 10)
    after = time.time()
    assert [(q.code, q.job, cancelled) for q, cancelled in taken] == [
        ("echo", jobs[0], False),
        ("echo", jobs[1], True),
        ("echo", jobs[2], False),
    ]
    for job in jobs:
        state = await queue.state(job.id)
        assert (state["status"], state["executor"]) == ("running", "ex-1")
        assert before - 0.01 <= float(state["started"]) <= after + 0.01
    assert await queue.take("ex-1", ["echo"], 10) == []
    assert await queue.consumers(["echo"]) == {"echo": {"ex-1": 3}}  # its pending entries


async def test_take_takes_no_more_than_asked(redis: aioredis.Redis) -> None:
    await register(redis, "echo")
    queue = JobQueue(redis)
    for _ in range(5):
        await queue.enqueue(make_job())
    first = await queue.take("ex-1", ["echo"], 2)
    second = await queue.take("ex-1", ["echo"], 10)
    assert (len(first), len(second)) == (2, 3)


async def test_a_blocking_reads_jobs_started_when_it_was_served(redis: aioredis.Redis) -> None:
    """Jobs a blocking read was handed are marked started as of the moment the read was
    served, not when the executor got round to marking them (its event loop was busy)."""
    await register(redis, "echo")
    queue = JobQueue(redis)
    job = make_job()
    await queue.enqueue(job)
    got = await queue.read("ex-1", ["echo"], count=10, block_ms=100)
    served = time.time()
    await asyncio.sleep(0.2)  # a busy executor
    assert await queue.start(got, "ex-1") == [False]
    state = await queue.state(job.id)
    assert state["status"] == "running"
    assert abs(float(state["started"]) - served) < 0.05, float(state["started"]) - served


async def test_a_job_is_never_started_before_it_was_queued(redis: aioredis.Redis) -> None:
    """A read's time is known to the millisecond only (its entry's idle time): the mark
    never puts ``started`` before ``queued`` (both by Redis's clock)."""
    await register(redis, "echo")
    queue = JobQueue(redis)
    for _ in range(20):
        job = make_job()
        reading = asyncio.create_task(queue.read("ex-1", ["echo"], count=1, block_ms=1000))
        await asyncio.sleep(0.002)  # the read is waiting when the job comes
        await queue.enqueue(job)
        await queue.start(await reading, "ex-1")
        state = await queue.state(job.id)
        assert float(state["started"]) >= float(state["queued"]), state


async def test_take_marks_a_reads_jobs_and_takes_those_that_came_since(
    redis: aioredis.Redis,
) -> None:
    await register(redis, "echo")
    queue = JobQueue(redis)
    first, second, third = (make_job(text=f"job {n}") for n in range(3))
    await queue.enqueue(first)
    got = await queue.read("ex-1", ["echo"], count=10, block_ms=100)
    await queue.enqueue(second)
    await queue.enqueue(third)
    await queue.cancel(third.id)
    taken = await queue.take("ex-1", ["echo"], 1, got)  # one more at most
    assert [(q.job, cancelled) for q, cancelled in taken] == [(first, False), (second, False)]
    for job in (first, second):
        assert (await queue.state(job.id))["status"] == "running"
    assert [(q.job, c) for q, c in await queue.take("ex-1", ["echo"], 5)] == [(third, True)]


async def test_read_takes_only_as_many_jobs_as_asked(redis: aioredis.Redis) -> None:
    await register(redis, "echo")
    queue = JobQueue(redis)
    for _ in range(5):
        await queue.enqueue(make_job())
    first = await queue.read("ex-1", ["echo"], count=2, block_ms=100)
    second = await queue.read("ex-1", ["echo"], count=10, block_ms=100)
    assert (len(first), len(second)) == (2, 3)


async def test_queue_full_gives_retry_after(redis: aioredis.Redis) -> None:
    await register(redis, "echo")
    queue = JobQueue(redis, max_queue=2)
    await queue.enqueue(make_job())
    await queue.enqueue(make_job())
    refused = make_job()
    with pytest.raises(QueueFullError) as info:
        await queue.enqueue(refused)
    assert info.value.status == 429
    assert await redis.exists(keys.job_state(refused.id)) == 0  # it left nothing behind
    assert info.value.headers["Retry-After"].isdigit()
    # A job taken by an executor no longer counts as waiting.
    await queue.read("ex-1", ["echo"], count=1, block_ms=100)
    await queue.enqueue(make_job())


async def test_chunks_arrive_in_order_with_usage(redis: aioredis.Redis, hub: Hub) -> None:
    sub = await hub.subscribe("job-1")
    pub = ChunkPublisher(redis, "job-1", interval=0)
    words = [f"w{i} " for i in range(50)]
    for word in words:
        pub.write(word)
        await asyncio.sleep(0)
    await pub.close("stop", Usage(3, 50))
    got = [c async for c in sub.chunks(idle_timeout=5)]
    await sub.close()
    assert "".join(c.text for c in got) == "".join(words)
    assert [c.seq for c in got] == list(range(len(got)))
    assert got[-1].finish_reason == "stop"
    assert got[-1].usage == Usage(3, 50)


async def test_fast_tokens_are_coalesced_slow_ones_are_not(redis: aioredis.Redis, hub: Hub) -> None:
    fast = ChunkPublisher(redis, "fast", interval=0.003)
    for _ in range(500):
        fast.write("x")
        await asyncio.sleep(0)
    await fast.close("stop")
    assert fast.sent < 100  # 500 tokens, far fewer messages

    slow = ChunkPublisher(redis, "slow", interval=0.003)
    for _ in range(5):
        slow.write("x")
        await asyncio.sleep(0.02)
    await slow.close("stop")
    assert slow.sent == 6  # every token on its own, then the final chunk


async def test_first_token_is_not_delayed_by_coalescing(redis: aioredis.Redis, hub: Hub) -> None:
    sub = await hub.subscribe("ttft")
    pub = ChunkPublisher(redis, "ttft", interval=0.5)
    started = time.monotonic()
    pub.write("first")
    chunks = sub.chunks(idle_timeout=5)
    first = await chunks.__anext__()
    assert first.text == "first"
    assert time.monotonic() - started < 0.1
    await pub.close("stop")
    await chunks.aclose()
    await sub.close()


async def test_another_jobs_first_token_does_not_flush_text_early(
    redis: aioredis.Redis, hub: Hub
) -> None:
    """Each job sends at most one message per interval besides its first and its last: a
    new job's first chunk goes at once, alone, not with the other jobs' pending text."""
    batcher = ChunkBatcher(redis, interval=0.5)
    old = batcher.publisher("old")
    old.write("a")  # its first chunk: sent at once
    await asyncio.sleep(0.05)
    assert old.sent == 1
    old.write("b")  # waits for the interval
    new = batcher.publisher("new")
    new.write("x")  # another job's first chunk: sent at once, without "b"
    await asyncio.sleep(0)  # the batcher takes "x"; its round is in flight
    new.write("y")  # not urgent: only the job's first text is
    await asyncio.sleep(0.1)
    assert (new.sent, old.sent) == (1, 1)
    await asyncio.sleep(0.5)
    assert (new.sent, old.sent) == (2, 2)  # the interval's round took "y" and "b"
    await asyncio.gather(old.close("stop"), new.close("stop"))
    assert batcher.messages == 6
    await batcher.stop()


async def test_a_held_publisher_sends_nothing_until_released(
    redis: aioredis.Redis, hub: Hub
) -> None:
    """A job started before Redis marked it running keeps its output (text and end) until
    the executor releases it; then it all goes, the first text at once."""
    batcher = ChunkBatcher(redis, interval=0.5)
    pub = batcher.publisher("held", held=True)
    pub.write("early ")
    pub.write("text")
    closing = asyncio.create_task(pub.close("stop"))
    await asyncio.sleep(0.1)
    assert (pub.sent, batcher.messages) == (0, 0)
    assert await redis.llen(keys.job_transcript("held")) == 0
    assert not closing.done()
    started = time.monotonic()
    pub.release()
    await asyncio.wait_for(closing, 1)
    assert time.monotonic() - started < 0.1  # urgent: not after the interval
    chunks = [Chunk.decode(raw) for raw in await redis.lrange(keys.job_transcript("held"), 0, -1)]
    assert [(c.text, c.finish_reason) for c in chunks] == [("early text", "stop")]
    await batcher.stop()


async def test_gap_is_filled_from_the_transcript(redis: aioredis.Redis, hub: Hub) -> None:
    sub = await hub.subscribe("gap")
    # Chunk 0 reaches the transcript but its pub/sub message is "lost".
    await redis.rpush(keys.job_transcript("gap"), Chunk(0, "lost ").encode())
    pub = ChunkPublisher(redis, "gap", interval=0, start_seq=1)
    pub.write("found")
    await pub.close("stop")
    got = [c async for c in sub.chunks(idle_timeout=5)]
    assert "".join(c.text for c in got) == "lost found"


async def test_unfillable_gap_is_an_error(redis: aioredis.Redis, hub: Hub) -> None:
    sub = await hub.subscribe("hole")
    await ChunkPublisher(redis, "hole", interval=0, start_seq=3).close("stop")
    with pytest.raises(JobFailedError, match="lost"):
        _ = [c async for c in sub.chunks(idle_timeout=5)]


async def test_late_reader_replays_then_follows(redis: aioredis.Redis, hub: Hub) -> None:
    pub = ChunkPublisher(redis, "late", interval=0)
    pub.write("early ")
    await asyncio.sleep(0.05)  # published before anyone listened
    sub = await hub.subscribe("late", replay=True)
    pub.write("late")
    await pub.close("stop")
    got = [c async for c in sub.chunks(idle_timeout=5)]
    assert "".join(c.text for c in got) == "early late"
    assert [c.seq for c in got] == list(range(len(got)))


async def test_reader_resumes_from_a_sequence_number(redis: aioredis.Redis, hub: Hub) -> None:
    pub = ChunkPublisher(redis, "resume", interval=0)
    for word in ("a", "b", "c"):
        pub.write(word)
        await asyncio.sleep(0.01)
    await pub.close("stop")
    sub = await hub.subscribe("resume", replay=True)
    got = [c async for c in sub.chunks(idle_timeout=5, from_seq=2)]
    assert [c.text for c in got] == ["c", ""]


async def test_a_command_batch_runs_every_write_in_one_call(redis: aioredis.Redis) -> None:
    batch = CommandBatch()
    batch.hset("b:h", "a", 1)
    batch.hset("b:h", mapping={"b": "two", "c": 3.5})
    batch.hincrby("b:n", "x", 5)
    batch.expire("b:n", 100)
    batch.lpush("b:l", "1", "2")
    batch.ltrim("b:l", 0, 0)
    batch.xadd("b:s", {"f": "v", "n": 1}, maxlen=10)
    batch.zrem("b:z", "m")
    script = redis.register_script(BATCH_SCRIPT)
    await script(args=batch.args())
    assert batch.commands == 8
    assert await redis.hgetall("b:h") == {b"a": b"1", b"b": b"two", b"c": b"3.5"}
    assert await redis.hget("b:n", "x") == b"5" and 0 < await redis.ttl("b:n") <= 100
    assert await redis.lrange("b:l", 0, -1) == [b"2"]
    [(_, fields)] = await redis.xrange("b:s")
    assert fields == {b"f": b"v", b"n": b"1"}


async def test_a_buffered_answer_leaves_in_one_message(redis: aioredis.Redis) -> None:
    """A client that does not stream waits for the whole answer: it goes as one chunk."""
    pub = ChunkPublisher(redis, "whole", interval=0, buffered=True)
    for word in ("one ", "two ", "three"):
        pub.write(word)
        await asyncio.sleep(0.005)
    await pub.close("stop", Usage(1, 3))
    raws = await redis.lrange(keys.job_transcript("whole"), 0, -1)
    assert [Chunk.decode(r) for r in raws] == [Chunk(0, "one two three", "stop", Usage(1, 3))]


async def test_transcript_is_capped_and_expires(redis: aioredis.Redis) -> None:
    pub = ChunkPublisher(redis, "cap", interval=0, transcript_ttl=100, transcript_max=3)
    for _ in range(6):
        pub.write("x")
        await asyncio.sleep(0.005)
    await pub.close("stop")
    assert await redis.llen(keys.job_transcript("cap")) == 3
    assert 0 < await redis.ttl(keys.job_transcript("cap")) <= 100


async def test_idle_stream_times_out(hub: Hub) -> None:
    sub = await hub.subscribe("silent")
    with pytest.raises(JobFailedError) as info:
        _ = [c async for c in sub.chunks(idle_timeout=0.1)]
    assert info.value.code == "timeout"


async def test_idle_timeouts_of_many_readers(redis: aioredis.Redis, hub: Hub) -> None:
    """One idle check for every reader: a reader that gets chunks outlives its first
    deadline, a silent one times out on time, and a later reader with a shorter timeout
    than the others' is not kept waiting for theirs."""
    loop = asyncio.get_running_loop()

    async def read(sub: Subscription, timeout: float) -> tuple[str, float]:
        started = loop.time()
        try:
            text = "".join([c.text async for c in sub.chunks(idle_timeout=timeout)])
        except JobFailedError as exc:
            return exc.code or "", loop.time() - started
        return text, loop.time() - started

    long = asyncio.create_task(read(await hub.subscribe("idle-long"), 5.0))
    busy = asyncio.create_task(read(await hub.subscribe("idle-busy"), 0.3))
    await asyncio.sleep(0.05)
    short = asyncio.create_task(read(await hub.subscribe("idle-short"), 0.2))
    pub = ChunkPublisher(redis, "idle-busy", interval=0)
    for _ in range(6):  # 0.6 s of chunks, 0.1 s apart: never idle for 0.3 s
        pub.write("x")
        await asyncio.sleep(0.1)
    await pub.close("stop")
    assert await busy == ("xxxxxx", pytest.approx(0.65, abs=0.25))
    code, waited = await short
    assert code == "timeout" and 0.2 <= waited < 0.5
    assert not long.done()
    long.cancel()


async def test_one_connection_serves_many_streams(redis: aioredis.Redis, hub: Hub) -> None:
    subs = [await hub.subscribe(f"many-{i}") for i in range(50)]
    clients = await redis.client_list(_type="pubsub")
    assert len(clients) == 1
    assert hub.active == 50
    for sub in subs:
        await sub.close()
    assert hub.active == 0
    for _ in range(100):  # unsubscribe confirmations arrive; nothing is left to resubscribe
        if len(hub._pubsub.channels) == 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(hub._pubsub.channels) == sorted(
        [keys.GATEWAY_CONTROL.encode(), hub.inbox.encode()]
    )


async def test_owned_jobs_come_through_the_inbox_one_message_per_round(
    redis: aioredis.Redis, hub: Hub
) -> None:
    """A job the gateway starts costs no subscription; a round's chunks of all of one
    gateway's jobs travel as one inbox message; followers still get the job's channel."""
    owned = [hub.own(f"inbox-{i}") for i in range(3)]
    assert hub.active == 3
    follower = await hub.subscribe("inbox-0", replay=True)
    spy = redis.pubsub()
    await spy.subscribe(hub.inbox)
    await spy.get_message(timeout=1)  # the subscribe confirmation
    batcher = ChunkBatcher(redis, interval=0.05)
    pubs = [batcher.publisher(f"inbox-{i}", reply_to=hub.inbox) for i in range(3)]
    for i, pub in enumerate(pubs):
        pub.write(f"first {i} ")  # each job's first chunk: urgent
    await asyncio.sleep(0.01)
    for i, pub in enumerate(pubs):
        pub.write(f"then {i}")
    await asyncio.gather(*(pub.close("stop") for pub in pubs))
    await batcher.stop()
    texts = [
        "".join([c.text async for c in sub.chunks(idle_timeout=2)]) for sub in [*owned, follower]
    ]
    assert texts == ["first 0 then 0", "first 1 then 1", "first 2 then 2", "first 0 then 0"]
    messages = []
    while (message := await spy.get_message(timeout=0.2)) is not None:
        messages.append(message["data"])
    await spy.aclose()
    assert len(messages) < 3 * 3  # rounds carry several jobs: fewer messages than chunks
    assert any(m.count(b"\n") >= 3 for m in messages)  # one message, several jobs
    for sub in [*owned, follower]:
        await sub.close()
    assert hub.active == 0


async def publish_across_a_killed_connection(
    redis: aioredis.Redis, pub: ChunkPublisher, *, reconnecting: float
) -> None:
    """Write "before ", kill the hub's pub/sub connection, write "during " while it
    reconnects (so that part is only in the transcript), wait ``reconnecting`` seconds, write
    "after" and finish."""
    pub.write("before ")
    await asyncio.sleep(0.05)
    await redis.client_kill_filter(_type="pubsub")
    pub.write("during ")
    await asyncio.sleep(reconnecting)
    pub.write("after")
    await pub.close("stop")


async def test_owned_job_resyncs_from_the_transcript_after_a_reconnect(
    redis: aioredis.Redis, hub: Hub
) -> None:
    sub = hub.own("owned-killed")
    pub = ChunkPublisher(redis, "owned-killed", interval=0, reply_to=hub.inbox)
    await publish_across_a_killed_connection(redis, pub, reconnecting=0.05)
    text = "".join([c.text async for c in sub.chunks(idle_timeout=5)])
    assert text == "before during after"


async def test_hub_recovers_after_its_connection_is_killed(redis: aioredis.Redis, hub: Hub) -> None:
    sub = await hub.subscribe("killed")
    pub = ChunkPublisher(redis, "killed", interval=0)
    await publish_across_a_killed_connection(redis, pub, reconnecting=0.3)
    got = [c async for c in sub.chunks(idle_timeout=5)]
    assert "".join(c.text for c in got) == "before during after"


async def test_one_round_trip_carries_many_jobs(redis: aioredis.Redis, hub: Hub) -> None:
    batcher = ChunkBatcher(redis, interval=0.003)
    subs = [await hub.subscribe(f"b-{i}") for i in range(20)]
    pubs = [batcher.publisher(f"b-{i}") for i in range(20)]
    for n in range(30):
        for i, pub in enumerate(pubs):
            pub.write(f"{i}:{n} ")
        await asyncio.sleep(0)
    await asyncio.gather(*(p.close("stop") for p in pubs))
    for i, sub in enumerate(subs):
        got = [c async for c in sub.chunks(idle_timeout=5)]
        assert "".join(c.text for c in got) == "".join(f"{i}:{n} " for n in range(30))
        await sub.close()
    assert batcher.messages >= 40  # every job sent its own messages...
    assert batcher.rounds < batcher.messages / 5  # ...many of them per round trip
    await batcher.stop()


async def test_enqueue_survives_a_flushed_script_cache(redis: aioredis.Redis) -> None:
    await register(redis, "echo")
    queue = JobQueue(redis)
    await queue.enqueue(make_job())
    await redis.script_flush()  # e.g. Redis restarted between two requests
    await queue.enqueue(make_job())
    assert await redis.xlen(keys.queue_stream("echo")) == 2
    await redis.script_flush()
    assert len(await queue.take("ex-1", ["echo"], 1)) == 1
    await redis.script_flush()
    got = await queue.read("ex-1", ["echo"], count=1, block_ms=100)
    assert await queue.start(got, "ex-1") == [False]


async def test_reader_of_a_job_redis_lost_gets_an_error(redis: aioredis.Redis, hub: Hub) -> None:
    await register(redis, "echo")
    job = make_job()
    sub = await hub.subscribe(job.id)
    await JobQueue(redis).enqueue(job)
    await redis.flushall()  # what a restart without persistence looks like
    await redis.client_kill_filter(_type="pubsub")
    with pytest.raises(JobFailedError) as info:
        _ = [c async for c in sub.chunks(idle_timeout=10)]
    assert info.value.code == "broker_restarted"


async def test_two_readers_of_one_job_and_one_leaves(redis: aioredis.Redis, hub: Hub) -> None:
    first = await hub.subscribe("shared")
    second = await hub.subscribe("shared", replay=True)
    assert hub.active == 2
    pub = ChunkPublisher(redis, "shared", interval=0)
    pub.write("a ")
    await asyncio.sleep(0.05)
    await second.close()  # one reader leaves; the channel stays subscribed for the other
    pub.write("b")
    await pub.close("stop")
    got = [c async for c in first.chunks(idle_timeout=5)]
    assert "".join(c.text for c in got) == "a b"
    await first.close()
    assert hub.active == 0


async def test_a_command_leaves_in_the_step_that_sends_it(
    redis: aioredis.Redis, redis_url: str
) -> None:
    """A command is written to Redis by the task that sends it, before the event loop runs
    anything else: redis-py's write under ``asyncio.wait_for`` (Python 3.11) waited for a
    task of its own, so under a burst an enqueue reached Redis a loop pass or two late."""
    await redis.ping()  # a pooled, connected connection
    sender = asyncio.create_task(redis.set("kuwa:test:sent", "1"))
    await asyncio.sleep(0)  # the sender's first step ran; nothing after it has yet
    check = sync_redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 2
        seen = check.get("kuwa:test:sent")  # the event loop stays blocked while we look
        while seen is None and time.monotonic() < deadline:
            time.sleep(0.005)
            seen = check.get("kuwa:test:sent")
    finally:
        check.close()
    await sender
    assert seen == b"1"


async def test_a_write_that_cannot_finish_times_out(redis: aioredis.Redis) -> None:
    """Writing still times out after ``socket_timeout`` (a full socket buffer whose reader
    is gone), as a redis-py ``TimeoutError`` that the client's retries know."""
    conn = await redis.connection_pool.get_connection()
    try:
        conn.socket_timeout = 0.05
        blocked = asyncio.get_running_loop().create_future()

        async def never_drains() -> None:
            await blocked

        conn._writer.drain = never_drains  # the buffer never empties
        with pytest.raises(RedisTimeoutError, match="Timeout writing"):
            await conn.send_packed_command(conn.pack_command("PING"))
        assert conn.socket_timeout == 0.05  # restored
    finally:
        await redis.connection_pool.release(conn)


async def test_cancel_and_wait_cancels_again_a_task_that_swallowed_it() -> None:
    """A loop whose cancellation was swallowed (as redis-py's pipeline now and then does)
    still ends: ``task.cancel(); await task`` would wait for it for ever."""
    swallowed = asyncio.Event()

    async def loop() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed.set()
        while True:
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop(), name="stubborn")
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, grace=0.05), 5)
    assert swallowed.is_set() and task.cancelled()


async def test_cancel_and_wait_lets_a_tasks_own_error_through() -> None:
    async def fails() -> None:
        raise RuntimeError("its own error")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="its own error"):
        await cancel_and_wait(task)


@pytest.mark.parametrize("cap", [20000, 2])  # the transcript under its cap, and a full one
async def test_a_finished_job_is_kept_only_as_long_as_a_reader_may_resume(
    redis: aioredis.Redis, cap: int
) -> None:
    """A running job's transcript and state live ``transcript_ttl``; once the job has ended
    they live ``finished_ttl`` (an hour of finished transcripts grew Redis by ~4.7 MB a
    minute at 50 streams)."""
    state = keys.job_state("kept")
    await redis.hset(state, "status", "running")
    await redis.expire(state, 3600)
    pub = ChunkPublisher(
        redis, "kept", interval=0, transcript_ttl=3600, finished_ttl=30, transcript_max=cap
    )
    for word in ("a ", "b ", "c "):
        pub.write(word)
        await asyncio.sleep(0.01)
    assert 3000 < await redis.ttl(keys.job_transcript("kept")) <= 3600  # running
    await pub.close("stop")
    assert 0 < await redis.ttl(keys.job_transcript("kept")) <= 30
    assert 0 < await redis.ttl(state) <= 30
    assert await redis.llen(keys.job_transcript("kept")) == min(cap, 4)
