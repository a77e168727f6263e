"""The child processes of ``kuwa-cli up``: started, watched, restarted, stopped.

Each part (the private redis-server, the kernel, the worker, the demo executors, the gateway)
is a child in a session of its own, so a Ctrl-C in the terminal reaches ``up`` alone and
``up`` stops them in order. Their lives are tied to ``up``'s: on Linux each child gets
SIGTERM from the kernel the moment ``up`` dies, however it dies (``PR_SET_PDEATHSIG``), so a
``kill -9`` of ``up`` leaves no orphan behind. A part that exits by itself is started again
after a pause that doubles with each crash in a row (1 s up to 30 s, back to 1 s after a
minute of running), and each exit and restart is logged; a part that keeps dying at once
(five times in a row within 10 s of starting) stops everything, since restarting it is no
use.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import click

RESTART_FIRST = 1.0  # seconds before the first restart of a part that exited
RESTART_MAX = 30.0
STABLE_AFTER = 60.0  # a run this long resets the back-off
QUICK_EXIT = 10.0  # an exit this soon after starting counts towards giving up
GIVE_UP_AFTER = 5  # quick exits in a row
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies (Linux);
    None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


@dataclass
class Part:
    name: str
    argv: list[str]
    env: dict[str, str] | None
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    quick_exits: int = 0  # exits in a row within QUICK_EXIT of starting
    pause: float = RESTART_FIRST
    restart_at: float | None = None  # set while the part waits to be started again


class GaveUp(click.ClickException):
    """A part keeps exiting as soon as it starts."""


class Supervisor:
    """Starts parts, restarts those that exit, stops them all (last started, first stopped)."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self.parts: list[Part] = []
        self.echo = echo or (lambda message: click.echo(f"up: {message}", err=True))
        self._preexec = die_with_parent()

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Part:
        part = Part(name, argv, env, self._popen(argv, env))
        self.parts.append(part)
        return part

    def _popen(self, argv: list[str], env: dict[str, str] | None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=self._preexec)

    def dead(self) -> list[Part]:
        """Parts that have exited and not been started again yet."""
        return [p for p in self.parts if p.restart_at is None and p.proc.poll() is not None]

    def watch(self) -> None:
        """One look at every part: schedule restarts of those that exited, start those due.
        Raises :class:`GaveUp` for a part that keeps exiting as soon as it starts."""
        now = time.monotonic()
        for part in self.parts:
            if part.restart_at is None:
                code = part.proc.poll()
                if code is None:
                    continue
                ran = now - part.started
                if ran >= STABLE_AFTER:
                    part.pause, part.quick_exits = RESTART_FIRST, 0
                part.quick_exits = part.quick_exits + 1 if ran < QUICK_EXIT else 0
                if part.quick_exits >= GIVE_UP_AFTER:
                    raise GaveUp(
                        f"{part.name} exited with status {code} {part.quick_exits} times in a "
                        "row right after starting; stopping (see its output above)"
                    )
                self.echo(
                    f"{part.name} exited with status {code} after {ran:.1f} s; "
                    f"starting it again in {part.pause:g} s"
                )
                part.restart_at = now + part.pause
                part.pause = min(part.pause * 2, RESTART_MAX)
            elif now >= part.restart_at:
                part.proc = self._popen(part.argv, part.env)
                part.started, part.restart_at = now, None
                self.echo(f"{part.name} started again (pid {part.proc.pid})")

    def run(self, interval: float = 0.2) -> None:
        """Watch until interrupted (KeyboardInterrupt) or a part gives up."""
        while True:
            self.watch()
            time.sleep(interval)

    def stop(self, names_last: tuple[str, ...] = ()) -> None:
        """SIGTERM every part, newest first (``names_last`` after all others), wait up to 15 s
        each, then kill what is left."""
        first = [p for p in reversed(self.parts) if p.name not in names_last]
        last = [p for p in reversed(self.parts) if p.name in names_last]
        for group in (first, last):
            for part in group:
                if part.proc.poll() is None:
                    part.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for part in group:
                try:
                    part.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.echo(f"{part.name} did not stop in time; killing it")
                    part.proc.kill()
                    part.proc.wait()
