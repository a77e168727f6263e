"""The private Redis of ``kuwa-cli up``: where its socket lives, and whether one answers there.

``up`` starts redis-server on a unix socket in the data folder. Commands run beside it on the
same data folder (a second terminal's ``executor start``, ``executor list``, ``worker``, …)
find it here when ``KUWA_REDIS_URL`` is unset, so they join ``up``'s Redis instead of one on
127.0.0.1:6379 (``Settings.effective_redis_url``).
"""

from __future__ import annotations

import socket
from pathlib import Path

SOCKET_NAME = "redis.sock"
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
