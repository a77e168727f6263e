"""The local scaler: executors added with the queue up to max, removed when idle down to min."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from kuwa import keys
from kuwa.broker.stats import QueueStats
from kuwa.errors import ConfigError
from kuwa.kernel.scaler import LocalScaler, Pool
from tests.stack import RedisServer, Stack, wait_until

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")


def debug_executor(code: str, *options: str) -> list[str]:
    """The command line a pool file uses to start a debug executor for ``code``."""
    return [
        sys.executable,
        "-m",
        "kuwa",
        "executor",
        "start",
        "--backend",
        "debug",
        "--access-code",
        code,
        *options,
    ]


def stats(waiting: int, running: int, executors: int, slots: int) -> list[QueueStats]:
    return [QueueStats("m", waiting, running, 0.0, executors, slots)]


def test_scales_up_one_at_a_time_and_down_after_a_quiet_period() -> None:
    scaler = LocalScaler([Pool("m", SLEEPER, min=1, max=3, scale_down_after=10)], {})
    try:
        assert scaler.step(stats(0, 0, 0, 0), now=0) == {"m": 1}  # min
        assert scaler.step(stats(0, 0, 0, 0), now=1) == {"m": 1}  # starting: no pile-up
        assert scaler.step(stats(10, 2, 1, 2), now=2) == {"m": 2}  # wants 6, adds one
        assert scaler.step(stats(10, 4, 2, 4), now=3) == {"m": 3}
        assert scaler.step(stats(20, 6, 3, 6), now=4) == {"m": 3}  # max
        assert scaler.step(stats(0, 1, 3, 6), now=5) == {"m": 3}  # quiet period starts
        assert scaler.step(stats(0, 1, 3, 6), now=14) == {"m": 3}
        assert scaler.step(stats(0, 1, 3, 6), now=15.5) == {"m": 2}  # one after 10 s
        assert scaler.step(stats(0, 0, 2, 4), now=20) == {"m": 2}
        assert scaler.step(stats(0, 0, 2, 4), now=26) == {"m": 1}  # the next after 10 s more
        assert scaler.step(stats(0, 0, 1, 2), now=100) == {"m": 1}  # never below min
    finally:
        scaler.stop_all(5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[pool]]\naccess_code = 'm'\n", "'command' must be a list"),
        ("[[pool]]\naccess_code = 'a b'\ncommand = ['x']\n", "valid access code"),
        ("[[pool]]\naccess_code = 'm'\ncommand = ['x']\nmin = 3\nmax = 2\n", "min <= max"),
        ("[[pool]]\naccess_code = 'm'\ncommand = ['x']\nmax_executors = 2\n", "unknown keys"),
        ("title = 'x'\n", "expected a list 'pool'"),
    ],
)
def test_bad_pool_files_are_clear(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Pool.load_all(path)


def test_kernel_scales_real_executors_with_the_queue(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    command = debug_executor("m", "--delay", "0.05", "--max-concurrency", "2")
    pool = tmp_path / "pool.yaml"
    pool.write_text(
        "pool:\n  - access_code: m\n    min: 1\n    max: 3\n    scale_down_after: 1\n"
        f"    command: {command!r}\n".replace("'", '"')
    )
    try:
        stack.token = stack.create_user()
        env = {"KUWA_HEARTBEAT_TTL": "1.5"}
        kernel = stack.spawn("kernel", ["kernel", "start", "--pool", str(pool)], env)
        client = server.client()

        def live() -> int:
            return int(client.zcount(keys.queue_executors("m"), time.time(), "+inf"))

        wait_until(lambda: live() == 1, 30, "the minimum executor")
        base = stack.gateway()
        threads = [
            threading.Thread(
                target=httpx.post,
                args=(base + "/v1/chat/completions",),
                kwargs={
                    "headers": {"Authorization": f"Bearer {stack.token}"},
                    "json": {
                        "model": "m",
                        "messages": [{"role": "user", "content": " ".join(["w"] * 60)}],
                    },
                    "timeout": 60,
                },
            )
            for _ in range(12)
        ]
        for t in threads:
            t.start()
        wait_until(lambda: live() == 3, 30, "scaling up to max")
        for t in threads:
            t.join(60)
        wait_until(lambda: live() == 1, 30, "scaling down to min")
        assert "scaler: starting an executor" in kernel.text()
        assert "scaler: stopping an executor" in kernel.text()
        client.close()
    finally:
        stack.stop()
        server.stop()


def test_scaled_to_zero_model_starts_for_its_first_request(tmp_path: Path) -> None:
    """min = 0: nothing runs while idle; the first request waits while the kernel starts an
    executor, then gets its answer."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    command = debug_executor("zero", "--max-concurrency", "2")
    pool = tmp_path / "pool.toml"
    pool.write_text(
        f"[[pool]]\naccess_code = 'zero'\nmin = 0\nmax = 1\nscale_down_after = 1\n"
        f"command = {command!r}\n".replace("'", '"')
    )
    try:
        stack.token = stack.create_user()
        stack.spawn("kernel", ["kernel", "start", "--pool", str(pool)])
        client = server.client()
        wait_until(lambda: client.exists(keys.queue_standby("zero")) == 1, 20, "the standby flag")
        assert client.zcard(keys.queue_executors("zero")) == 0
        base = stack.gateway()
        started = time.monotonic()
        r = httpx.post(
            base + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {stack.token}"},
            json={"model": "zero", "messages": [{"role": "user", "content": "wake up"}]},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "wake up"
        assert time.monotonic() - started < 30
        wait_until(
            lambda: client.zcount(keys.queue_executors("zero"), time.time(), "+inf") == 0,
            30,
            "scaling back to zero",
        )
        client.close()
    finally:
        stack.stop()
        server.stop()
