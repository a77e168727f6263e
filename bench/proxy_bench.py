"""CPU per token through Kuwa's broker hop, with the ``openai`` backend in front of a fast
fake upstream, paced and unpaced (#20).

Starts, as real processes: two fake OpenAI upstreams (``bench/direct_server.py``: one
unpaced, one that sleeps ``--pace-ms`` before each token, the shape of a real model's
output) and, per Kuwa build under test, a private ``redis-server``, one gateway (default
settings) and three executors: ``openai`` backends in front of each upstream (access codes
``proxy`` and ``paced``) and a debug backend at zero delay (``debug``). Every Kuwa process
is pinned to core 0; the upstreams and the load client (``bench/stream_client.py``) to
core 1. CPU time per process comes from ``/proc``; tokens are counted from the answers'
text (Kuwa coalesces, so events are not tokens).

Each level runs, in turn, through Kuwa (A, and B with ``--b-env``), and straight into the
upstream (``direct``, the baseline for TTFT and inter-token gaps), ``--rounds`` times. It
prints, per level and build, Kuwa's CPU per 1,000 tokens (gateway / executor / Redis), its
wake-ups per 1,000 tokens (voluntary context switches, from ``/proc``: a count that a busy
machine hardly changes, unlike CPU time), the
tokens per second one core could carry at that cost, TTFT p50 / p99 added over the direct
call, and for paced levels the gaps between reads that brought text (p50 / p99), direct and
through Kuwa.

    .venv/bin/python bench/proxy_bench.py [--rounds 2] [--tokens 64] [--pace-ms 10]
        [--levels one,32,1000,paced1,paced8,paced256,plain64,debug256] [--b-env PYTHONPATH=…/src]
        [--profile DIR] [--json OUT]

``--b-env NAME=VALUE`` (repeatable) starts a second Kuwa (B) with that environment, e.g. the
``src`` of another checkout, so a change is measured before and after in one run.
This is a benchmark, not a test: it prints figures and exits 0 unless the processes could
not be started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_figures import percentile  # noqa: E402
from procinfo import cpu_seconds, descendants, wakeups  # noqa: E402
from profiling import start_profilers, stop_profilers, summarize_profile  # noqa: E402
from stream_bench import make_prompt  # noqa: E402

from tests.stack import RedisServer, Stack, free_port, wait_until  # noqa: E402

KUWA_CORE, OTHER_CORE = {0}, {1}
SLOTS = 1024


@dataclass(frozen=True)
class Level:
    name: str
    label: str
    model: str  # proxy, paced or debug
    streams: int
    per_stream: int
    stream: bool = True


LEVELS = {
    "one": Level("one", "1 stream, unpaced", "proxy", 1, 64),
    "32": Level("32", "32 streams, unpaced", "proxy", 32, 8),
    "1000": Level("1000", "1,000 streams, unpaced", "proxy", 1000, 1),
    "paced1": Level("paced1", "1 stream, paced", "paced", 1, 8),
    "paced8": Level("paced8", "8 streams, paced", "paced", 8, 4),
    "paced256": Level("paced256", "256 streams, paced", "paced", 256, 1),
    "plain64": Level("plain64", "64 non-streamed at once", "proxy", 64, 4, stream=False),
    "debug256": Level("debug256", "debug backend, 256 streams", "debug", 256, 2),
}


def pin(pid: int, cores: set[int]) -> None:
    """Pin every thread of ``pid`` and of its descendants to ``cores``."""
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task), cores)


def start_upstream(folder: Path, pace_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / f"upstream-{port}.log"
    command = [sys.executable, str(ROOT / "bench" / "direct_server.py"), "--port", str(port)]
    command += ["--pace-ms", str(pace_ms), "--no-access-log"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"upstream exited:\n{log.read_text()}")
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 30, "the fake upstream")
    return proc, url


@dataclass
class Kuwa:
    """One Kuwa build: Redis, a gateway, and an executor per model."""

    name: str
    redis: RedisServer
    stack: Stack
    url: str = ""
    pids: dict[str, int] = field(default_factory=dict)  # gateway, redis, proxy, paced, debug

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def wakeups(self) -> dict[str, int]:
        return {name: wakeups(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.stack.stop()
        self.redis.stop()


def start_kuwa(name: str, folder: Path, upstreams: dict[str, str], env: dict[str, str]) -> Kuwa:
    folder.mkdir(parents=True)
    redis = RedisServer(folder / "redis")
    stack = Stack(folder, redis)
    kuwa = Kuwa(name, redis, stack)
    try:
        stack.token = stack.create_user("bench@example.com")
        kuwa.url = stack.gateway(env)
        kuwa.pids = {"gateway": stack.procs[-1].popen.pid, "redis": redis.proc.pid}
        for code, upstream in upstreams.items():
            args = ["executor", "start", "--backend", "openai", "--access-code", code]
            args += ["--base-url", upstream + "/v1", "--upstream-model", "fake"]
            args += ["--max-concurrency", str(SLOTS), "--name", f"{name}-{code}"]
            proc = stack.spawn(f"executor-{code}", args, env)
            stack.wait_executor(proc, (code,))
            kuwa.pids[code] = proc.popen.pid
        proc = stack.executor(
            "debug", concurrency=SLOTS, name=f"{name}-debug", env=env, ready_timeout=30
        )
        kuwa.pids["debug"] = proc.popen.pid
    except BaseException:
        kuwa.stop()
        raise
    for pid in kuwa.pids.values():
        pin(pid, KUWA_CORE)
    return kuwa


class Client:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "stream_client.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        pin(self.proc.pid, OTHER_CORE)

    def ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark client exited")
        reply: dict[str, Any] = orjson.loads(line)
        return reply

    def stop(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.ask({"op": "quit"})
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_kuwa(client: Client, kuwa: Kuwa, level: Level) -> dict[str, Any]:
    before, woke = kuwa.cpu(), kuwa.wakeups()
    reply = client.ask(
        {
            "op": "run",
            "target": kuwa.name,
            "model": level.model,
            "streams": level.streams,
            "per_stream": level.per_stream,
            "max_tokens": None,
            "stream": level.stream,
            "itl": level.model == "paced",
        }
    )
    after, awake = kuwa.cpu(), kuwa.wakeups()
    reply["cpu"] = {
        "gateway": after["gateway"] - before["gateway"],
        "executor": after[level.model] - before[level.model],
        "redis": after["redis"] - before["redis"],
    }
    reply["wakeups"] = {
        "gateway": awake["gateway"] - woke["gateway"],
        "executor": awake[level.model] - woke[level.model],
        "redis": awake["redis"] - woke["redis"],
    }
    return reply


def run_direct(client: Client, level: Level) -> dict[str, Any]:
    return client.ask(
        {
            "op": "run",
            "target": "direct_paced" if level.model == "paced" else "direct",
            "model": "fake",
            "streams": level.streams,
            "per_stream": level.per_stream,
            "max_tokens": None,
            "stream": level.stream,
            "itl": level.model == "paced",
        }
    )


def figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the runs of one build at one level."""
    tokens = sum(r["tokens"] for r in runs)
    wall = sum(r["wall_s"] for r in runs)
    ttft = [t for r in runs for t in r["ttft_s"]]
    gaps = [g for r in runs for g in r.get("gaps_s", [])]
    out: dict[str, Any] = {
        "tokens": tokens,
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(sum(r["errors"].values()) for r in runs),
        "error_kinds": sorted({k for r in runs for k in r["errors"]}),
        "tokens_per_s": tokens / wall if wall else 0.0,
        "ttft_p50_ms": 1000 * percentile(ttft, 0.5) if ttft else float("nan"),
        "ttft_p99_ms": 1000 * percentile(ttft, 0.99) if ttft else float("nan"),
        "gap_p50_ms": 1000 * percentile(gaps, 0.5) if gaps else float("nan"),
        "gap_p99_ms": 1000 * percentile(gaps, 0.99) if gaps else float("nan"),
    }
    if "cpu" in runs[0]:
        cpu = {k: sum(r["cpu"][k] for r in runs) for k in runs[0]["cpu"]}
        total = sum(cpu.values())
        per_k = {k: 1000 * v / tokens if tokens else float("nan") for k, v in cpu.items()}
        out["cpu_per_1000"] = per_k
        out["cpu_per_1000_total"] = 1000 * total / tokens if tokens else float("nan")
        out["tokens_per_core_s"] = tokens / total if total else float("nan")
        out["requests_per_core_s"] = out["requests"] / total if total else float("nan")
        woke = {k: sum(r["wakeups"][k] for r in runs) for k in runs[0]["wakeups"]}
        out["wakeups_per_1000"] = {
            k: 1000 * v / tokens if tokens else float("nan") for k, v in woke.items()
        }
    return out


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--pace-ms", type=float, default=10.0)
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--profile", type=Path, help="py-spy the A build's processes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    levels = [LEVELS[name] for name in args.levels.split(",")]
    b_env = dict(item.split("=", 1) for item in args.b_env)
    prompt = make_prompt(args.tokens)
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores: Kuwa on one, the upstreams and the client on the other")

    folder = Path(tempfile.mkdtemp(prefix="kuwa-proxy-bench-"))
    upstream_procs: list[subprocess.Popen[bytes]] = []
    builds: list[Kuwa] = []
    client: Client | None = None
    results: list[dict[str, Any]] = []
    try:
        plain, plain_url = start_upstream(folder, 0.0)
        paced, paced_url = start_upstream(folder, args.pace_ms)
        upstream_procs += [plain, paced]
        for proc in upstream_procs:
            pin(proc.pid, OTHER_CORE)
        upstreams = {"proxy": plain_url, "paced": paced_url}
        builds.append(start_kuwa("A", folder / "A", upstreams, {}))
        if b_env:
            builds.append(start_kuwa("B", folder / "B", upstreams, b_env))
        client = Client()
        targets = {k.name: k.url for k in builds} | {"direct": plain_url}
        targets["direct_paced"] = paced_url
        token = builds[0].stack.token
        client.ask(
            {"op": "init", "targets": targets, "token": token, "model": "proxy",
             "prompt": prompt, "timeout": 120}
        )  # fmt: skip
        for k in builds[1:]:  # each build has its own user and token
            client.ask({"op": "target", "name": k.name, "url": k.url, "token": k.stack.token})
        for k in builds:  # warm every path up
            for model in ("proxy", "paced", "debug"):
                client.ask({"op": "run", "target": k.name, "model": model, "streams": 8,
                            "per_stream": 1, "max_tokens": 4})  # fmt: skip
        profilers = []
        if args.profile:
            profilers = start_profilers(builds[0].pids, args.profile)
        print(f"load average at start: {loadavg():.2f}", flush=True)
        for level in levels:
            runs: dict[str, list[dict[str, Any]]] = {k.name: [] for k in builds}
            runs["direct"] = []
            loads = [loadavg()]
            for _ in range(args.rounds):
                for k in builds:
                    runs[k.name].append(run_kuwa(client, k, level))
                if level.model != "debug":
                    runs["direct"].append(run_direct(client, level))
                loads.append(loadavg())
            row: dict[str, Any] = {"level": level.name, "label": level.label, "load": loads}
            for name, rs in runs.items():
                if rs:
                    row[name] = figures(rs)
            results.append(row)
            print_level(row, [k.name for k in builds])
        if profilers:
            stop_profilers(profilers)
            for name in builds[0].pids:
                print(f"\n--- profile: {name}\n" + summarize_profile(args.profile / f"{name}.txt"))
    finally:
        if client is not None:
            client.stop()
        for k in builds:
            k.stop()
        for proc in upstream_procs:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
    if args.json:
        args.json.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


def print_level(row: dict[str, Any], builds: list[str]) -> None:
    direct = row.get("direct")
    print(f"\n{row['label']} (1-min load {min(row['load']):.1f}-{max(row['load']):.1f})")
    for name in builds:
        f = row[name]
        cpu, wake = f["cpu_per_1000"], f["wakeups_per_1000"]
        line = (
            f"  {name}: CPU per 1,000 tokens {f['cpu_per_1000_total']:.3f} s "
            f"({cpu['gateway']:.3f} / {cpu['executor']:.3f} / {cpu['redis']:.3f})"
            f", {f['tokens_per_core_s']:,.0f} tokens/s per core"
            f", {f['requests_per_core_s']:,.0f} requests/s per core"
            f", wall {f['tokens_per_s']:,.0f} tokens/s"
            f", wake-ups per 1,000 tokens {wake['gateway']:,.0f} / {wake['executor']:,.0f}"
            f" / {wake['redis']:,.0f}"
            f", TTFT p50/p99 {f['ttft_p50_ms']:.1f}/{f['ttft_p99_ms']:.1f} ms"
        )
        if direct:
            line += (
                f" (+{f['ttft_p50_ms'] - direct['ttft_p50_ms']:.1f}"
                f"/+{f['ttft_p99_ms'] - direct['ttft_p99_ms']:.1f})"
            )
        if f["gap_p50_ms"] == f["gap_p50_ms"]:  # not NaN: a paced level
            line += f", gaps p50/p99 {f['gap_p50_ms']:.1f}/{f['gap_p99_ms']:.1f} ms"
            if direct:
                line += f" (+{f['gap_p99_ms'] - direct['gap_p99_ms']:.1f} at p99)"
        if f["errors"]:
            line += f", ERRORS {f['errors']} {f['error_kinds']}"
        print(line, flush=True)
    if direct:
        print(
            f"  direct: TTFT p50/p99 {direct['ttft_p50_ms']:.1f}/{direct['ttft_p99_ms']:.1f} ms"
            + (
                f", gaps p50/p99 {direct['gap_p50_ms']:.1f}/{direct['gap_p99_ms']:.1f} ms"
                if direct["gap_p50_ms"] == direct["gap_p50_ms"]
                else ""
            )
            + (f", ERRORS {direct['errors']}" if direct["errors"] else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()
