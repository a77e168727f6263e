"""The dashboard, end to end: pages and who may open them, live figures that move while jobs
run, the job log and usage recorded when jobs finish (with filters and paging), inspect and
feedback, and a stress run started from the dashboard and run by the background worker.

One real stack: Redis, a kernel (the leader, sampling every second), a gateway, debug
executors (``echo``, ``slow`` at 20 ms a token, ``guarded`` whose input rule blocks
"forbidden").
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kuwa.accounts import permissions
from tests.stack import RedisServer, Stack, wait_until
from tests.web import Browser, make_user, store_of

ADMIN = "dash-admin@example.com"
PLAIN = "dash-plain@example.com"
VIEWER = "dash-viewer@example.com"  # tab_Dashboard only
FAST = {"KUWA_TIMESERIES_INTERVAL": "1"}
RULES = """input:
  - match: {keyword: "forbidden"}
    action: block
    message: "That word is not allowed here."
"""
PAGES = [
    ("/dashboard", "tab_Dashboard"),
    ("/dashboard/jobs", "Dashboard_read_logs"),
    ("/dashboard/audit", "Dashboard_read_logs"),
    ("/dashboard/stats", "Dashboard_read_statistics"),
    ("/dashboard/inspect?q=x", "Dashboard_read_inspect"),
    ("/dashboard/feedback", "Dashboard_read_feedbacks"),
    ("/dashboard/stress", "tab_Manage"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("dashboard")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    rules = folder / "rules.yaml"
    rules.write_text(RULES)
    try:
        make_user(s, ADMIN, admin=True)
        make_user(s, PLAIN)
        make_user(s, VIEWER, permissions=["tab_Dashboard", "tab_Room"])
        with store_of(s) as store:
            admin = store.accounts.find_user(ADMIN)
            assert admin is not None
            s.token = store.accounts.ensure_token(admin.id)
        s.executor("echo")
        s.executor("slow", delay=0.02, concurrency=4)
        s.executor("guarded", extra=["--rules", str(rules)])
        s.spawn("kernel", ["kernel", "start"], FAST)
        s.base_url = s.gateway(FAST)
        yield s
    finally:
        s.stop()
        server.stop()


def signed_in(stack: Stack, email: str, *, json: bool = False) -> Browser:
    headers = {"accept": "application/json"} if json else None
    b = Browser(stack.base_url, headers=headers)
    assert b.login(email).status_code == 303
    return b


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[Browser]:
    b = signed_in(stack, ADMIN)
    yield b
    b.close()


def chat(stack: Stack, model: str, content: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        stack.base_url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {stack.token}"},
        json={"model": model, "messages": [{"role": "user", "content": content}], **extra},
        timeout=60,
    )


def overview(b: Browser) -> dict[str, Any]:
    r = b.get("/app/dashboard/overview", headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def model_of(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(m for m in data["models"] if m["code"] == code)


# --- who may open what ----------------------------------------------------------------------
def test_pages_render_for_an_admin_and_refuse_others(stack: Stack, admin: Browser) -> None:
    for path, _ in PAGES:
        r = admin.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert "dash-nav" in r.text
    home = admin.get("/profile")
    assert 'href="/dashboard"' in home.text  # the tab is in the navigation
    with signed_in(stack, ADMIN) as zh:
        zh.http.cookies.set("kuwa_lang", "zh-TW")
        chinese = zh.get("/dashboard/jobs").text
    assert ">儀表板</a>" in chinese and "工作紀錄" in chinese and "Job log" not in chinese
    with signed_in(stack, PLAIN) as plain:
        for path, _ in PAGES:
            assert plain.get(path).status_code == 403, path
        assert plain.get("/app/dashboard/overview").status_code == 403
        assert 'href="/dashboard"' not in plain.get("/profile").text
    with signed_in(stack, VIEWER) as viewer:
        for path, permission in PAGES:
            expected = 200 if permission == "tab_Dashboard" else 403
            assert viewer.get(path).status_code == expected, path
        page = viewer.get("/dashboard").text
        assert 'href="/dashboard/jobs"' not in page  # sub-pages it may not open are not linked
    with Browser(stack.base_url) as anonymous:
        r = anonymous.get("/dashboard/jobs")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        assert anonymous.get("/app/dashboard/overview").status_code == 401


def test_the_dashboard_routes_declare_known_permissions() -> None:
    from kuwa.web import dashboard

    for route in dashboard.routes():
        access = getattr(route.endpoint, "kuwa_access", None)  # type: ignore[attr-defined]
        assert access in permissions.ALL, route.path  # type: ignore[attr-defined]


# --- live figures ---------------------------------------------------------------------------
def test_live_numbers_move_while_jobs_run(stack: Stack, admin: Browser) -> None:
    before = model_of(overview(admin), "slow")
    prompt = " ".join(f"w{i}" for i in range(60))  # 60 tokens at 20 ms: over a second each
    results: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda: results.append(chat(stack, "slow", prompt)))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    seen: dict[str, int] = {"running": 0, "waiting": 0, "used": 0}

    def busy() -> bool:
        data = overview(admin)
        slow = model_of(data, "slow")
        seen["running"] = max(seen["running"], slow["running"])
        seen["waiting"] = max(seen["waiting"], slow["waiting"])
        executor = next(e for e in data["executors"] if "slow" in e["codes"])
        seen["used"] = max(seen["used"], executor["used"])
        return seen["running"] >= 2 and seen["used"] >= 2

    wait_until(busy, 20, "jobs running on the dashboard")
    for t in threads:
        t.join(60)
    assert [r.status_code for r in results] == [200] * 6
    assert seen["running"] <= 4  # four slots: the others waited in the queue

    def counted() -> bool:
        after = model_of(overview(admin), "slow")
        return (
            after["jobs_total"] >= before["jobs_total"] + 6
            and after["requests_per_min"] > 0
            and after["ttft_p50"] is not None
        )

    wait_until(counted, 20, "finished jobs in the live figures")
    data = overview(admin)
    slow = model_of(data, "slow")
    assert slow["tokens_total"] >= before["tokens_total"] + 6 * 60
    assert slow["executors_ready"] == 1 and slow["error_rate"] == 0
    assert 0.015 < slow["tpot_p50"] < 0.2  # 20 ms a token, give or take a loaded machine
    executor = next(e for e in data["executors"] if "slow" in e["codes"])
    assert executor["backend"] == "debug" and executor["slots"] == 4
    assert executor["state"] == "ready" and executor["heartbeat_age"] < 10
    roles = [k["role"] for k in data["kernels"]["list"]]
    assert roles == ["leader"] and data["kernels"]["leader"] == data["kernels"]["list"][0]["id"]
    assert data["redis"]["connected_clients"] >= 3 and data["redis"]["used_memory"] > 0


def test_the_last_hour_in_charts(stack: Stack, admin: Browser) -> None:
    chat(stack, "echo", "chart me")

    def charted() -> bool:
        r = admin.get("/app/dashboard/series?minutes=60")
        models = r.json()["models"]
        return "echo" in models and sum(models["echo"]["requests"]) >= 1

    wait_until(charted, 20, "a sample counting the job")
    data = admin.get("/app/dashboard/series?minutes=60").json()
    echo = data["models"]["echo"]
    assert set(echo) == {
        "t",
        "waiting",
        "running",
        "tokens_per_s",
        "ttft_p95",
        "errors",
        "requests",
    }
    assert len({len(column) for column in echo.values()}) == 1  # columns of equal length
    assert echo["t"] == sorted(echo["t"]) and data["interval"] == 1.0


# --- job log and statistics -----------------------------------------------------------------
def jobs(b: Browser, **query: str) -> dict[str, Any]:
    r = b.get("/app/dashboard/jobs", params=query, headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_the_job_log_records_who_what_and_how_long(stack: Stack, admin: Browser) -> None:
    since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    for i in range(5):
        assert chat(stack, "echo", f"log line {i} has five words").status_code == 200
    blocked = chat(stack, "guarded", "a forbidden word")
    assert blocked.status_code == 400, blocked.text

    def logged() -> bool:
        return len(jobs(admin, since=since)["jobs"]) >= 6

    wait_until(logged, 10, "six log entries")
    echo = jobs(admin, model="echo", since=since)["jobs"]
    assert len(echo) == 5
    first = echo[0]
    assert first["user"] == ADMIN and first["group"] == "Admins"
    assert first["status"] == "done" and first["reason"] == "stop"
    assert first["completion_tokens"] == 6 and first["prompt_tokens"] > 0
    assert first["ttft"] is not None and first["duration"] >= first["ttft"] >= 0
    assert [j["finished"] for j in echo] == sorted((j["finished"] for j in echo), reverse=True)
    failed = jobs(admin, status="failed", since=since)["jobs"]
    assert [(j["model"], j["error"]) for j in failed] == [("guarded", "blocked")]
    assert jobs(admin, status="failed", model="echo", since=since)["jobs"] == []
    assert len(jobs(admin, user=ADMIN, since=since)["jobs"]) == 6
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert jobs(admin, since=later)["jobs"] == []
    assert jobs(admin, until=since, model="guarded")["jobs"] == []
    # Paging: two at a time, no entry twice, none missed.
    seen: list[str] = []
    page = jobs(admin, model="echo", since=since, limit="2")
    while True:
        seen += [j["job"] for j in page["jobs"]]
        if not page["next"]:
            break
        page = jobs(admin, model="echo", since=since, limit="2", before=page["next"])
    assert seen == [j["job"] for j in echo]
    # Bad filters are clear errors.
    bad = admin.get("/app/dashboard/jobs?status=lost", headers={"accept": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"
    nobody = admin.get("/dashboard/jobs?user=nobody@example.com")
    assert nobody.status_code == 400 and "No account has the email" in nobody.text
    # The page shows them.
    html = admin.get("/dashboard/jobs?model=guarded").text
    assert "blocked" in html and ADMIN in html and 'data-status="failed"' in html


def test_usage_per_model_group_and_day(stack: Stack, admin: Browser) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()

    def usage() -> dict[str, Any]:
        r = admin.get("/app/dashboard/usage", params={"from": today, "to": today})
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    before = usage()
    for _ in range(3):
        assert chat(stack, "echo", "count me please").status_code == 200
    assert chat(stack, "guarded", "forbidden again").status_code == 400

    def counted() -> bool:
        return usage()["total"]["requests"] >= before["total"]["requests"] + 4

    wait_until(counted, 10, "usage counted")
    after = usage()
    echo_before = before["by_model"].get("echo", {"requests": 0, "completion_tokens": 0})
    assert after["by_model"]["echo"]["requests"] == echo_before["requests"] + 3
    assert after["by_model"]["echo"]["completion_tokens"] == echo_before["completion_tokens"] + 9
    assert after["by_model"]["guarded"]["failed"] >= 1
    assert after["by_group"]["Admins"]["requests"] == after["total"]["requests"]
    assert after["by_day"][today]["requests"] == after["total"]["requests"]
    only_guarded = admin.get("/app/dashboard/usage", params={"model": "guarded"}).json()
    assert set(only_guarded["by_model"]) == {"guarded"}
    assert admin.get("/app/dashboard/usage", params={"group": "Users"}).json()["total"] == {
        "requests": 0,
        "failed": 0,
        "cancelled": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
    }
    page = admin.get("/dashboard/stats")
    assert page.status_code == 200
    assert 'data-testid="dash-usage-models"' in page.text and "guarded" in page.text
    csv = admin.get("/dashboard/stats.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert (
        csv.text.splitlines()[0]
        == "kind,key,requests,failed,cancelled,prompt_tokens,completion_tokens"
    )
    assert any(line.startswith("model,echo,") for line in csv.text.splitlines())
    wrong = admin.get("/dashboard/stats?from=2026-13-01")
    assert wrong.status_code == 400 and "a day like" in wrong.text


# --- inspect and feedback -------------------------------------------------------------------
def app_post(b: Browser, path: str, body: dict[str, Any]) -> httpx.Response:
    return b.http.post(
        path, json=body, headers={"x-csrftoken": b.csrf(), "accept": "application/json"}
    )


def test_inspect_finds_messages_and_shows_them_as_text(stack: Stack) -> None:
    with signed_in(stack, PLAIN) as plain, signed_in(stack, ADMIN) as admin:
        room = app_post(plain, "/app/rooms", {"models": ["echo"]})
        assert room.status_code == 201, room.text
        room_id = room.json()["id"]
        secret = "<img src=x onerror=alert(1)> zebracorn"
        sent = app_post(plain, f"/app/rooms/{room_id}/messages", {"content": secret})
        assert sent.status_code == 201, sent.text
        answer_id = sent.json()["answers"][0]["id"]

        def answered() -> bool:
            r = plain.get(f"/app/rooms/{room_id}", headers={"accept": "application/json"})
            return any(m["id"] == answer_id and m["status"] == "done" for m in r.json()["messages"])

        wait_until(answered, 20, "the answer")
        page = admin.get("/dashboard/inspect?q=zebracorn")
        assert page.status_code == 200
        assert page.text.count('data-testid="dash-message"') == 2  # the prompt and the answer
        assert "&lt;img src=x onerror=alert(1)&gt; zebracorn" in page.text
        assert "<img src=x" not in page.text
        assert f'href="/rooms/{room_id}"' not in page.text  # it links to nothing private
        prompts = admin.get("/dashboard/inspect?q=zebracorn&role=user").text
        assert prompts.count('data-testid="dash-message"') == 1 and PLAIN in prompts
        by_user = admin.get(f"/dashboard/inspect?q=zebracorn&user={PLAIN}").text
        assert by_user.count('data-testid="dash-message"') == 2  # answers belong to the asker
        other = admin.get(f"/dashboard/inspect?q=zebracorn&user={ADMIN}").text
        assert 'data-testid="dash-no-messages"' in other
        by_model = admin.get("/dashboard/inspect?q=zebracorn&model=echo").text
        assert by_model.count('data-testid="dash-message"') == 1
        tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
        assert (
            "dash-no-messages" in admin.get(f"/dashboard/inspect?q=zebracorn&since={tomorrow}").text
        )
        assert admin.get("/dashboard/inspect?q=x&since=yesterday").status_code == 400
        # Feedback on that answer shows on the feedback page with the export links.
        rated = app_post(
            plain,
            f"/app/messages/{answer_id}/feedback",
            {"rating": -1, "comment": "zebra <b>bad</b>"},
        )
        assert rated.status_code == 200, rated.text
        feedback = admin.get("/dashboard/feedback?rating=-1&model=echo")
        assert feedback.status_code == 200
        assert feedback.text.count('data-testid="dash-feedback"') == 1
        assert "zebra &lt;b&gt;bad&lt;/b&gt;" in feedback.text
        assert (
            'href="/app/feedback/export?model=echo&amp;rating=-1&amp;format=csv"' in feedback.text
        )
        liked = admin.get("/dashboard/feedback?rating=1").text
        assert 'data-testid="dash-feedback"' not in liked
        export = admin.get("/app/feedback/export?model=echo&rating=-1&format=csv")
        assert export.status_code == 200 and "zebra <b>bad</b>" in export.text


# --- stress runs ----------------------------------------------------------------------------
def test_a_stress_run_from_the_dashboard(stack: Stack, admin: Browser) -> None:
    pytest.importorskip("kuwa.stress")
    refused = admin.post(
        "/dashboard/stress", {"models": "echo", "concurrency": "0", "requests": "5"}
    )
    assert refused.status_code == 400 and "concurrency" in refused.text
    started = admin.post(
        "/dashboard/stress",
        {"models": "echo", "concurrency": "4", "requests": "20", "max_tokens": "16"},
    )
    assert started.status_code == 303, started.text
    runs = admin.get("/app/dashboard/stress", headers={"accept": "application/json"}).json()["runs"]
    run = runs[0]
    assert run["status"] == "queued" and run["config"]["models"] == ["echo"]
    assert run["config"]["url"].startswith("http://127.0.0.1:")
    assert "token" not in run and "token" not in run["config"]  # minted by the worker
    worker = subprocess.run(
        [sys.executable, "-m", "kuwa", "worker", "start", "--burst"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr
    runs = admin.get("/app/dashboard/stress", headers={"accept": "application/json"}).json()["runs"]
    done = next(r for r in runs if r["id"] == run["id"])
    assert done["status"] == "done", done
    result = done["result"]
    assert result["completed"] == 20 and result["failed"] == 0
    assert result["request_throughput"] > 0 and result["ttft"]["p50"] > 0
    page = admin.get("/dashboard/stress").text
    assert run["id"] in page and 'data-testid="dash-stress-chart"' in page
    # The run's token lived only as long as the run.
    with store_of(stack) as store:
        user = store.accounts.find_user(ADMIN)
        assert user is not None
        names = [t.name for t in store.accounts.list_tokens(user.id)]
    assert not any(re.match(r"stress run ", n) for n in names), names
    audit = admin.get("/dashboard/audit?action=stress_run_started").text
    assert run["id"] in audit
