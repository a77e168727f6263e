#!/usr/bin/env python3
"""Health checks for Kuwa's containers, with nothing but Python and Kuwa installed (no curl).

The image installs this file as ``kuwa-healthcheck``:

    kuwa-healthcheck [ROLE]   ROLE: gateway, executor, kernel or worker; without one, the role
                              is read from the container's command (PID 1's command line)
    kuwa-healthcheck URL      an http(s) URL that must answer 2xx

- gateway: ``GET /healthz`` on 127.0.0.1, port ``KUWA_PORT`` (8000): the process serves and
  reaches Redis;
- executor, kernel, worker: a process *of this container* (same host name, a pid that exists
  here) has a live heartbeat in Redis (``KUWA_REDIS_URL``): the executor registry, the kernel
  registry, RQ's worker registry.

Exit status 0 when healthy, 1 when not, with one line that says why (Docker's HEALTHCHECK and
Kubernetes' exec probes read the status; ``docker inspect`` shows the line).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

ROLES = ("gateway", "executor", "kernel", "worker")
TIMEOUT = 4.0


class Unhealthy(Exception):
    """What is wrong, in one line."""


def role_of_pid1(cmdline: Path = Path("/proc/1/cmdline")) -> str:
    """The role in the container's command: ``kuwa-cli ROLE start …`` (behind an init or
    not), or ``gateway`` for ``kuwa-cli up``, which serves the gateway."""
    try:
        argv = [a for a in cmdline.read_bytes().decode(errors="replace").split("\0") if a]
    except OSError as exc:
        raise Unhealthy(f"cannot read the container's command: {exc}") from None
    for i, arg in enumerate(argv):
        if Path(arg).name == "kuwa-cli" or (arg == "kuwa" and argv[i - 1 : i] == ["-m"]):
            rest = argv[i + 1 :]
            if rest[:1] == ["up"]:
                return "gateway"
            if rest[:1] and rest[0] in ROLES:
                return rest[0]
    raise Unhealthy(f"no Kuwa role in the container's command {argv}; name one: {ROLES}")


def check_url(url: str) -> str:
    request = urllib.request.Request(url)  # noqa: S310 (the operator's own URL)
    token = os.environ.get("KUWA_METRICS_TOKEN")
    if token and url.rstrip("/").endswith("/metrics"):
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:
        raise Unhealthy(f"{url}: {exc.code} {exc.read(300).decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unhealthy(f"{url}: {getattr(exc, 'reason', exc)}") from None


def check_gateway() -> str:
    port = os.environ.get("KUWA_PORT") or "8000"
    return check_url(f"http://127.0.0.1:{port}/healthz")


def _ours(host: str, pid: int) -> bool:
    """Is ``host``/``pid`` a process of this container?"""
    return host == socket.gethostname() and pid > 0 and Path(f"/proc/{pid}").exists()


def _redis_url() -> str:
    from kuwa.settings import DEFAULT_REDIS_URL

    return os.environ.get("KUWA_REDIS_URL") or DEFAULT_REDIS_URL


async def _with_redis(probe: Callable[[Redis], Awaitable[str]]) -> str:
    from kuwa.broker import connect

    redis = connect(_redis_url(), max_connections=4)
    try:
        return await asyncio.wait_for(probe(redis), TIMEOUT)
    except TimeoutError:
        raise Unhealthy("Redis did not answer in time") from None
    except OSError as exc:
        raise Unhealthy(f"Redis is unreachable: {exc}") from None
    finally:
        await redis.aclose()


async def _executor(redis: Redis) -> str:
    from kuwa.broker import Registry

    live = await Registry(redis).executors()
    mine = [e for e in live if _ours(e.host, e.pid)]
    if not mine:
        raise Unhealthy("no executor of this container has a live heartbeat")
    return ", ".join(f"executor {e.id} {e.state}, {e.used}/{e.slots} slots" for e in mine)


async def _kernel(redis: Redis) -> str:
    from kuwa.broker.kernels import kernels

    mine = [k for k in await kernels(redis) if k.live and _ours(k.host, k.pid)]
    if not mine:
        raise Unhealthy("no kernel of this container has a live heartbeat")
    return ", ".join(f"kernel {k.id} {'leader' if k.leader else 'standby'}" for k in mine)


def check_worker() -> str:
    from redis import Redis
    from redis.exceptions import RedisError
    from rq import Worker

    connection = Redis.from_url(_redis_url(), socket_timeout=TIMEOUT)
    try:
        workers = Worker.all(connection=connection)
    except (RedisError, OSError) as exc:
        raise Unhealthy(f"Redis is unreachable: {exc}") from None
    finally:
        connection.close()
    mine = [w for w in workers if _ours(w.hostname or "", w.pid or 0)]
    if not mine:
        raise Unhealthy("no RQ worker of this container is registered")
    return ", ".join(f"worker {w.name} {w.get_state()}" for w in mine)


def check(target: str | None) -> str:
    role = target or role_of_pid1()
    if role.startswith(("http://", "https://")):
        return check_url(role)
    if role == "gateway":
        return check_gateway()
    if role == "executor":
        return _run(_executor)
    if role == "kernel":
        return _run(_kernel)
    if role == "worker":
        return check_worker()
    raise Unhealthy(f"unknown role {role!r}; use one of {ROLES} or a URL")


def _run(probe: Callable[[Redis], Awaitable[str]]) -> str:
    from redis.exceptions import RedisError

    try:
        return asyncio.run(_with_redis(probe))
    except RedisError as exc:
        raise Unhealthy(f"Redis failed: {exc}") from None


def main(argv: list[str]) -> int:
    started = time.monotonic()
    try:
        said = check(argv[1] if len(argv) > 1 else None)
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", flush=True)
        return 1
    print(f"healthy: {said} ({time.monotonic() - started:.2f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
