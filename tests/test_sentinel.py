"""Redis Sentinel: ``KUWA_REDIS_URL=redis+sentinel://…`` and a failover under load, with real
processes (a primary, a replica, three Sentinels; a gateway, the kernel, an executor and the
RQ worker on the Sentinel URL)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from rq import Queue

from kuwa import keys, redis_url
from kuwa.broker import Hub
from kuwa.broker.connection import connect, connect_sync
from kuwa.schemas import Chunk
from kuwa.settings import Settings, SettingsError
from kuwa.web.background import QUEUE
from tests.sentinel import SERVICE, SentinelGroup
from tests.stack import Stack, wait_until


class SentinelRedis:
    """What :class:`tests.stack.Stack` needs of its Redis, through the Sentinels."""

    def __init__(self, group: SentinelGroup) -> None:
        self.group = group
        self.url = group.url()

    def client(self) -> redis.Redis:
        return connect_sync(self.url)

    def stop(self) -> None:
        self.group.stop()


# --- the URL ---------------------------------------------------------------------------------
def test_the_sentinel_url_names_sentinels_service_database_and_passwords() -> None:
    url = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/kuwa/2"
    parsed = redis_url.parse(url + "?sentinel_password=watch")
    assert parsed is not None
    assert parsed.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert (parsed.service, parsed.db, parsed.password) == ("kuwa", 2, "s3cret")
    assert (parsed.sentinel_password, parsed.ssl) == ("watch", False)
    assert redis_url.parse("rediss+sentinel://h:1/svc") == redis_url.SentinelUrl(
        (("h", 1),), "svc", ssl=True
    )
    assert redis_url.parse("redis://127.0.0.1:6379/0") is None
    assert redis_url.parse("unix:///tmp/redis.sock") is None
    assert (
        redis_url.redact(url) == "redis+sentinel://***@10.0.0.1:26379,10.0.0.2,[::1]:26380/kuwa/2"
    )
    for bad, why in (
        ("redis+sentinel://h:1", "names no service"),
        ("redis+sentinel://h:1/svc/x", "not a number"),
        ("redis+sentinel://h:port/svc", "not a Sentinel address"),
        ("redis+sentinel://h:1/svc?timeout=1", "unknown option"),
        ("http://h:1/0", "not a Redis URL"),
    ):
        with pytest.raises(ValueError, match=why):
            redis_url.parse(bad)
        with pytest.raises(SettingsError, match="redis_url"):
            Settings.from_env({"KUWA_REDIS_URL": bad})


@pytest.mark.anyio
async def test_clients_follow_the_primary_through_a_failover(tmp_path: Path) -> None:
    """The asyncio and blocking clients and the gateway's pub/sub hub reach whichever server
    the Sentinels name: after the primary's ``kill -9`` they work on the promoted replica."""
    group = SentinelGroup(tmp_path)
    client = connect(group.url())
    blocking = connect_sync(group.url(db=1))
    hub = Hub(client)
    await hub.start()
    try:
        await client.hset(keys.job_state("j"), "status", "running")
        assert blocking.set("before", "1")
        assert await client.wait(1, 5000) == 1  # on the replica too
        sub = await hub.subscribe("j")
        assert group.primary_port() == group.primary.port
        group.primary.kill()
        started = time.monotonic()
        while True:
            try:
                await client.set("after", "2")
                break
            except redis.RedisError:
                assert time.monotonic() - started < 20, "no new primary within 20 s"
                await asyncio.sleep(0.1)
        assert group.primary_port() == group.replica.port
        assert await client.get("after") == b"2"
        assert blocking.get("before") == b"1" and blocking.set("after", "2")
        # The hub subscribes again on the new primary by itself (it retries within 2 s).
        chunk = Chunk(0, "hello", finish_reason="stop")
        await client.rpush(keys.job_transcript("j"), chunk.encode())

        async def publish() -> None:
            while True:
                await client.publish(keys.job_channel("j"), chunk.encode())
                await asyncio.sleep(0.2)

        publishing = asyncio.create_task(publish())
        try:
            got = [c async for c in sub.chunks(idle_timeout=10)]
        finally:
            publishing.cancel()
        assert [(c.seq, c.text) for c in got] == [(0, "hello")]
        await sub.close()
    finally:
        await hub.stop()
        await client.aclose()
        blocking.close()
        group.stop()


# --- a failover under load --------------------------------------------------------------------
FAST: dict[str, str] = {}  # the shipped heartbeat: every 1 s, dead after 3 s


def test_kill_9_the_primary_under_load_every_process_follows(tmp_path: Path) -> None:
    """Streams run (``/v1`` and ``/v1.0``) and short requests keep coming when the primary
    is killed with SIGKILL. The Sentinels promote the replica; every Kuwa process follows it
    without a restart; requests succeed again within 20 s; every answer in flight ends with
    an explicit error event or finishes, none hangs; no process exits; the RQ worker runs a
    job on the new primary."""
    group = SentinelGroup(tmp_path / "sentinel")
    stack = Stack(tmp_path, SentinelRedis(group))  # type: ignore[arg-type]
    try:
        stack.token = stack.create_user()
        stack.spawn("kernel", ["kernel", "start"], FAST)
        stack.spawn("worker", ["worker", "start"], FAST)
        stack.executor("m", delay=0.05, concurrency=16, name="ex", env=FAST)
        base = stack.gateway(FAST)
        headers = {"Authorization": f"Bearer {stack.token}"}
        paths = ["/v1/chat/completions"] * 3 + ["/v1.0/chat/completions"] * 3
        prompt = " ".join(["word"] * 200)  # 10 s of answer at 50 ms a token
        endings: dict[int, str] = {}
        ended_at: dict[int, float] = {}
        streaming = [asyncio.Event() for _ in paths]
        answered: list[tuple[float, int]] = []  # (when, status) of the short requests
        stop_asking = asyncio.Event()

        async def stream(client: httpx.AsyncClient, i: int) -> None:
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": prompt}]}
            async with client.stream("POST", base + paths[i], json=body, headers=headers) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith('data: {"error"'):
                        endings[i] = json.loads(line[len("data: ") :])["error"]["code"]
                        ended_at[i] = time.monotonic()
                    elif '"content":"w' in line:
                        streaming[i].set()
                    elif line in ("data: [DONE]", "event: close"):
                        endings.setdefault(i, "finished")
                        ended_at.setdefault(i, time.monotonic())

        async def ask(client: httpx.AsyncClient) -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": "ok"}]}
            while not stop_asking.is_set():
                try:
                    r = await client.post(base + "/v1/chat/completions", json=body, headers=headers)
                    good = r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
                    answered.append((time.monotonic(), 200 if good == "ok" else r.status_code))
                except httpx.HTTPError:
                    answered.append((time.monotonic(), 0))
                await asyncio.sleep(0.1)

        async def scenario() -> tuple[float, float]:
            limits = httpx.Limits(max_connections=20)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                streams = [asyncio.create_task(stream(client, i)) for i in range(len(paths))]
                asker = asyncio.create_task(ask(client))
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in streaming)), 20)
                await asyncio.sleep(0.5)
                group.primary.kill()
                killed = time.monotonic()
                promoted = await asyncio.to_thread(group.wait_promoted, 30)
                await asyncio.wait_for(asyncio.gather(*streams), 60)  # none hangs
                while not [t for t, s in answered if t > killed + promoted and s == 200]:
                    assert time.monotonic() - killed < 30, answered[-5:]
                    await asyncio.sleep(0.1)
                stop_asking.set()
                await asker
                return killed, promoted

        killed, promoted = asyncio.run(scenario())
        good_after = [t - killed for t, s in answered if t > killed and s == 200]
        recovered = good_after[0]
        print(
            f"FAULT sentinel failover: replica promoted {promoted:.2f} s after the primary's "
            f"kill -9; first good answer {recovered:.2f} s after it; streams in flight ended "
            f"{min(ended_at.values()) - killed:.2f}-{max(ended_at.values()) - killed:.2f} s "
            f"after it: {', '.join(sorted(endings.values()))}; answers to the requests sent "
            f"meanwhile: {sorted(s for t, s in answered if killed < t < killed + recovered)}"
        )
        assert recovered < 20
        assert sorted(endings) == list(range(len(paths))), endings  # each ended explicitly
        # Everything works on the new primary: a stream, and a background job on the worker.
        r = httpx.post(
            base + "/v1/chat/completions",
            headers=headers,
            json={"model": "m", "messages": [{"role": "user", "content": "after"}]},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "after"
        with connect_sync(group.url()) as client:
            job = Queue(QUEUE, connection=client).enqueue("builtins.len", [1, 2, 3])
            wait_until(lambda: job.get_status(refresh=True) == "finished", 30, "the RQ job")
            assert job.return_value() == 3
        for proc in stack.procs:
            assert proc.popen.poll() is None, f"{proc.name} exited:\n{proc.text()[-3000:]}"
        # A CLI command on the Sentinel URL reads the new primary too.
        listed = subprocess.run(
            [sys.executable, "-m", "kuwa", "executor", "list", "--json"],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert [e["access_codes"] for e in json.loads(listed.stdout)] == [["m"]]
        assert group.primary_port() == group.replica.port
        assert SERVICE in group.url()
    finally:
        stack.stop()
        group.stop()


def test_a_process_started_with_a_bad_sentinel_url_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUWA_")}
    env |= {"KUWA_REDIS_URL": "redis+sentinel://127.0.0.1:1", "KUWA_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "kuwa", "kernel", "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "names no service" in done.stderr
