"""/metrics of real processes move under load: a gateway with two workers (one scrape sums
both), the kernel and executors, each scraped over HTTP and parsed with prometheus_client."""

from __future__ import annotations

import glob
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.stack import Proc, RedisServer, Stack, free_port, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Ops:
    def __init__(self, stack: Stack, prom: Path, kernel: str, echo: str, busy: Proc) -> None:
        self.stack, self.prom = stack, prom
        self.gateway = stack.base_url
        self.kernel, self.echo, self.busy = kernel, echo, busy


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    folder = tmp_path_factory.mktemp("ops")
    server = RedisServer(folder / "redis")
    stack = Stack(folder, server)
    prom = folder / "prom"
    prom.mkdir()
    try:
        stack.token = stack.create_user()
        kernel_port, echo_port = free_port(), free_port()
        stack.spawn(
            "kernel",
            ["kernel", "start", "--metrics-port", str(kernel_port)],
            {"KUWA_QUEUE_TIMEOUT": "2"},
        )
        with ThreadPoolExecutor() as pool:  # start them side by side, each waits till ready
            started = [
                pool.submit(stack.executor, "busy", delay=0.05, concurrency=1, name="busy"),
                pool.submit(
                    stack.executor,
                    "echo",
                    concurrency=128,
                    extra=["--metrics-port", str(echo_port)],
                ),
                pool.submit(
                    stack.gateway, {"KUWA_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(prom)}
                ),
            ]
            busy = started[0].result()
            for future in started:
                future.result()
        ops = Ops(
            stack,
            prom,
            f"http://127.0.0.1:{kernel_port}/metrics",
            f"http://127.0.0.1:{echo_port}/metrics",
            busy,
        )
        wait_until(lambda: _up(ops.kernel), 15, "the kernel's metrics")
        yield ops
    finally:
        stack.stop()
        server.stop()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def scrape(url: str) -> Samples:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(r.text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a metric family appears twice"
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def chat(ops: Ops, model: str, content: str, *, stream: bool, path: str = "/v1") -> httpx.Response:
    with httpx.Client(timeout=60) as client:  # a new connection: any worker may take it
        return client.post(
            ops.gateway + path + "/chat/completions",
            headers={"Authorization": f"Bearer {ops.stack.token}"},
            json={
                "model": model,
                "stream": stream,
                "messages": [{"role": "user", "content": content}],
            },
        )


def test_chats_move_the_gateway_and_executor_metrics(ops: Ops) -> None:
    gw0, ex0 = scrape(ops.gateway + "/metrics"), scrape(ops.echo)
    assert chat(ops, "echo", "one two three", stream=True).status_code == 200
    assert chat(ops, "echo", "one two three", stream=True).status_code == 200
    assert chat(ops, "echo", "one two three", stream=False).status_code == 200
    assert chat(ops, "echo", "one two three", stream=True, path="/v1.0").status_code == 200
    gw, ex = scrape(ops.gateway + "/metrics"), scrape(ops.echo)

    def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(gw0, gw, "kuwa_gateway_chat_jobs_started_total", model="echo") == 4
    assert moved(gw0, gw, "kuwa_gateway_chat_jobs_finished_total", model="echo", status="done") == 4
    assert moved(gw0, gw, "kuwa_gateway_ttft_seconds_count", model="echo") == 4
    v1 = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
    assert moved(gw0, gw, "kuwa_gateway_http_requests_total", **v1) == 3
    v10 = v1 | {"route": "/v1.0/chat/completions"}
    assert moved(gw0, gw, "kuwa_gateway_http_requests_total", **v10) == 1
    assert value(gw, "kuwa_gateway_sse_streams_open", route="/v1/chat/completions") == 0
    assert value(gw, "kuwa_gateway_chats_open", model="echo") == 0
    # deployment figures from Redis, once in the answer however many workers there are
    assert moved(gw0, gw, "kuwa_jobs_total", model="echo") == 4
    assert value(gw, "kuwa_executors", model="echo") == 1
    assert ("kuwa_gateway_streams", frozenset()) not in gw  # per process: not with workers

    by = {"model": "echo", "backend": "debug"}
    assert moved(ex0, ex, "kuwa_executor_jobs_total", **by, status="done") == 4
    assert moved(ex0, ex, "kuwa_executor_generated_tokens_total", **by) == 12
    for histogram in ("queue_wait", "ttft", "tpot"):
        assert moved(ex0, ex, f"kuwa_executor_{histogram}_seconds_count", **by) == 4
    assert value(ex, "kuwa_executor_jobs_running", **by) == 0
    assert value(ex, "kuwa_executor_job_slots", backend="debug") == 128
    assert value(ex, "kuwa_executor_state", state="ready") == 1
    assert any(
        name == "kuwa_executor_info" and ("backend", "debug") in labels for name, labels in ex
    )
    assert value(ex, "process_resident_memory_bytes") > 0


def test_one_scrape_sums_every_worker(ops: Ops) -> None:
    """Requests on fresh connections reach both workers; each keeps its own counts in the
    multiprocess folder, and any scrape reports their sum."""

    def per_worker() -> dict[str, float]:
        counts = {}
        for path in glob.glob(str(ops.prom / "kuwa-metrics-*" / "counter_*.db")):
            total = sum(
                s.value
                for f in MultiProcessCollector.merge([path])
                for s in f.samples
                if s.name == "kuwa_gateway_http_requests_total" and s.labels["route"] == "/healthz"
            )
            counts[path] = total
        return counts

    for _ in range(200):
        with httpx.Client() as client:
            assert client.get(ops.gateway + "/healthz").status_code == 200
        if len([n for n in per_worker().values() if n]) >= 2:
            break
    workers = per_worker()
    assert len([n for n in workers.values() if n]) == 2, workers
    m = scrape(ops.gateway + "/metrics")
    healthz = value(
        m, "kuwa_gateway_http_requests_total", route="/healthz", method="GET", status="200"
    )
    assert healthz == sum(workers.values())


def test_failures_move_the_kernel_and_gateway_metrics(ops: Ops) -> None:
    """On `busy` (one slot): a long stream runs, a second request times out in the queue,
    then the executor is killed mid-answer and the kernel fails the stream."""
    k0, gw0 = scrape(ops.kernel), scrape(ops.gateway + "/metrics")
    assert value(k0, "kuwa_kernel_leader") == 1
    streamed: list[str] = []

    def long_stream() -> None:
        streamed.append(chat(ops, "busy", " ".join(["word"] * 400), stream=True).text)

    runner = threading.Thread(target=long_stream)
    runner.start()
    sse = {"route": "/v1/chat/completions"}
    wait_until(
        lambda: (
            value(scrape(ops.gateway + "/metrics"), "kuwa_gateway_sse_streams_open", **sse) == 1
        ),
        10,
        "one open stream",
    )
    waited = chat(ops, "busy", "never runs", stream=False)  # its slot is taken: times out
    assert waited.json()["error"]["code"] == "queue_timeout", waited.text
    ops.busy.popen.send_signal(signal.SIGKILL)
    runner.join(30)
    assert streamed and '"code":"executor_lost"' in streamed[0]
    # The gateway releases its client as soon as the executor's heartbeat lapses, which may
    # be before the kernel's next tick: the kernel still counts the failure, a moment later.
    wait_until(
        lambda: (
            value(
                scrape(ops.kernel),
                "kuwa_kernel_jobs_failed_total",
                model="busy",
                cause="executor_lost",
            )
            == 1
        ),
        10,
        "the kernel counted the lost job",
    )

    k, gw = scrape(ops.kernel), scrape(ops.gateway + "/metrics")
    assert value(k, "kuwa_kernel_ticks_total") > value(k0, "kuwa_kernel_ticks_total")
    assert value(k, "kuwa_kernel_jobs_failed_total", model="busy", cause="queue_timeout") == 1
    assert value(k, "kuwa_kernel_jobs_failed_total", model="busy", cause="executor_lost") == 1
    assert value(k, "kuwa_kernel_orphans_recovered_total", model="busy", outcome="failed") == 1
    for cause in ("queue_timeout", "executor_lost"):
        failed = value(gw, "kuwa_gateway_chat_jobs_failed_total", model="busy", cause=cause)
        assert (
            failed - value(gw0, "kuwa_gateway_chat_jobs_failed_total", model="busy", cause=cause)
            == 1
        )
    finished = {"model": "busy", "status": "failed"}
    assert value(gw, "kuwa_gateway_chat_jobs_finished_total", **finished) == 2
    assert value(gw, "kuwa_gateway_sse_streams_open", **sse) == 0
    assert value(gw, "kuwa_gateway_chats_open", model="busy") == 0
