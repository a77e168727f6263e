"""`kuwa-cli executor start/list` as an operator uses them (real processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kuwa import keys
from tests.stack import RedisServer, Stack, wait_until


def test_model_names_the_access_code_and_list_shows_the_executor(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        proc = stack.spawn(
            "executor",
            [
                "executor",
                "start",
                "--backend",
                "debug",
                "--model",
                "Org/My-Model-7B",
                "--max-concurrency",
                "3",
                "--name",
                "node-1",
            ],
        )
        client = server.client()
        wait_until(
            lambda: client.zcard(keys.queue_executors("my-model-7b")) == 1, 20, "registration"
        )
        out = subprocess.run(
            [sys.executable, "-m", "kuwa", "executor", "list"],
            env=stack.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.splitlines()
        assert out[0].split() == [
            "ID",
            "ACCESS",
            "CODES",
            "BACKEND",
            "MODEL",
            "HOST",
            "SLOTS",
            "TOK/S",
            "HEARTBEAT",
            "STATE",
        ]
        row = out[1].split()
        assert row[:4] == ["node-1", "my-model-7b", "debug", "debug-echo"]
        assert row[5] == "0/3" and row[-1] == "ready"
        proc.popen.terminate()
        assert proc.popen.wait(20) == 0
        empty = subprocess.run(
            [sys.executable, "-m", "kuwa", "executor", "list"],
            env=stack.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert empty.strip() == "no live executors"
        client.close()
    finally:
        stack.stop()
        server.stop()


def test_start_without_model_or_code_is_a_usage_error(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        got = subprocess.run(
            [sys.executable, "-m", "kuwa", "executor", "start"],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert got.returncode == 2
        assert "give --access-code (or --model" in got.stderr
        bad = subprocess.run(
            [
                sys.executable,
                "-m",
                "kuwa",
                "executor",
                "start",
                "--backend",
                "nope",
                "--access-code",
                "x",
            ],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode == 2 and "no executor backend 'nope'" in bad.stderr
    finally:
        server.stop()
