"""A Redis primary, its replica and three Sentinels, as real processes on free ports.

Debian's ``redis-server`` runs as a Sentinel with ``--sentinel``. The Sentinels judge the
primary down after ``down_after_ms`` without an answer and agree on it in twos (quorum 2), so a
``kill -9`` of the primary promotes the replica within a few seconds.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.stack import free_port, wait_until

SERVICE = "kuwa"


def _binary() -> str:
    binary = shutil.which("redis-server")
    assert binary, "redis-server must be installed (the test command installs it)"
    return binary


class Node:
    """One redis-server process (a data server or a Sentinel) on a free port."""

    def __init__(self, folder: Path, name: str, args: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.name, self.port = folder, name, free_port()
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, extra: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [
                _binary(),
                *self.args,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.folder / f"{self.name}.log"),
                *(extra or []),
            ]
        )
        client = self.client()

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_until(up, 10, self.name)
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def log(self) -> str:
        path = self.folder / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class SentinelGroup:
    """A primary, one replica and three Sentinels watching them as ``SERVICE``."""

    def __init__(
        self, folder: Path, *, down_after_ms: int = 1000, failover_timeout_ms: int = 3000
    ) -> None:
        data = ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
        self.primary = Node(folder / "primary", "primary", data)
        self.replica = Node(folder / "replica", "replica", data)
        self.sentinels: list[Node] = []
        try:
            self._start(folder, down_after_ms, failover_timeout_ms)
        except BaseException:
            self.stop()
            raise

    def _start(self, folder: Path, down_after_ms: int, failover_timeout_ms: int) -> None:
        self.primary.start()
        self.replica.start(["--replicaof", "127.0.0.1", str(self.primary.port)])
        for i in range(3):
            node_dir = folder / f"sentinel-{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            conf = node_dir / "sentinel.conf"  # a Sentinel rewrites its config file
            conf.write_text(
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            node = Node(node_dir, f"sentinel-{i}", [str(conf), "--sentinel"])
            node.start()
            self.sentinels.append(node)
        wait_until(self._ready, 20, "the replica in sync and every Sentinel aware of the rest")

    def _ready(self) -> bool:
        with self.replica.client() as replica:
            info = replica.info("replication")
        if info.get("master_link_status") != "up":
            return False
        for node in self.sentinels:
            with node.client() as client:
                state = client.sentinel_master(SERVICE)
            if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 1:
                return False
        return True

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}"

    def primary_port(self) -> int:
        """The primary's port as the first Sentinel that answers sees it now."""
        for node in self.sentinels:
            try:
                with node.client() as client:
                    _, port = client.sentinel_get_master_addr_by_name(SERVICE)
                return int(port)
            except redis.RedisError:
                continue
        raise RuntimeError("no Sentinel answers")

    def wait_promoted(self, timeout: float = 30) -> float:
        """Wait until the Sentinels name the replica as the primary; seconds it took."""
        started = time.monotonic()
        wait_until(lambda: self.primary_port() == self.replica.port, timeout, "a failover")
        return time.monotonic() - started

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            node.stop()
