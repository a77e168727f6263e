"""GET /metrics: queue depth, waiting time, executors and a scaling hint, in Prometheus text."""

from __future__ import annotations

import threading

import httpx
from prometheus_client.parser import text_string_to_metric_families

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


def test_queue_figures_while_jobs_wait(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.token}"}

    def ask() -> None:
        httpx.post(
            stack.base_url + "/v1/chat/completions",
            headers=auth,
            json={"model": "slow", "messages": [{"role": "user", "content": "a b c d e f g h"}]},
            timeout=60,
        )

    threads = [threading.Thread(target=ask) for _ in range(12)]  # `slow` has 8 slots
    for t in threads:
        t.start()
    wait_until(lambda: scrape(stack).get(("kuwa_queue_depth", "slow")) == 4, 10, "4 waiting")
    m = scrape(stack)
    assert m[("kuwa_queue_running", "slow")] == 8
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
    assert after[("kuwa_tokens_total", "slow")] >= 12 * 8  # "a b c d e f g h"
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
