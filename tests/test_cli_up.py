"""`kuwa-cli up` as a new user runs it: one command, a private Redis, demo models, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.stack import free_port, wait_until

BESIDE = ["--backend", "debug", "--access-code", "beside", "--debug-transform", "upper"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUWA_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def kuwa(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kuwa", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def healthy(base: str, proc: subprocess.Popen[str]) -> bool:
    assert proc.poll() is None, "kuwa-cli up exited early"
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def up(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    out = (tmp_path / "up.out").open("w+")
    err = (tmp_path / "up.err").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kuwa",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        env=clean_env(),
        stdout=out,
        stderr=err,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"

    wait_until(lambda: healthy(base, proc), 60, "kuwa-cli up")
    yield proc, base, tmp_path
    if proc.poll() is None:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait()
    out.close()
    err.close()


def test_up_runs_everything_and_stops_cleanly(up) -> None:  # type: ignore[no-untyped-def]
    proc, base, folder = up
    printed = (folder / "up.out").read_text()
    token = re.search(r"API token: (\S+)", printed)
    assert token, printed
    assert "login:     admin@localhost" in printed
    headers = {"Authorization": f"Bearer {token.group(1)}"}

    def models() -> set[str]:
        r = httpx.get(base + "/v1/models", headers=headers)
        return {m["id"] for m in r.json()["data"]}

    wait_until(lambda: models() == {"echo", "reverse", "upper"}, 30, "demo executors")
    answers = {}
    for code in ("echo", "reverse", "upper"):
        r = httpx.post(
            base + "/v1/chat/completions",
            headers=headers,
            json={"model": code, "messages": [{"role": "user", "content": "Kuwa 你好"}]},
            timeout=30,
        )
        answers[code] = r.json()["choices"][0]["message"]["content"]
    assert answers == {"echo": "Kuwa 你好", "reverse": "好你 awuK", "upper": "KUWA 你好"}

    # The CLI works on the same database while `up` runs, and prints only the token.
    env = clean_env(KUWA_DATA_DIR=str(folder / "d"))
    got = kuwa("user", "token", "--email", "admin@localhost", env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == token.group(1) + "\n"
    # Commands beside `up` on its data folder use its Redis without being told
    # (KUWA_REDIS_URL unset): they once joined redis://127.0.0.1:6379 and served nobody.
    listed = kuwa("executor", "list", "--json", "--data-dir", "d", env=clean_env(), cwd=folder)
    assert listed.returncode == 0, listed.stderr
    assert sorted(c for e in json.loads(listed.stdout) for c in e["access_codes"]) == [
        "echo",
        "reverse",
        "upper",
    ]
    beside_log = (folder / "beside.log").open("w+")
    beside = subprocess.Popen(
        [sys.executable, "-m", "kuwa", "executor", "start", *BESIDE],
        env=clean_env(KUWA_DATA_DIR=str(folder / "d")),
        stdout=beside_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: "beside" in models(), 30, "the executor started beside up")
        r = httpx.post(
            base + "/v1/chat/completions",
            headers=headers,
            json={"model": "beside", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert r.json()["choices"][0]["message"]["content"] == "HI"
    finally:
        beside.send_signal(signal.SIGTERM)
        beside.wait(30)
        beside_log.close()
    logged = (folder / "beside.log").read_text()
    assert f"using the Redis of `kuwa-cli up` (unix://{folder / 'd' / 'redis.sock'})" in logged
    # A second `up` on the same data folder would take the first one's Redis socket: refused.
    again = kuwa("up", "--port", str(free_port()), "--data-dir", str(folder / "d"), env=env)
    assert again.returncode == 1 and "already runs on the data folder" in again.stderr

    # The access log is off by default: a request is not a line in up's terminal.
    logged_by_up = (folder / "up.err").read_text()
    assert "gateway ready" in logged_by_up
    assert '"GET /v1/models HTTP/1.1"' not in logged_by_up
    assert "/healthz" not in logged_by_up

    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 6  # redis, kernel, 3 executors, gateway
    assert any("redis-server" in " ".join(c.cmdline()) for c in children)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert time.monotonic() - started < 20
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []


def test_second_start_keeps_the_admin(tmp_path: Path) -> None:
    env = clean_env(KUWA_DATA_DIR=str(tmp_path / "d"))
    created = kuwa(
        "user",
        "create",
        "--email",
        "admin@localhost",
        "--name",
        "A",
        "--password",
        "long enough pw",
        "--admin",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kuwa",
            "up",
            "--port",
            str(port),
            "--demo-models",
            "",
            "--access-log",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: healthy(f"http://127.0.0.1:{port}", proc), 60, "kuwa-cli up")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert "API token" not in out
    assert proc.returncode == 0
    assert '"GET /healthz HTTP/1.1" 200' in err  # --access-log: every request is logged


def test_up_help_names_its_own_redis_default() -> None:
    """`up --help` said it used redis://127.0.0.1:6379/0, which up never does."""
    shown = kuwa("up", "--help", env=clean_env())
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "6379" not in text
    assert "a private redis-server on a unix socket in DATA_DIR" in text
    other = " ".join(kuwa("executor", "start", "--help", env=clean_env()).stdout.split())
    assert "the Redis of a `kuwa-cli up` running on DATA_DIR, else redis://127.0.0.1:6379/0" in (
        other
    )


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    got = kuwa("up", env=clean_env(KUWA_PROT="1", KUWA_DATA_DIR=str(tmp_path)))
    assert got.returncode == 2
    assert "unknown setting KUWA_PROT" in got.stderr


def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    """Another server on the port once answered up's health check: up printed "Kuwa is
    running", created an admin, then died. Now it stops at once and says what to do."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        got = kuwa("up", "--port", str(port), env=clean_env(KUWA_DATA_DIR=str(tmp_path / "d")))
    assert got.returncode == 1, got.stderr
    assert f"port {port} on 127.0.0.1 is taken" in got.stderr
    suggested = re.search(r"--port (\d+) \(or KUWA_PORT=(\d+)\)", got.stderr)
    assert suggested and suggested.group(1) == suggested.group(2), got.stderr
    assert int(suggested.group(1)) != port
    assert "running" not in got.stderr + got.stdout and "password" not in got.stdout
    assert not (tmp_path / "d").exists()  # nothing created: no data folder, no admin


def part(proc: subprocess.Popen[str], *words: str) -> psutil.Process:
    """The child of `up` whose command line has all of ``words``."""
    for child in psutil.Process(proc.pid).children():
        if all(w in child.cmdline() for w in words):
            return child
    raise AssertionError(f"no part {words} under up")


def test_a_part_that_dies_is_started_again(up) -> None:  # type: ignore[no-untyped-def]
    """`up` stopped everything when one part died; now it starts the part again (after a
    pause, logged) and the rest runs on."""
    proc, base, folder = up
    token = re.search(r"API token: (\S+)", (folder / "up.out").read_text())
    assert token
    headers = {"Authorization": f"Bearer {token.group(1)}"}

    def models() -> set[str]:
        try:
            r = httpx.get(base + "/v1/models", headers=headers, timeout=2)
        except httpx.HTTPError:
            return set()
        return {m["id"] for m in r.json()["data"]} if r.status_code == 200 else set()

    wait_until(lambda: models() == {"echo", "reverse", "upper"}, 30, "demo executors")
    gateway = part(proc, "gateway", "start")
    gateway.kill()
    gateway.wait(10)
    wait_until(lambda: healthy(base, proc), 30, "the gateway started again")
    executor = part(proc, "executor", "reverse")
    executor.kill()
    executor.wait(10)
    wait_until(
        lambda: "up: executor reverse started again" in (folder / "up.err").read_text(),
        30,
        "the executor started again",
    )
    assert part(proc, "executor", "reverse").pid != executor.pid
    r = httpx.post(
        base + "/v1/chat/completions",
        headers=headers,
        json={"model": "reverse", "messages": [{"role": "user", "content": "again"}]},
        timeout=30,
    )
    assert r.json()["choices"][0]["message"]["content"] == "niaga"
    logged = (folder / "up.err").read_text()
    assert re.search(r"up: gateway exited with status -9 after [\d.]+ s; starting it again", logged)
    assert "up: gateway started again" in logged
    assert "up: executor reverse exited with status -9" in logged
    assert proc.poll() is None


def test_a_hard_kill_of_up_leaves_no_orphans(tmp_path: Path) -> None:
    """`up` started every part in a session of its own: a `kill -9` of `up` left them all
    running, a private redis-server among them. Now they die with it, and the next `up` on
    the data folder starts."""
    port = free_port()
    command = [sys.executable, "-m", "kuwa", "up", "--port", str(port), "--data-dir", "d"]
    with (tmp_path / "first.err").open("w") as err:
        first = subprocess.Popen(command, env=clean_env(), stdout=err, stderr=err, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: healthy(base, first), 60, "kuwa-cli up")
    children = psutil.Process(first.pid).children(recursive=True)
    assert any("redis-server" in " ".join(c.cmdline()) for c in children)
    first.kill()
    first.wait()
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], [" ".join(c.cmdline()) for c in alive]
    with (tmp_path / "second.err").open("w") as err:
        second = subprocess.Popen(command, env=clean_env(), stdout=err, stderr=err, cwd=tmp_path)
    try:
        wait_until(lambda: healthy(base, second), 60, "a second kuwa-cli up")
    finally:
        second.send_signal(signal.SIGINT)
        assert second.wait(30) == 0


def test_up_stops_the_redis_an_up_that_is_gone_left_behind(tmp_path: Path) -> None:
    """A redis-server left on the data folder's socket by an `up` that is gone (before its
    children died with it, or on a system without a parent-death signal) made every later
    `up` refuse to start; now it is shut down, and said so."""
    data = tmp_path / "d"
    data.mkdir()
    leftover = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(data / "redis.sock"), "--save", ""],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    gone = subprocess.Popen(["true"])
    gone.wait()
    (data / "up.pid").write_text(f"{gone.pid}\n")
    wait_until(lambda: (data / "redis.sock").is_socket(), 10, "the leftover redis-server")
    port = free_port()
    with (tmp_path / "up.err").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kuwa", "up", "--port", str(port), "--data-dir", str(data)],
            env=clean_env(),
            stdout=err,
            stderr=err,
        )
    try:
        wait_until(lambda: healthy(f"http://127.0.0.1:{port}", proc), 60, "kuwa-cli up")
        assert leftover.wait(10) == 0
        logged = (tmp_path / "up.err").read_text()
        assert f"left behind by a `kuwa-cli up` that is gone (pid {gone.pid})" in logged
        assert (data / "up.pid").read_text() == f"{proc.pid}\n"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
    assert not (data / "up.pid").exists()
