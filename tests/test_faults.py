"""Faults with real processes: an executor killed mid-answer (with and without a kernel), the
leader kernel killed, Redis restarted."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
from rq import Queue

from kuwa import keys
from kuwa.broker.watch import MID_ANSWER
from kuwa.web.background import QUEUE
from tests.stack import RedisServer, Stack, wait_until

FAST_HEARTBEAT = {"KUWA_HEARTBEAT_TTL": "1.5"}
DEFAULTS: dict[str, str] = {}  # the shipped heartbeat: every 1 s, dead after 3 s


def test_kill_9_executor_with_streams_running_and_waiting(tmp_path: Path) -> None:
    """20 streams run on an executor and 20 wait; it is killed with SIGKILL.

    The waiting jobs finish on a second executor; the running ones get an error event within
    5 s; no client hangs; nothing stays pending in Redis."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        stack.token = stack.create_user()
        stack.spawn("kernel", ["kernel", "start"], DEFAULTS)
        victim = stack.executor("m", delay=0.05, concurrency=20, name="victim", env=DEFAULTS)
        base = stack.gateway(DEFAULTS)
        redis = server.client()
        prompt = " ".join(["word"] * 400)  # 20 s of answer at 50 ms a token
        outcome: dict[int, str] = {}
        first_chunks = asyncio.Event()
        killed_at = 0.0
        errors_at: list[float] = []

        async def one(client: httpx.AsyncClient, i: int, started: list[int]) -> None:
            body = {
                "model": "m",
                "stream": True,
                "messages": [{"role": "user", "content": prompt if i < 20 else f"short {i}"}],
            }
            async with client.stream(
                "POST",
                base + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {stack.token}"},
            ) as r:
                text = ""
                async for line in r.aiter_lines():
                    if line.startswith('data: {"error"'):
                        outcome[i] = "error"
                        errors_at.append(time.monotonic())
                    elif '"content":"' in line and i < 20 and i not in started:
                        started.append(i)
                        if len(started) == 20:
                            first_chunks.set()
                    elif line == "data: [DONE]":
                        outcome.setdefault(i, "done")
                    text += line

        async def scenario() -> None:
            nonlocal killed_at
            started: list[int] = []
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                tasks = [asyncio.create_task(one(client, i, started)) for i in range(20)]
                await asyncio.wait_for(first_chunks.wait(), 20)
                tasks += [asyncio.create_task(one(client, i, started)) for i in range(20, 40)]
                await asyncio.sleep(0.5)  # the 20 short ones wait in the queue
                in_line = redis.xlen(keys.queue_stream("m"))
                assert in_line + int(redis.get(keys.queue_backlogged("m")) or 0) == 40
                victim.popen.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                stack.executor("m", concurrency=20, name="backup", env=DEFAULTS)
                await asyncio.wait_for(asyncio.gather(*tasks), 30)

        asyncio.run(scenario())
        assert {outcome[i] for i in range(20)} == {"error"}
        assert {outcome[i] for i in range(20, 40)} == {"done"}
        print(
            f"FAULT executor kill -9: error events {min(errors_at) - killed_at:.2f}"
            f"-{max(errors_at) - killed_at:.2f} s after the kill"
        )
        assert max(errors_at) - killed_at < 5.0
        wait_until(lambda: redis.xlen(keys.queue_stream("m")) == 0, 5, "an empty queue")
        assert int(redis.get(keys.queue_backlogged("m")) or 0) == 0
        assert redis.xpending(keys.queue_stream("m"), keys.CONSUMER_GROUP)["pending"] == 0
        redis.close()
    finally:
        stack.stop()
        server.stop()


def test_kill_9_executor_without_kernel_releases_every_stream(tmp_path: Path) -> None:
    """No kernel runs (one ``kuwa-cli up`` whose kernel died): 10 answers stream from an
    executor that is killed with SIGKILL. The gateway's own watch ends every stream with an
    explicit ``executor_lost`` error event within 5 s, on /v1 (then ``[DONE]``) and on /v1.0
    (then ``event: close``), instead of the 300 s idle timeout."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        stack.token = stack.create_user()
        victim = stack.executor("m", delay=0.05, concurrency=10, name="victim", env=DEFAULTS)
        base = stack.gateway(DEFAULTS)
        redis = server.client()
        assert redis.get(keys.KERNEL_LEADER) is None
        prompt = " ".join(["word"] * 400)  # 20 s of answer at 50 ms a token
        paths = ["/v1/chat/completions"] * 7 + ["/v1.0/chat/completions"] * 3
        streaming = [asyncio.Event() for _ in paths]
        errors: dict[int, tuple[float, dict[str, object]]] = {}
        endings: dict[int, str] = {}

        async def one(client: httpx.AsyncClient, i: int) -> None:
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": prompt}]}
            headers = {"Authorization": f"Bearer {stack.token}"}
            async with client.stream("POST", base + paths[i], json=body, headers=headers) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith('data: {"error"'):
                        errors[i] = (time.monotonic(), json.loads(line[len("data: ") :]))
                    elif '"content":"w' in line:  # a word of the answer, not the role event
                        streaming[i].set()
                    if line in ("data: [DONE]", "event: close"):
                        endings[i] = line

        async def scenario() -> float:
            limits = httpx.Limits(max_connections=20)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                tasks = [asyncio.create_task(one(client, i)) for i in range(len(paths))]
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in streaming)), 20)
                victim.popen.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                await asyncio.wait_for(asyncio.gather(*tasks), 30)  # no client hangs
                return killed_at

        killed_at = asyncio.run(scenario())
        expected = {
            "error": {
                "message": MID_ANSWER,
                "type": "server_error",
                "param": None,
                "code": "executor_lost",
            }
        }
        assert sorted(errors) == list(range(len(paths)))
        assert all(body == expected for _, body in errors.values()), errors
        assert endings == {
            i: "data: [DONE]" if "/v1/" in path else "event: close" for i, path in enumerate(paths)
        }
        after = [at - killed_at for at, _ in errors.values()]
        print(
            f"FAULT executor kill -9, no kernel: error events {min(after):.2f}-{max(after):.2f} s"
            " after the kill"
        )
        assert max(after) < 5.0
        redis.close()
    finally:
        stack.stop()
        server.stop()


def test_kill_9_executor_before_first_token_kernel_hands_job_on(tmp_path: Path) -> None:
    """A job its executor had started but streamed nothing of is the kernel's to hand out
    again: the gateway's watch leaves its client waiting, and another executor answers it."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        stack.token = stack.create_user()
        stack.spawn("kernel", ["kernel", "start"], DEFAULTS)
        victim = stack.executor("m", delay=60, name="victim", env=DEFAULTS)  # never gets far
        base = stack.gateway(DEFAULTS)
        redis = server.client()
        wait_until(lambda: redis.get(keys.KERNEL_LEADER) is not None, 15, "a leader kernel")
        result: dict[str, object] = {}

        def ask() -> None:
            r = httpx.post(
                base + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {stack.token}"},
                json={"model": "m", "messages": [{"role": "user", "content": "handed on"}]},
                timeout=60,
            )
            result["status"], result["body"] = r.status_code, r.json()

        async def scenario() -> None:
            asking = asyncio.create_task(asyncio.to_thread(ask))

            def taken() -> bool:
                return bool(redis.xpending(keys.queue_stream("m"), keys.CONSUMER_GROUP)["pending"])

            await asyncio.to_thread(wait_until, taken, 15, "the victim to take the job")
            await asyncio.to_thread(stack.executor, "m", name="backup", env=DEFAULTS)
            victim.popen.send_signal(signal.SIGKILL)
            await asyncio.wait_for(asking, 30)

        asyncio.run(scenario())
        assert result["status"] == 200, result
        body = result["body"]
        assert isinstance(body, dict)
        assert body["choices"][0]["message"]["content"] == "handed on"
        redis.close()
    finally:
        stack.stop()
        server.stop()


def test_kill_9_leader_kernel_standby_takes_over(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        redis = server.client()
        first = stack.spawn("kernel-a", ["kernel", "start"])
        wait_until(lambda: redis.get(keys.KERNEL_LEADER) is not None, 10, "a leader")
        leader = redis.get(keys.KERNEL_LEADER)
        second = stack.spawn("kernel-b", ["kernel", "start"])
        wait_until(lambda: "a standby" in second.text(), 10, "the standby")
        assert redis.get(keys.KERNEL_LEADER) == leader
        first.popen.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: redis.get(keys.KERNEL_LEADER) not in (None, leader), 10, "takeover")
        print(f"FAULT kernel kill -9: standby leads {time.monotonic() - killed:.2f} s after")
        assert time.monotonic() - killed < 5.0
        assert "the leader" in second.text()
        redis.close()
    finally:
        stack.stop()
        server.stop()


def test_redis_restart_mid_run(tmp_path: Path) -> None:
    """Redis restarts (losing everything): in-flight streams end with a clear error, every
    process reconnects by itself, and new requests succeed within seconds."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        stack.token = stack.create_user()
        stack.spawn("kernel", ["kernel", "start"], FAST_HEARTBEAT)
        worker = stack.spawn("worker", ["worker", "start"], FAST_HEARTBEAT)
        stack.executor("m", delay=0.05, name="ex", env=FAST_HEARTBEAT)
        base = stack.gateway(FAST_HEARTBEAT)
        headers = {"Authorization": f"Bearer {stack.token}"}
        lines: list[str] = []

        def stream() -> None:
            body = {
                "model": "m",
                "stream": True,
                "messages": [{"role": "user", "content": " ".join(["w"] * 200)}],
            }
            with httpx.stream(
                "POST", base + "/v1/chat/completions", json=body, headers=headers, timeout=60
            ) as r:
                for line in r.iter_lines():
                    lines.append(line)
                    if len(lines) == 3:
                        server.restart()

        started = time.monotonic()
        stream()
        assert time.monotonic() - started < 20  # no hang
        events = [line for line in lines if line]
        errors = [line for line in events if line.startswith('data: {"error"')]
        assert errors, events[-3:]
        assert "Redis" in errors[0] or "lost" in errors[0], errors[0]
        assert events[-1] == "data: [DONE]"

        def answered() -> bool:
            try:
                r = httpx.post(
                    base + "/v1/chat/completions",
                    headers=headers,
                    timeout=10,
                    json={"model": "m", "messages": [{"role": "user", "content": "ok"}]},
                )
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok"

        recovered_from = time.monotonic()
        wait_until(answered, 20, "a request after the restart")
        print(
            f"FAULT redis restart: first good answer {time.monotonic() - recovered_from:.2f} s"
            f" after the stream ended ({time.monotonic() - started:.2f} s after it began)"
        )
        assert time.monotonic() - recovered_from < 10
        for proc in stack.procs:
            assert proc.popen.poll() is None, f"{proc.name} exited:\n{proc.text()[-2000:]}"
        # The RQ worker runs jobs on the restarted Redis, and still stops on SIGTERM.
        with server.client() as client:
            job = Queue(QUEUE, connection=client).enqueue("builtins.len", [1, 2, 3])
            wait_until(lambda: job.get_status(refresh=True) == "finished", 30, "the RQ job")
        started = time.monotonic()
        assert worker.stop(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        stack.stop()
        server.stop()
