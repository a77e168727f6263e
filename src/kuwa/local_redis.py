"""The private Redis of ``kuwa-cli up``: where its socket lives, and whether one answers there.

``up`` starts redis-server on a unix socket in the data folder. Commands run beside it on the
same data folder (a second terminal's ``executor start``, ``executor list``, ``worker``, …)
find it here when ``KUWA_REDIS_URL`` is unset, so they join ``up``'s Redis instead of one on
127.0.0.1:6379 (``Settings.effective_redis_url``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

SOCKET_NAME = "redis.sock"
OWNER_NAME = "up.pid"  # the process id of the `up` whose Redis answers on the socket
MAX_SOCKET_PATH = 100
"""Unix socket paths are limited to about 107 bytes; ``up`` uses TCP for longer ones."""
PING_TIMEOUT = 0.5


def socket_path(data_dir: Path) -> Path:
    """Where ``up`` puts its Redis socket for ``data_dir`` (if the path is short enough)."""
    return data_dir.resolve() / SOCKET_NAME


def running_url(data_dir: Path) -> str | None:
    """``unix://…`` of the Redis of an ``up`` running on ``data_dir``, if one answers PING."""
    path = socket_path(data_dir)
    if len(str(path)) >= MAX_SOCKET_PATH or not path.is_socket():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(PING_TIMEOUT)
            sock.connect(str(path))
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            answered = sock.recv(64).startswith(b"+PONG")
    except OSError:  # nobody listens (a socket left behind), or not ours to use
        return None
    return f"unix://{path}" if answered else None


@dataclass(frozen=True, slots=True)
class Owner:
    pid: int
    alive: bool


def owner_file(data_dir: Path) -> Path:
    return data_dir.resolve() / OWNER_NAME


def owner(data_dir: Path) -> Owner | None:
    """The ``up`` that started the Redis on ``data_dir`` (from its pid file), if it says."""
    try:
        pid = int(owner_file(data_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return Owner(pid, alive=False)
    except PermissionError:  # alive, someone else's
        pass
    return Owner(pid, alive=True)


def shutdown(data_dir: Path, timeout: float = 10) -> None:
    """Stop the Redis on ``data_dir``'s socket (``SHUTDOWN NOSAVE``: it holds nothing of
    lasting value) and wait until it no longer answers."""
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
    ):
        sock.settimeout(PING_TIMEOUT)
        sock.connect(str(socket_path(data_dir)))
        sock.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
        sock.recv(64)  # the connection closes as the server exits
    deadline = time.monotonic() + timeout
    while running_url(data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
