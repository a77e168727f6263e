"""The local scaler: the leader kernel starts and stops executor processes on this node.

A pool file (TOML or YAML) lists, per access code, how many executors to keep and how to
start one::

    [[pool]]
    access_code = "qwen2.5-7b-instruct"
    min = 1                     # never fewer (0: none while idle)
    max = 4
    command = ["kuwa-cli", "executor", "start", "--model", "Qwen/Qwen2.5-7B-Instruct"]
    scale_down_after = 60       # seconds the queue must be idle enough before one stops

Each tick it compares the executors it runs with ``kuwa_desired_executors`` (enough to run
every waiting and running job at once, clamped to min..max): it adds one at a time while
more are wanted (an executor that is still starting counts), and removes one (SIGTERM, which
drains) only after demand has stayed lower for ``scale_down_after`` seconds — hysteresis, so
a short lull does not stop an engine that took minutes to load.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kuwa import keys
from kuwa.broker.stats import QueueStats
from kuwa.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pool:
    access_code: str
    command: tuple[str, ...]
    min: int = 0
    max: int = 1
    scale_down_after: float = 60.0

    @classmethod
    def load_all(cls, path: Path) -> list[Pool]:
        try:
            raw = path.read_text()
            data: Any = tomllib.loads(raw) if path.suffix == ".toml" else yaml.safe_load(raw)
        except (OSError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the pool file: {exc}") from None
        entries = (data or {}).get("pool") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{path}: expected a list 'pool' of models")
        pools = []
        for i, entry in enumerate(entries, 1):
            where = f"{path}: pool {i}"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: expected a table")
            unknown = set(entry) - {"access_code", "command", "min", "max", "scale_down_after"}
            if unknown:
                raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
            code, command = entry.get("access_code"), entry.get("command")
            if not isinstance(code, str) or not keys.valid_access_code(code):
                raise ConfigError(f"{where}: 'access_code' must be a valid access code")
            if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
                raise ConfigError(f"{where}: 'command' must be a list of strings")
            pool = cls(
                code,
                tuple(command),
                int(entry.get("min", 0)),
                int(entry.get("max", 1)),
                float(entry.get("scale_down_after", 60.0)),
            )
            if not 0 <= pool.min <= pool.max or pool.max < 1:
                raise ConfigError(f"{where}: need 0 <= min <= max and max >= 1")
            pools.append(pool)
        return pools


@dataclass
class _Running:
    pool: Pool
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    low_since: float | None = None  # when demand first fell below what runs


class LocalScaler:
    def __init__(self, pools: list[Pool], env: dict[str, str]) -> None:
        self.env = env
        self.running = {p.access_code: _Running(p) for p in pools}
        self.stopping: list[subprocess.Popen[bytes]] = []  # draining after SIGTERM
        self.targets: dict[str, int] = {}  # the latest decision: executors wanted per pool

    def step(self, queues: list[QueueStats], now: float | None = None) -> dict[str, int]:
        """One scaling decision per pool; returns how many executors each now runs."""
        now = time.monotonic() if now is None else now
        self.stopping = [p for p in self.stopping if p.poll() is None]  # reap the drained
        stats = {q.model: q for q in queues}
        out = {}
        for code, run in self.running.items():
            run.procs = [p for p in run.procs if p.poll() is None]
            q = stats.get(code)
            wanted = q.desired_executors if q is not None else 0
            if q is not None and q.executors == 0 and run.procs:
                wanted = max(wanted, len(run.procs))  # still starting: do not pile up more
            target = min(max(wanted, run.pool.min), run.pool.max)
            self.targets[code] = target
            have = len(run.procs)
            if target > have:
                run.low_since = None
                self._start(run)
            elif target < have:
                run.low_since = run.low_since if run.low_since is not None else now
                if now - run.low_since >= run.pool.scale_down_after:
                    self._stop_one(run)
                    run.low_since = now  # one at a time, each after a full quiet period
            else:
                run.low_since = None
            out[code] = len([p for p in run.procs if p.poll() is None])
        return out

    def standby_codes(self) -> list[str]:
        """Models scaled to zero: requests may wait while the scaler starts an executor."""
        return [code for code, run in self.running.items() if run.pool.min == 0]

    def stop_all(self, timeout: float = 30.0) -> None:
        procs = [p for run in self.running.values() for p in run.procs if p.poll() is None]
        for run in self.running.values():
            run.procs = []
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        procs += self.stopping
        self.stopping = []
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _start(self, run: _Running) -> None:
        log.info(
            "scaler: starting an executor for %s (%d running)", run.pool.access_code, len(run.procs)
        )
        run.procs.append(
            subprocess.Popen(list(run.pool.command), env=self.env, start_new_session=True)
        )

    def _stop_one(self, run: _Running) -> None:
        proc = run.procs.pop()
        log.info("scaler: stopping an executor of %s (pid %d)", run.pool.access_code, proc.pid)
        proc.send_signal(signal.SIGTERM)  # it drains its jobs, then exits
        self.stopping.append(proc)
