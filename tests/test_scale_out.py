"""Scale-out with real processes: 2 gateways, 2 kernels, 3 executors over 2 access codes.

Everything runs as separate processes on this machine, all on one private Redis:

* ``alpha`` (answers in upper case) is served by two executors, ``alpha-1`` and ``alpha-2``;
  ``beta`` (answers reversed) by ``beta-1``. Each answer names its model by its shape, and the
  job's state in Redis names the executor that ran it.
* ``alpha-2`` runs in its own network namespace and reaches Redis over a veth link (Redis
  listens on the link's host address too), so nothing may assume localhost — where the machine
  allows network namespaces; elsewhere it runs on the host and the reason is printed.

The scenario, in order: traffic through both gateways; SIGKILL of a gateway mid-stream; SIGKILL
of the leader kernel; SIGKILL of an executor mid-answer (recovered by the new leader). Every
wait polls for a condition; no sleep stands in for synchronisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from kuwa import keys
from kuwa.kernel.kernel import LEASE_MS
from tests import netns
from tests.stack import Proc, RedisServer, Stack, wait_until

HEARTBEAT_TTL = 1.5  # an executor is dead 1.5 s after its last heartbeat (every 0.5 s)
KERNEL_TICK = 1.0  # the kernel's interval (kuwa.kernel.Kernel's default)
ENV = {
    "KUWA_HEARTBEAT_TTL": str(HEARTBEAT_TTL),
    "KUWA_DRAIN_TIMEOUT": "5",
    "KUWA_USER_MAX_JOBS": "64",  # running-job claims are kept (and must be freed)
}
READY = 90  # seconds a process may take to start on a loaded machine (imports dominate)
DELAY = 0.02  # seconds per token of the debug executors
LONG = 100  # tokens of a long answer: 2 s at DELAY, so it is mid-stream when something dies
SHAPE: dict[str, Callable[[str], str]] = {"alpha": str.upper, "beta": lambda s: s[::-1]}
SERVES = {"alpha": {"alpha-1", "alpha-2"}, "beta": {"beta-1"}}


@dataclass
class Reply:
    """One streamed request as its client saw it."""

    gateway: str
    model: str
    prompt: str
    job: str = ""
    text: str = ""
    models: set[str] = field(default_factory=set)
    error: dict[str, str] | None = None
    done: bool = False  # the stream ended with data: [DONE]
    raised: BaseException | None = None  # the client's transport error, if any
    ended_at: float = 0.0
    started: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def expected(self) -> str:
        return SHAPE[self.model](self.prompt)

    def answered_right(self) -> bool:
        return (
            self.done
            and self.error is None
            and self.raised is None
            and self.text == self.expected
            and self.models == {self.model}
        )


@dataclass
class Cluster:
    stack: Stack
    redis: redis.Redis
    token: str
    gateways: list[str]
    kernels: list[Proc]
    executors: dict[str, Proc]
    killed: set[str] = field(default_factory=set)  # names of the processes killed on purpose

    def executor_of(self, job: str) -> str:
        raw = self.redis.hget(keys.job_state(job), "executor")
        return raw.decode() if isinstance(raw, bytes) else ""

    def status_of(self, job: str) -> str:
        raw = self.redis.hget(keys.job_state(job), "status")
        return raw.decode() if isinstance(raw, bytes) else ""

    def queues_idle(self) -> bool:
        """Nothing waiting, nothing taken-and-unacknowledged, nothing backlogged."""
        for code in SHAPE:
            stream = keys.queue_stream(code)
            pending = self.redis.xpending(stream, keys.CONSUMER_GROUP)["pending"]
            backlogged = int(self.redis.get(keys.queue_backlogged(code)) or 0)
            if self.redis.xlen(stream) or pending or backlogged:
                return False
        return True

    def slots_in_use(self) -> int:
        """Jobs the live executors run, as their latest heartbeats say."""
        return sum(
            json.loads(self.redis.hget(keys.EXECUTOR_INFO, name) or b"{}").get("used", 0)
            for name, proc in self.executors.items()
            if proc.name not in self.killed
        )

    def claims(self) -> list[bytes]:
        """The running-job claims users hold (their jobs count against user_max_jobs)."""
        return [
            j
            for k in self.redis.scan_iter(keys.user_jobs("*"))
            for j in self.redis.zrange(k, 0, -1)
        ]


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """``wait_until`` for coroutines: poll without blocking the streams being read."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def chat(client: httpx.AsyncClient, base: str, token: str, reply: Reply) -> Reply:
    """Stream one OpenAI chat completion, recording what arrived (never raises)."""
    body = {
        "model": reply.model,
        "stream": True,
        "messages": [{"role": "user", "content": reply.prompt}],
    }
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with client.stream(
            "POST", base + "/v1/chat/completions", json=body, headers=headers
        ) as r:
            if r.status_code != 200:
                reply.error = {"message": (await r.aread()).decode(), "code": str(r.status_code)}
                return reply
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    reply.done = True
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    reply.error = event["error"]
                    continue
                reply.job = event["id"]
                reply.models.add(event["model"])
                if event["choices"] and event["choices"][0]["delta"].get("content"):
                    reply.text += event["choices"][0]["delta"]["content"]
                    reply.started.set()
    except httpx.TransportError as exc:
        reply.raised = exc
    finally:
        reply.ended_at = time.monotonic()
    return reply


def long_prompt(label: str) -> str:
    return label + " " + " ".join(["tok"] * (LONG - 1))


def start_cluster(stack: Stack, server: RedisServer, ns: netns.Namespace | None) -> Cluster:
    """Everything at once; back when all are live and one kernel leads, the other stands by
    (``Cluster.kernels``: the leader first)."""
    r = server.client()
    token = stack.create_user()
    kernels = [stack.spawn(f"kernel-{i}", ["kernel", "start"], ENV) for i in (1, 2)]

    def executor(code: str, name: str, transform: str, slots: int, remote: bool = False) -> Proc:
        env, prefix = ENV, None
        if remote and ns is not None:  # Redis at the veth link's host end, not 127.0.0.1
            env, prefix = ENV | {"KUWA_REDIS_URL": server.url_at(ns.host_ip)}, ns.prefix()
        return stack.executor(
            code,
            delay=DELAY,
            concurrency=slots,
            transform=transform,
            name=name,
            env=env,
            prefix=prefix,
            ready_timeout=READY,
        )

    with ThreadPoolExecutor(5) as pool:
        gateways = [pool.submit(stack.gateway, ENV, READY) for _ in range(2)]
        executors = {
            "alpha-1": pool.submit(executor, "alpha", "alpha-1", "upper", 4),
            "alpha-2": pool.submit(executor, "alpha", "alpha-2", "upper", 4, True),
            "beta-1": pool.submit(executor, "beta", "beta-1", "reverse", 8),
        }
        cluster = Cluster(
            stack,
            r,
            token,
            [g.result() for g in gateways],
            kernels,
            {name: f.result() for name, f in executors.items()},
        )

    def all_live() -> bool:  # each by name: stack.executor only waits for its access code
        now = time.time()
        return all(
            (r.zscore(keys.queue_executors(code), name) or 0) > now
            for code, names in SERVES.items()
            for name in names
        )

    wait_until(all_live, READY, "all three executors")
    wait_until(lambda: r.get(keys.KERNEL_LEADER) is not None, READY, "a leader kernel")
    leader = r.get(keys.KERNEL_LEADER) or b""
    kernels.sort(key=lambda k: f"-{k.popen.pid}-".encode() not in leader)
    wait_until(lambda: "a standby" in kernels[1].text(), READY, "the standby kernel")
    if ns is not None:  # alpha-2 is in there, where 127.0.0.1 is not the host's
        assert cluster.executors["alpha-2"].popen.pid in ns.pids()
        assert not ns.reaches("127.0.0.1", server.port)
        assert ns.reaches(ns.host_ip, server.port)
    return cluster


async def traffic(c: Cluster) -> None:
    """Many concurrent streams through both gateways: each answered by the right model, and
    alpha's two executors (4 slots each, 28 jobs at once) both take part."""
    replies = [
        Reply(c.gateways[i % 2], "beta" if i % 3 == 2 else "alpha", f"request {i} of the test")
        for i in range(42)
    ]
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
        await asyncio.gather(*(chat(client, r.gateway, c.token, r) for r in replies))
    wrong = [r for r in replies if not r.answered_right()]
    assert not wrong, [(r.model, r.gateway, r.error, r.done, r.raised) for r in wrong[:3]]
    served: dict[str, int] = {}
    for r in replies:
        executor = c.executor_of(r.job)
        assert executor in SERVES[r.model], (r.job, r.model, executor)
        served[executor] = served.get(executor, 0) + 1
    assert set(served) == {"alpha-1", "alpha-2", "beta-1"}, served
    assert {r.gateway for r in replies} == set(c.gateways)
    print(f"SCALE-OUT traffic: 42 streams over 2 gateways, jobs per executor {served}")


async def kill_gateway(c: Cluster) -> None:
    """SIGKILL a gateway while 4 of its streams and 4 of the other's are mid-answer."""
    doomed, survivor = c.gateways
    victim = next(p for p in c.stack.procs if p.name == f"gateway-{doomed.rsplit(':', 1)[1]}")
    replies = [
        Reply(base, model, long_prompt(f"{model} {i} via {base}"))
        for base in (doomed, survivor)
        for i, model in enumerate(["alpha", "alpha", "beta", "beta"])
    ]
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
        tasks = [asyncio.create_task(chat(client, r.gateway, c.token, r)) for r in replies]
        await asyncio.wait_for(asyncio.gather(*(r.started.wait() for r in replies)), 20)
        victim.popen.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        c.killed.add(victim.name)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)  # nobody hangs
    cut, kept = replies[:4], replies[4:]
    for r in cut:  # a clean disconnect: the client raises, it does not wait
        assert isinstance(r.raised, httpx.RemoteProtocolError | httpx.ReadError), r
        assert not r.done and r.text and r.ended_at - killed < 5, r
    assert all(r.answered_right() for r in kept), [r for r in kept if not r.answered_right()]
    # The dead gateway's jobs run to their end on the executors and leave the queues clean.
    await until(
        lambda: all(c.status_of(r.job) == "done" for r in cut), 20, "the cut-off jobs to end"
    )
    await until(c.queues_idle, 10, "idle queues")
    # Nor do they hold the user's running-job claims (which would lock them out at the limit).
    await until(lambda: not c.claims(), 5, "the dead gateway's claims to be freed")
    await until(lambda: c.slots_in_use() == 0, 10, "every executor slot to be free")
    # The survivor serves on.
    more = [
        Reply(survivor, model, f"after the gateway died {i}")
        for i, model in enumerate(["alpha"] * 8 + ["beta"] * 8)
    ]
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
        await asyncio.gather(*(chat(client, survivor, c.token, r) for r in more))
    assert all(r.answered_right() for r in more), [r for r in more if not r.answered_right()]
    print(
        "SCALE-OUT gateway kill -9: its clients disconnected "
        f"{max(r.ended_at for r in cut) - killed:.2f} s after; the other served on"
    )
    c.gateways = [survivor]


def kill_leader_kernel(c: Cluster) -> None:
    """SIGKILL the leader; the standby holds the lease within the lease time plus a tick."""
    leader, standby = c.kernels
    old = c.redis.get(keys.KERNEL_LEADER)
    assert old is not None and f"-{leader.popen.pid}-".encode() in old
    leader.popen.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    c.killed.add(leader.name)
    wait_until(lambda: c.redis.get(keys.KERNEL_LEADER) not in (None, old), 15, "a new leader")
    took = time.monotonic() - killed
    new = c.redis.get(keys.KERNEL_LEADER)
    assert new is not None and f"-{standby.popen.pid}-".encode() in new
    wait_until(lambda: "the leader" in standby.text(), 5, "the standby's log")
    print(f"SCALE-OUT leader kernel kill -9: the standby leads {took:.2f} s after")
    assert took < LEASE_MS / 1000 + 2 * KERNEL_TICK, took
    c.kernels = [standby]


async def kill_executor(c: Cluster) -> None:
    """SIGKILL alpha-1 with 4 answers streaming on it and 4 on alpha-2 (4 more wait).

    Per the design: the new leader kernel ends the streams that alpha-1 had begun with an
    explicit ``executor_lost`` error (a reader that saw half an answer is not given another
    one), every other job is answered by alpha-2, and alpha stays served."""
    (base,) = c.gateways
    victim = c.executors["alpha-1"]
    replies = [Reply(base, "alpha", long_prompt(f"alpha {i}")) for i in range(12)]
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
        tasks = [asyncio.create_task(chat(client, base, c.token, r)) for r in replies]

        def streaming_on(executor: str) -> set[str]:
            return {
                r.job
                for r in replies
                if r.started.is_set() and not r.ended_at and c.executor_of(r.job) == executor
            }

        await until(lambda: len(streaming_on("alpha-1")) == 4, 20, "4 answers on alpha-1")
        on_victim = streaming_on("alpha-1")
        victim.popen.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        c.killed.add(victim.name)
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
    lost = [r for r in replies if r.job in on_victim]
    others = [r for r in replies if r.job not in on_victim]
    for r in lost:
        assert r.error is not None and r.error["code"] == "executor_lost", r
        assert "stopped in the middle" in r.error["message"], r
        assert r.done and r.raised is None and r.text and r.expected.startswith(r.text), r
        assert c.status_of(r.job) == "failed"
    assert all(r.answered_right() for r in others), [r for r in others if not r.answered_right()]
    assert {c.executor_of(r.job) for r in others} == {"alpha-2"}
    (kernel,) = c.kernels
    wait_until(lambda: kernel.text().count("of dead executor alpha-1") >= 4, 5, "the recovery")
    errors_after = max(r.ended_at for r in lost) - killed
    print(f"SCALE-OUT executor kill -9: its 4 readers got executor_lost {errors_after:.2f} s after")
    assert errors_after < HEARTBEAT_TTL + 2 * KERNEL_TICK + 2.0, errors_after
    await until(c.queues_idle, 10, "idle queues")
    # alpha lives on alpha-2 alone (the one across the veth link where there is one).
    after = [
        Reply(base, model, f"after the executor died {i}")
        for i, model in enumerate(["alpha", "beta"] * 6)
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(chat(client, base, c.token, r) for r in after))
    assert all(r.answered_right() for r in after), [r for r in after if not r.answered_right()]
    assert {c.executor_of(r.job) for r in after if r.model == "alpha"} == {"alpha-2"}
    await until(lambda: not c.claims(), 5, "the claims to be freed")


@pytest.mark.slow
def test_two_gateways_two_kernels_three_executors(tmp_path: Path) -> None:
    started = time.monotonic()
    why_not = netns.unavailable()
    with contextlib.ExitStack() as cleanup:
        ns = None if why_not else cleanup.enter_context(netns.veth_namespace())
        binds = ("127.0.0.1", ns.host_ip) if ns else ("127.0.0.1",)
        server = RedisServer(tmp_path / "redis", binds)
        cleanup.callback(server.stop)
        stack = Stack(tmp_path, server)
        cleanup.callback(stack.stop)
        print(
            f"SCALE-OUT alpha-2 runs in network namespace {ns.name}, Redis at {ns.host_ip}"
            if ns
            else f"SCALE-OUT alpha-2 runs on the host: {why_not}"
        )
        c = start_cluster(stack, server, ns)
        cleanup.callback(c.redis.close)
        print(f"SCALE-OUT 7 processes up {time.monotonic() - started:.2f} s after the start")
        asyncio.run(traffic(c))
        asyncio.run(kill_gateway(c))
        kill_leader_kernel(c)
        asyncio.run(kill_executor(c))
        assert len(c.killed) == 3
        for proc in stack.procs:
            if proc.name not in c.killed:
                assert proc.popen.poll() is None, f"{proc.name} exited:\n{proc.text()[-2000:]}"
    print(f"SCALE-OUT whole test {time.monotonic() - started:.2f} s")


def test_network_namespaces_are_available() -> None:
    """Reports (as a skip with the reason) when the scale-out test ran alpha-2 on the host."""
    why_not = netns.unavailable()
    if why_not:
        pytest.skip(why_not)
