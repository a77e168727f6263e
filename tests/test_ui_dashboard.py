"""The dashboard in a real browser (Chromium through Playwright) against a real stack.

An admin opens the live overview while jobs run: the numbers move without a reload and the
charts (uPlot, from npm) draw the samples the kernel takes every second. Screenshots of the
overview and the other pages on a desktop and at 390 px land in
``test-artifacts/screenshots/dashboard-*.png``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from kuwa import keys
from kuwa.broker.timeseries import Sample
from tests.browser import DESKTOP, PHONE, shot
from tests.stack import RedisServer, Stack
from tests.web import PASSWORD, make_user, store_of

ADMIN = "ui-dash-admin@example.com"
PLAIN = "ui-dash-plain@example.com"
FAST = {"KUWA_TIMESERIES_INTERVAL": "1"}

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("ui-dashboard")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        make_user(s, ADMIN, admin=True)
        make_user(s, PLAIN)
        with store_of(s) as store:
            admin = store.accounts.find_user(ADMIN)
            assert admin is not None
            s.token = store.accounts.ensure_token(admin.id)
        s.executor("echo")
        s.executor("slow", delay=0.02, concurrency=4)
        s.spawn("kernel", ["kernel", "start"], FAST)
        s.base_url = s.gateway(FAST)
        yield s
    finally:
        s.stop()
        server.stop()


class Load:
    """Chat requests in the background (slow and echo) until stopped."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(m,)) for m in ["slow"] * 6 + ["echo"]
        ]
        self.sent = 0

    def run(self, model: str) -> None:
        prompt = " ".join(f"w{i}" for i in range(40))
        with httpx.Client(base_url=self.stack.base_url, timeout=60) as client:
            while not self.stop.is_set():
                client.post(
                    "/v1/chat/completions",
                    headers={"authorization": f"Bearer {self.stack.token}"},
                    json={"model": model, "messages": [{"role": "user", "content": prompt}]},
                )
                self.sent += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def signed_in(browser: Browser, stack: Stack, email: str, viewport: dict[str, int]) -> Page:
    context = browser.new_context(base_url=stack.base_url, viewport=viewport, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    page.goto("/login")
    page.locator('input[name="email"]').fill(email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator('form[action="/login"] button[type="submit"]').click()
    page.wait_for_load_state()
    return page


def test_the_live_dashboard_with_charts(stack: Stack, browser: Browser) -> None:
    page = signed_in(browser, stack, ADMIN, DESKTOP)
    with Load(stack):
        page.goto("/dashboard")
        expect(page.locator("header nav a[href='/dashboard']")).to_be_visible()
        expect(page.get_by_test_id("dash-status")).to_contain_text("Updated")
        running = page.get_by_test_id("card-running").locator(".dash-card-value")
        expect(running).not_to_have_text("0")  # moved without a reload
        slow = page.locator("#dash-models tr[data-model='slow'] td")
        expect(slow.first).to_have_text("slow")
        executors = page.locator("#dash-executors tr[data-executor]")
        expect(executors).to_have_count(2)
        expect(page.locator("#dash-kernels")).to_contain_text("leader")
        charts = page.get_by_test_id("dash-charts")
        expect(charts.locator("canvas")).to_have_count(4)
        expect(charts).to_have_attribute("data-samples", re.compile(r"^(?:[3-9]|\d\d+)$"))
        page.wait_for_timeout(2500)  # another poll, so the picture shows a moving hour
        tokens = page.get_by_test_id("card-tokens").locator(".dash-card-value")
        assert float(tokens.inner_text().replace(",", "")) > 0
        shot(page, "dashboard-desktop.png", full_page=True)
        phone = signed_in(browser, stack, ADMIN, PHONE)
        phone.goto("/dashboard")
        expect(phone.get_by_test_id("dash-charts").locator("canvas")).to_have_count(4)
        expect(phone.get_by_test_id("dash-status")).to_contain_text("Updated")
        phone.wait_for_timeout(1500)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width} px wide on a phone"
        shot(phone, "dashboard-phone.png", full_page=True)
    page.goto("/dashboard/jobs")
    expect(page.get_by_test_id("dash-jobs").locator("tbody tr").first).to_be_visible()
    shot(page, "dashboard-jobs.png", full_page=True)
    page.goto("/dashboard/stats")
    expect(page.get_by_test_id("dash-usage-chart").locator("canvas")).to_have_count(2)
    shot(page, "dashboard-stats.png", full_page=True)
    phone.goto("/dashboard/jobs")
    expect(phone.get_by_test_id("dash-jobs")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "dashboard-jobs-phone.png", full_page=True)
    page.goto("/dashboard/stress")
    expect(page.get_by_test_id("dash-stress-form")).to_be_visible()
    shot(page, "dashboard-stress.png", full_page=True)
    assert page.errors == [] and phone.errors == []  # type: ignore[attr-defined]


def test_stress_runs_compared_in_a_chart(stack: Stack, browser: Browser) -> None:
    pytest.importorskip("kuwa.stress")
    page = signed_in(browser, stack, ADMIN, DESKTOP)
    page.goto("/dashboard/stress")
    for concurrency in ("2", "8"):
        form = page.get_by_test_id("dash-stress-form")
        form.locator("input[name='concurrency']").fill(concurrency)
        form.locator("input[name='requests']").fill("24")
        form.locator("input[name='max_tokens']").fill("32")
        page.get_by_test_id("dash-stress-start").click()
        expect(page.locator(".flash")).to_contain_text("is queued")
    runs = page.get_by_test_id("dash-stress-runs").locator("tbody tr[data-run]")
    expect(runs).to_have_count(2)
    worker = subprocess.run(
        [sys.executable, "-m", "kuwa", "worker", "start", "--burst"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr
    # The page polls while runs are queued: both turn done without a reload.
    expect(page.locator("tr[data-status='done']")).to_have_count(2)
    chart = page.get_by_test_id("dash-stress-chart")
    expect(chart.locator("canvas")).to_have_count(2)
    expect(chart).to_have_attribute("data-runs", "2")
    shot(page, "dashboard-stress-runs.png", full_page=True)
    phone = signed_in(browser, stack, ADMIN, PHONE)
    phone.goto("/dashboard/stress")
    expect(phone.get_by_test_id("dash-stress-chart").locator("canvas")).to_have_count(2)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "dashboard-stress-phone.png", full_page=True)
    assert page.errors == [] and phone.errors == []  # type: ignore[attr-defined]


def test_a_user_without_the_tab_is_refused(stack: Stack, browser: Browser) -> None:
    page = signed_in(browser, stack, PLAIN, DESKTOP)
    expect(page.locator("header nav a[href='/dashboard']")).to_have_count(0)
    response = page.goto("/dashboard")
    assert response is not None and response.status == 403
    expect(page.locator("body")).to_contain_text("may not use this page")


# The pixels of a chart's canvas drawn in one series' colour (uPlot strokes lines and points
# in it), as a share of the canvas.
INK = """([testid, rgb]) => {
    const canvas = document.querySelector(`[data-testid="${testid}"] canvas`);
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let hits = 0;
    for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - rgb[0]) + Math.abs(data[i + 1] - rgb[1])
            + Math.abs(data[i + 2] - rgb[2]) < 60 && data[i + 3] > 200) hits++;
    }
    return hits;
}"""


def test_a_few_jobs_an_hour_still_draw_the_ttft_chart(stack: Stack, browser: Browser) -> None:
    """With ~20 jobs in the hour the TTFT p95 chart was nearly empty: a latency exists only
    in the samples where a job finished, and lone values drew no line."""
    now = time.time()
    client = stack.redis.client()
    try:
        client.hset(keys.MODELS, "aaa-sparse", orjson.dumps({}))
        key = keys.queue_timeseries("aaa-sparse")
        for i in range(720):  # a sample every 5 s for the past hour, oldest first
            ttft = 0.2 + (i % 7) / 20 if i % 36 == 5 else None
            client.lpush(key, Sample(t=now - 3600 + 5 * i, span=5.0, ttft_p95=ttft).encode())
    finally:
        client.close()
    page = signed_in(browser, stack, ADMIN, DESKTOP)
    page.goto("/dashboard")
    chart = page.get_by_test_id("chart-ttft_p95")
    expect(chart.locator("canvas")).to_have_count(1)
    page.wait_for_function(
        "() => Number(document.getElementById('dash-charts').dataset.samples) > 700"
    )
    # "aaa-sparse" sorts first, so it has the palette's first colour (#2563eb).
    ink = page.evaluate(INK, ["chart-ttft_p95", [0x25, 0x63, 0xEB]])
    chart.scroll_into_view_if_needed()
    shot(page, "dashboard-ttft-sparse.png")
    assert ink > 300, f"the TTFT chart shows {ink} pixels of the sparse model"  # 0 before
    assert page.errors == []  # type: ignore[attr-defined]
