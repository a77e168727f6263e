"""Real processes for end-to-end tests: a private redis-server, gateways and executors.

Every process is a real ``python -m kuwa …`` (or ``redis-server``) child on a free port or a
unix socket in a temporary folder; logs go to files the tests can read.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from kuwa import keys
from kuwa.accounts import Accounts, close_database, open_database
from kuwa.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    """A private redis-server on a free port (nothing on disk, nothing shared).

    ``binds``: the addresses it listens on (more than loopback, e.g. a veth link's host end,
    turns Redis's protected mode off so other hosts may connect); ``url_at(address)`` is the
    URL a client on another host uses."""

    def __init__(self, folder: Path, binds: tuple[str, ...] = ("127.0.0.1",)) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.binds = binds
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server must be installed (the test command installs it)"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                *self.binds,
                "--protected-mode",
                "yes" if self.binds == ("127.0.0.1",) else "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.folder / "redis.log"),
            ],
        )
        client = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(up, 10, "redis-server")
        client.close()

    def restart(self, down_for: float = 0.5) -> None:
        """Stop the server (losing everything, like a crash without persistence), start again."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def url_at(self, address: str) -> str:
        return f"redis://{address}:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


def _default_database_url() -> str | None:
    from tests.dbfixtures import default_database_url  # late: pytest loads it as a plugin

    return default_database_url()


@dataclass
class Stack:
    """A data folder, a Redis, a user with a token, and the processes started on them."""

    folder: Path
    redis: RedisServer
    token: str = ""
    procs: list[Proc] = field(default_factory=list)
    base_url: str = ""
    # None: SQLite in the data folder; `pytest --db=postgres` gives a fresh PostgreSQL database.
    database_url: str | None = field(default_factory=lambda: _default_database_url())

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUWA_")}
        env.update(
            KUWA_REDIS_URL=self.redis.url,
            KUWA_DATA_DIR=str(self.folder / "data"),
            PYTHONUNBUFFERED="1",
        )
        if self.database_url:
            env["KUWA_DATABASE_URL"] = self.database_url
        return env

    def settings(self) -> Settings:
        return Settings(
            data_dir=self.folder / "data", redis_url=self.redis.url, database_url=self.database_url
        )

    def create_user(self, email: str = "tester@example.com") -> str:
        settings = self.settings()
        db = open_database(settings)
        try:
            accounts = Accounts(db, settings.load_secret_key())
            user = accounts.find_user(email) or accounts.create_user(
                email, "Tester", "correct horse battery"
            )
            return accounts.ensure_token(user.id)
        finally:
            close_database(db)

    def spawn(
        self,
        name: str,
        args: list[str],
        extra_env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ) -> Proc:
        """Start ``python -m kuwa ARGS``; ``prefix`` goes before it (e.g. ``ip netns exec NS``,
        which execs the command, so the process id stays the command's)."""
        log = self.folder / f"{name}.log"
        env = self.env | (extra_env or {})
        command = [*(prefix or []), sys.executable, "-m", "kuwa", *args]
        with log.open("wb") as fh:
            popen = subprocess.Popen(command, env=env, stdout=fh, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def gateway(self, extra_env: dict[str, str] | None = None, ready_timeout: float = 30) -> str:
        port = free_port()
        proc = self.spawn(f"gateway-{port}", ["gateway", "start", "--port", str(port)], extra_env)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{proc.text()}")
            try:
                return httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, ready_timeout, "the gateway")
        self.base_url = self.base_url or url
        return url

    def executor(
        self,
        *codes: str,
        delay: float = 0.0,
        concurrency: int = 16,
        transform: str = "echo",
        name: str | None = None,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
        ready_timeout: float = 30,
    ) -> Proc:
        args = [
            "executor",
            "start",
            "--backend",
            "debug",
            "--delay",
            str(delay),
            "--max-concurrency",
            str(concurrency),
            "--debug-transform",
            transform,
        ]
        for code in codes:
            args += ["--access-code", code]
        if name:
            args += ["--name", name]
        proc = self.spawn(
            name or f"executor-{'-'.join(codes)}-{len(self.procs)}",
            args + (extra or []),
            env,
            prefix,
        )
        self.wait_executor(proc, codes, ready_timeout)
        return proc

    def wait_executor(self, proc: Proc, codes: tuple[str, ...], timeout: float = 30) -> None:
        """Wait until an executor process is live (registered) for every access code."""
        client = self.redis.client()

        def live() -> bool:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"executor exited:\n{proc.text()}")
            now = time.time()
            return all(client.zcount(keys.queue_executors(c), now, "+inf") > 0 for c in codes)

        try:
            wait_until(live, timeout, f"executor for {codes}")
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM every process at once, then wait for each (killing stragglers)."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
