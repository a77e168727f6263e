"""Linux network namespaces joined to the host by a veth pair, for multi-host tests.

``veth_namespace()`` makes a namespace whose only way out is a point-to-point link
(``10.200.N.1`` on the host side, ``10.200.N.2`` inside), so a process started in it with
:meth:`Namespace.prefix` reaches the host only at ``host_ip`` — never at 127.0.0.1, which
inside the namespace is its own, empty loopback. Everything is removed on exit, also when the
test fails. Needs root (or CAP_NET_ADMIN) and ``ip`` from iproute2; :func:`unavailable` says
why not when a machine or container forbids it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass


class NetnsError(RuntimeError):
    """An ``ip`` command failed."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("ip")
    if binary is None:
        raise NetnsError("the ip command (iproute2) is not installed")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=10)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


@dataclass(frozen=True)
class Namespace:
    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    def prefix(self) -> list[str]:
        """Prepend to a command line to run it inside the namespace (``ip`` execs it, so the
        process id is the command's own)."""
        return ["ip", "netns", "exec", self.name]

    def pids(self) -> list[int]:
        done = _ip("netns", "pids", self.name, check=False)
        return [int(p) for p in done.stdout.split()]

    def reaches(self, host: str, port: int) -> bool:
        """Can a process in the namespace open a TCP connection to ``host:port``?"""
        probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=5)"
        done = subprocess.run(
            [*self.prefix(), sys.executable, "-c", probe], capture_output=True, timeout=60
        )
        return done.returncode == 0


def _used_subnets() -> set[int]:
    out = _ip("-o", "-4", "addr", "show").stdout
    used = set()
    for word in out.split():
        if word.startswith("10.200."):
            with contextlib.suppress(ValueError, IndexError):
                used.add(int(word.split(".")[2]))
    return used


def _free_subnet() -> int:
    used = _used_subnets()
    start = os.getpid() % 250
    for i in range(250):
        n = 1 + (start + i) % 250
        if n not in used:
            return n
    raise NetnsError("no free 10.200.N.0/30 subnet")


@functools.cache
def unavailable() -> str | None:
    """Why network namespaces with veth links cannot be used here (None: they can)."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    try:
        with veth_namespace():
            pass
    except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
        return f"network namespaces with veth links are not allowed here: {exc}"
    return None


@contextlib.contextmanager
def veth_namespace() -> Iterator[Namespace]:
    """A fresh namespace linked to the host over veth; removed (with its processes) on exit."""
    tag = f"{os.getpid() % 100000}{os.urandom(2).hex()}"
    n = _free_subnet()
    ns = Namespace(
        name=f"kuwa-test-{tag}",
        host_if=f"kvh{tag}"[:15],
        ns_if=f"kvn{tag}"[:15],
        host_ip=f"10.200.{n}.1",
        ns_ip=f"10.200.{n}.2",
    )
    try:
        _ip("netns", "add", ns.name)
        _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
        _ip("link", "set", ns.ns_if, "netns", ns.name)
        _ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
        _ip("link", "set", ns.host_if, "up")
        inside = ("netns", "exec", ns.name, "ip")
        _ip(*inside, "addr", "add", f"{ns.ns_ip}/30", "dev", ns.ns_if)
        _ip(*inside, "link", "set", ns.ns_if, "up")
        _ip(*inside, "link", "set", "lo", "up")
        yield ns
    finally:
        _remove(ns)


def _remove(ns: Namespace) -> None:
    """Kill what still runs in the namespace (only processes this test started there), then
    delete the namespace and the host end of the link (deleting one end removes both)."""
    for pid in ns.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _ip("netns", "delete", ns.name, check=False)
    _ip("link", "delete", ns.host_if, check=False)
