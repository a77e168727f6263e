"""GET /metrics: queue depth, waiting time, executors and a scaling hint, in Prometheus text;
the kernel's and executors' metrics server; the docs and the Grafana dashboard name only
metrics that exist."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from kuwa.broker import ExecutorInfo
from kuwa.broker.stats import QueueStats, Snapshot
from kuwa.executors import metrics as executor_metrics
from kuwa.gateway import instrument
from kuwa.gateway import metrics as gateway_metrics
from kuwa.gateway.metrics import deployment_families
from kuwa.kernel import metrics as kernel_metrics
from kuwa.metrics_server import MetricsServer, serve_metrics
from tests.stack import Stack, wait_until


def scrape(stack: Stack, **headers: str) -> dict[tuple[str, str], float]:
    r = httpx.get(stack.base_url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, sample.labels.get("model", ""))] = sample.value
    return out


PROMPT = " ".join("abcdefghijklmnopqrstuvwx")  # 24 tokens: 1.2 s on `slow`, time to look


def test_queue_figures_while_jobs_wait(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.token}"}

    def ask() -> None:
        httpx.post(
            stack.base_url + "/v1/chat/completions",
            headers=auth,
            json={"model": "slow", "messages": [{"role": "user", "content": PROMPT}]},
            timeout=60,
        )

    threads = [threading.Thread(target=ask) for _ in range(12)]  # `slow` has 8 slots
    for t in threads:
        t.start()
    m: dict[tuple[str, str], float] = {}

    def eight_run_four_wait() -> bool:  # not a moment while requests still arrive
        m.update(scrape(stack))
        return (m[("kuwa_queue_running", "slow")], m[("kuwa_queue_depth", "slow")]) == (8, 4)

    wait_until(eight_run_four_wait, 10, "8 running and 4 waiting")
    assert m[("kuwa_queue_wait_seconds", "slow")] > 0
    assert m[("kuwa_executors", "slow")] == 1 and m[("kuwa_executor_slots", "slow")] == 8
    assert m[("kuwa_desired_executors", "slow")] == 2
    assert m[("kuwa_queue_depth", "echo")] == 0 and m[("kuwa_desired_executors", "echo")] == 0
    assert m[("kuwa_gateway_streams", "")] >= 12
    for t in threads:
        t.join(60)
    wait_until(lambda: scrape(stack).get(("kuwa_queue_running", "slow")) == 0, 10, "drained")
    after = scrape(stack)
    assert after[("kuwa_queue_wait_seconds", "slow")] == 0
    assert after[("kuwa_jobs_total", "slow")] >= 12
    assert after[("kuwa_tokens_total", "slow")] >= 12 * 24
    assert after[("kuwa_jobs_failed_total", "slow")] == 0


def test_latency_percentiles(stack: Stack) -> None:
    r = httpx.get(stack.base_url + "/metrics", timeout=10)
    ttft = {
        s.labels["quantile"]: s.value
        for f in text_string_to_metric_families(r.text)
        for s in f.samples
        if s.name == "kuwa_latency_seconds"
        and s.labels["model"] == "slow"
        and s.labels["metric"] == "ttft"
    }
    assert set(ttft) == {"0.5", "0.95"}
    assert 0 < ttft["0.5"] <= ttft["0.95"] < 30


def test_metrics_token_is_required_when_set(stack: Stack) -> None:
    base = stack.gateway({"KUWA_METRICS_TOKEN": "scrape-me"})
    assert httpx.get(base + "/metrics").status_code == 401
    wrong = httpx.get(base + "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    ok = httpx.get(base + "/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert ok.status_code == 200 and "kuwa_queue_depth" in ok.text


def test_a_single_worker_gateway_counts_its_own_requests(stack: Stack) -> None:
    def families() -> dict[str, dict[frozenset[tuple[str, str]], float]]:
        r = httpx.get(stack.base_url + "/metrics", timeout=10)
        out: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
        return out

    scraped = frozenset({"route": "/metrics", "method": "GET", "status": "200"}.items())
    before = families()["kuwa_gateway_http_requests_total"].get(scraped, 0)
    after = families()
    assert after["kuwa_gateway_http_requests_total"][scraped] == before + 1
    assert after["kuwa_gateway_streams"][frozenset()] >= 0  # one process: its own streams
    assert after["process_resident_memory_bytes"][frozenset()] > 0


# --- the metrics server of the kernel and executors --------------------------------------------
@pytest.mark.anyio
async def test_metrics_server_answers_only_get_metrics_with_the_token() -> None:
    registry = CollectorRegistry()
    Counter("kuwa_test_things", "Things.", registry=registry).inc(3)
    server = MetricsServer([registry], token="scrape-me")
    port = await server.start("127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(url + "/metrics")).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await client.get(url + "/metrics", headers=wrong)).status_code == 401
            auth = {"Authorization": "Bearer scrape-me"}
            ok = await client.get(url + "/metrics", headers=auth)
            assert ok.status_code == 200
            assert ok.headers["content-type"].startswith("text/plain")
            assert "kuwa_test_things_total 3.0" in ok.text
            assert "process_" in ok.text or "python_" in ok.text  # the default registry too
            assert (await client.get(url + "/", headers=auth)).status_code == 404
            assert (await client.post(url + "/metrics", headers=auth)).status_code == 405
    finally:
        await server.stop()


@pytest.mark.anyio
async def test_a_port_in_use_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    first = MetricsServer([])
    port = await first.start("127.0.0.1", 0)
    try:
        assert await serve_metrics([], "127.0.0.1", port, None) is None
        assert "cannot serve metrics" in caplog.text
    finally:
        await first.stop()


# --- names: the code, docs/metrics.md and the Grafana dashboard agree --------------------------
ROOT = Path(__file__).resolve().parent.parent
METRIC = re.compile(r"\b(?:kuwa|process|python)_[a-z0-9_]+\b")


class FakeRuntime:
    """What the executor's metrics read of a runtime (a real one needs a backend and Redis)."""

    def __init__(self, info: ExecutorInfo) -> None:
        self.info = info
        self.running: dict[str, object] = {}


def emitted() -> dict[str, str]:
    """Every metric family the processes emit: the name a query uses -> its type."""
    info = ExecutorInfo("x", ("echo",), "debug", "m", "h", 1, 1)
    runtime = FakeRuntime(info)
    executor_metrics.watch(runtime)
    snap = Snapshot([QueueStats("echo", 0, 0, 0.0, 1, 1, {"tokens": 1}, {"ttft_p50": 0.1})], [info])
    families = [
        *deployment_families(snap),
        GaugeMetricFamily(gateway_metrics.STREAMS, ""),
        *instrument.REGISTRY.collect(),
        *kernel_metrics.REGISTRY.collect(),
        *executor_metrics.REGISTRY.collect(),
        *(f for f in REGISTRY.collect() if f.name.startswith(("process_", "python_"))),
    ]
    return {f.name + ("_total" if f.type == "counter" else ""): f.type for f in families}


def documented() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", text, re.MULTILINE)}


def test_every_kuwa_metric_is_documented_and_every_documented_one_exists() -> None:
    names = emitted()
    ours = {n for n in names if n.startswith("kuwa_")}
    assert len(ours) > 40
    assert ours - documented() == set(), "emitted but not in docs/metrics.md"
    assert documented() - set(names) == set(), "in docs/metrics.md but never emitted"


def test_the_grafana_dashboard_queries_only_documented_metrics() -> None:
    dashboard = json.loads((ROOT / "compose" / "grafana" / "kuwa.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    types_ = emitted()
    known = documented()
    used = set()
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names, f"no metric in {expr!r}"
        for name in names:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            if types_.get(family) == "histogram":
                assert name != family, f"{expr!r}: query a histogram's _bucket, _sum or _count"
                name = family
            assert name in known, f"{expr!r} uses {name}, which docs/metrics.md does not list"
            assert name in types_, f"{expr!r} uses {name}, which nothing emits"
            used.add(name)
    # the dashboard covers each process
    assert {n.split("_")[1] for n in used if n.startswith("kuwa_")} >= {
        "queue",
        "gateway",
        "executor",
        "kernel",
    }
