"""Streaming benchmark: a direct baseline and Kuwa (one and two gateway processes), side by
side in one run.

Starts, as real processes: a private ``redis-server``; two Kuwa gateways (``python -m kuwa
gateway start``): K1 with one process and K2 with ``--workers 2`` (uvicorn's supervisor and two
worker processes on one port); one debug executor at zero delay with 1,024 slots behind both;
the direct baseline D (``bench/direct_server.py``: the same token generator behind a bare
Starlette SSE endpoint, no broker) and a load generator (``bench/stream_client.py``, its own
process and event loop).

For each concurrency level the client runs D, K1 and K2 in rounds whose order rotates (so
over three rounds each runs once first, once second, once last) and slow drift on a shared
machine hits all three. It reports TTFT p50/p99 and the TTFT Kuwa adds, tokens/s and Kuwa ÷
direct ratios, the CPU each process used per 1,000 tokens, and Kuwa's chunk messages/s
(PUBLISH calls counted by ``INFO commandstats``, which also counts calls made inside Lua
scripts) next to ``redis-benchmark``'s PUBLISH/s on the same Redis. Then it measures the
gateway's memory per open idle stream (``idle_streams.py``) and, at bursts of ``--burst``
streams on free slots, the time from queued to started read from the jobs' state hashes
(``queue_wait.py``); it prints a table of ratios and, with ``--plot``, draws them
(``bench_plot.py``).

    .venv/bin/python bench/stream_bench.py [--streams 1,10,100,1000] [--tokens 200]
        [--rounds 3] [--burst 256] [--idle-streams 10000] [--plot PNG] [--json OUT]
        [--profile DIR]

``--profile DIR`` runs py-spy on the servers during the highest concurrency level and during
the bursts (every gateway process and the executor).

This is a benchmark, not a test: it prints figures and whether the issue's targets were
met, and exits 0 unless the stack could not be started.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import idle_streams  # noqa: E402
import queue_wait  # noqa: E402
from bench_figures import KUWA, TARGETS, compare, ratio, round_order, summarize  # noqa: E402
from bench_report import report  # noqa: E402
from procinfo import command_line, cpu_seconds, descendants, raise_open_files  # noqa: E402
from profiling import start_profilers, stop_profilers, summarize_profile  # noqa: E402

from kuwa.executors.debug import tokenize  # noqa: E402
from tests.stack import RedisServer, Stack, free_port, wait_until  # noqa: E402

MODEL = "bench"
EXECUTOR_SLOTS = 1024
K2_WORKERS = 2
PRIME_STREAMS = 32  # connections opened on every target before the first level


def make_prompt(tokens: int) -> str:
    """A prompt the debug backend answers with exactly ``tokens`` tokens."""
    words = [f"w{i % 1000}" for i in range(tokens)]
    prompt = " ".join(words)
    assert len(tokenize(prompt)) == tokens
    return prompt


# --- processes ----------------------------------------------------------------------------
@dataclass
class Bench:
    folder: Path
    redis: RedisServer
    stack: Stack
    direct: subprocess.Popen[bytes]
    client: subprocess.Popen[bytes]
    # Every process whose CPU time is measured: gateway (K1), gateway2 (K2's supervisor),
    # gateway2.w1 and .w2 (its workers), executor, redis, direct, client.
    pids: dict[str, int] = field(default_factory=dict)

    def ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.client.stdin is not None and self.client.stdout is not None
        self.client.stdin.write(orjson.dumps(cmd) + b"\n")
        self.client.stdin.flush()
        line = self.client.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark client exited; see its stderr above")
        reply: dict[str, Any] = orjson.loads(line)
        return reply

    def stop(self) -> None:
        if self.client.poll() is None:
            try:
                self.ask({"op": "quit"})
                self.client.wait(10)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                self.client.kill()
        if self.direct.poll() is None:
            self.direct.send_signal(signal.SIGTERM)
            try:
                self.direct.wait(10)
            except subprocess.TimeoutExpired:
                self.direct.kill()
        self.stack.stop()
        self.redis.stop()


def start_direct(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "direct.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "direct_server.py"), "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"direct server exited:\n{log.read_text()}")
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 30, "the direct server")
    return proc, url


def start_workers_gateway(stack: Stack) -> tuple[str, dict[str, int]]:
    """K2: ``kuwa-cli gateway start --workers 2`` (KUWA_WORKERS), once both workers have
    started their app; its pids as ``gateway2`` (the supervisor) and ``gateway2.wN``."""
    url = stack.gateway({"KUWA_WORKERS": str(K2_WORKERS)})
    proc = stack.procs[-1]

    def workers() -> list[int]:
        return [p for p in descendants(proc.popen.pid) if "spawn_main" in command_line(p)]

    wait_until(
        lambda: (
            len(workers()) == K2_WORKERS
            and proc.text().count("Application startup complete") >= K2_WORKERS
        ),
        60,
        f"{K2_WORKERS} gateway workers",
    )
    pids = {"gateway2": proc.popen.pid}
    pids |= {f"gateway2.w{i + 1}": pid for i, pid in enumerate(workers())}
    return url, pids


def start(folder: Path, prompt: str, timeout: float) -> Bench:
    """Start every process; on any failure stop the ones already started."""
    redis = RedisServer(folder / "redis")
    stack = Stack(folder, redis)
    direct: subprocess.Popen[bytes] | None = None
    client: subprocess.Popen[bytes] | None = None
    try:
        stack.token = stack.create_user("bench@example.com")
        executor = stack.executor(MODEL, delay=0.0, concurrency=EXECUTOR_SLOTS, name="bench-exec")
        gateway_url = stack.gateway()  # default settings: one process
        gateway = stack.procs[-1]
        gateway2_url, gateway2_pids = start_workers_gateway(stack)
        direct, direct_url = start_direct(folder)
        client = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "stream_client.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        bench = Bench(folder, redis, stack, direct, client)
        bench.pids = {
            "gateway": gateway.popen.pid,
            **gateway2_pids,
            "executor": executor.popen.pid,
            "redis": redis.proc.pid,
            "direct": direct.pid,
            "client": client.pid,
        }
        urls = {"direct": direct_url, "kuwa": gateway_url, "kuwa2": gateway2_url}
        bench.ask(
            {
                "op": "init",
                "targets": urls,
                "token": stack.token,
                "model": MODEL,
                "prompt": prompt,
                "timeout": timeout,
            }
        )
        # Open connections on every target (and so on both of K2's workers) and run a
        # request on each before anything is measured.
        for target in TARGETS:
            primed = bench.ask(
                {
                    "op": "run",
                    "target": target,
                    "streams": PRIME_STREAMS,
                    "per_stream": 2,
                    "max_tokens": 1,
                }
            )
            if primed["errors"]:
                print(f"  priming errors ({target}): {primed['errors']}", flush=True)
    except BaseException:
        for proc in (client, direct):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        stack.stop()
        redis.stop()
        raise
    return bench


def machine() -> dict[str, Any]:
    """What the figures were measured on (other tenants show in the load average)."""
    from importlib import metadata

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    versions = {}
    for dist in ("uvicorn", "uvloop", "httptools", "starlette", "redis", "hiredis"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    redis_version = (
        subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
        .stdout.split(" v=")[-1]
        .split()[0]
    )
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True)
    return {
        "source": {
            "commit": commit.stdout.strip() or None,
            "uncommitted_in_src": [line[3:] for line in changed.stdout.splitlines()],
        },
        "cpu": model,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": sys.version.split()[0],
        "redis_server": redis_version,
        "packages": versions,
    }


# --- Redis figures ------------------------------------------------------------------------
def command_calls(redis: RedisServer) -> dict[str, int]:
    """Calls per Redis command so far (``INFO commandstats``)."""
    client = redis.client()
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if isinstance(value, dict) and "calls" in value
    }


def redis_benchmark_publish(bench: Bench, n: int) -> dict[str, Any]:
    """PUBLISH/s from ``redis-benchmark`` on the benchmark's Redis.

    ``-t publish`` is tried first; redis-benchmark 7.0 has no built-in publish test and
    then runs nothing, so the same load is given as an explicit command (50 clients, no
    pipelining, a 256-byte message: about one chunk message of a few dozen tokens).
    """
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return {"error": "redis-benchmark is not installed"}
    base = [binary, "-h", "127.0.0.1", "-p", str(bench.redis.port), "-n", str(n), "-q"]
    for extra in (["-t", "publish"], ["PUBLISH", "kuwa:bench:publish", "x" * 256]):
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=300)
        out = done.stdout.replace("\r", "\n")
        found = re.findall(r"^PUBLISH.*?: ([\d.]+) requests per second", out, re.MULTILINE)
        if found:
            shown = base[1:] + (extra if extra[0] == "-t" else [*extra[:2], "<256 bytes>"])
            return {"command": " ".join(["redis-benchmark", *shown]), "rps": float(found[-1])}
    return {"error": f"could not parse redis-benchmark output: {out[-300:]!r}"}


# --- the measurement ----------------------------------------------------------------------
def run_once(bench: Bench, target: str, streams: int, per_stream: int) -> dict[str, Any]:
    # Warm-up: one 1-token request per stream opens (or re-opens) every keep-alive
    # connection, so connection set-up is not part of any measured TTFT.
    warm = bench.ask(
        {"op": "run", "target": target, "streams": streams, "per_stream": 1, "max_tokens": 1}
    )
    if warm["errors"]:
        print(f"  warm-up errors ({target}): {warm['errors']}", flush=True)
    cpu0 = {name: cpu_seconds(pid) for name, pid in bench.pids.items()}
    calls0 = command_calls(bench.redis)
    result = bench.ask(
        {
            "op": "run",
            "target": target,
            "streams": streams,
            "per_stream": per_stream,
            "max_tokens": None,
        }
    )
    cpu1 = {name: cpu_seconds(pid) for name, pid in bench.pids.items()}
    calls1 = command_calls(bench.redis)
    client_cpu = result.pop("cpu_s")  # the client's own: the timed window, not the checks
    result["cpu_s"] = {name: cpu1[name] - cpu0[name] for name in cpu0} | {"client": client_cpu}
    result["redis_calls"] = {
        name: calls1.get(name, 0) - calls0.get(name, 0)
        for name in ("publish", "rpush", "evalsha")
        if calls1.get(name, 0) - calls0.get(name, 0)
    }
    return result


def run_level(
    bench: Bench,
    streams: int,
    rounds: int,
    min_requests: int,
    profile: Path | None,
    loads: list[float],
) -> dict[str, Any]:
    per_stream = max(1, math.ceil(min_requests / streams))
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
    for r in range(rounds):
        for target in round_order(r):
            profilers: list[subprocess.Popen[bytes]] = []
            if profile is not None:
                names = {
                    "direct": ["direct"],
                    "kuwa": ["gateway", "executor"],
                    "kuwa2": [n for n in bench.pids if n.startswith("gateway2.")] + ["executor"],
                }[target]
                pids = {name: bench.pids[name] for name in [*names, "client"]}
                profilers = start_profilers(pids, profile / f"{streams}-r{r}-{target}")
            try:
                result = run_once(bench, target, streams, per_stream)
            finally:
                stop_profilers(profilers)
            loads.append(os.getloadavg()[0])
            runs[target].append(result)
            print(
                f"  {streams:>5} streams  round {r + 1}/{rounds}  {target:<6}  "
                f"{result['requests']:>5} requests  {result['wall_s']:7.2f} s  "
                f"{ratio(result['tokens'], result['wall_s']):>9.0f} tokens/s  "
                f"errors {result['errors'] or 0}  load {loads[-1]:.2f}",
                flush=True,
            )
            for kind, message in result.get("error_samples", {}).items():
                print(f"      {kind}: {message}", flush=True)
    level: dict[str, Any] = {"streams": streams, "requests_per_stream": per_stream}
    level |= {t: summarize(t, runs[t]) for t in TARGETS}
    level["vs_direct"] = {t: compare(level[t], level["direct"]) for t in KUWA}
    return level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,10,100,1000", help="concurrency levels")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per answer")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target and level")
    parser.add_argument(
        "--min-requests",
        type=int,
        default=300,
        help="requests per round at least (each stream sends several when streams is lower)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=256,
        help="streams of the bursts on free slots whose queued -> started time is read from "
        "the job state (0: skip)",
    )
    parser.add_argument("--publish-n", type=int, default=200_000, help="redis-benchmark -n")
    parser.add_argument(
        "--idle-streams",
        type=int,
        default=10_000,
        help="idle streams held open for the gateway's memory per stream (0: skip)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds before a request counts as failed"
    )
    parser.add_argument("--plot", type=Path, help="draw the ratios into this PNG")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--profile", type=Path, help="py-spy the servers; profiles go here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    levels = [int(s) for s in args.streams.split(",") if s.strip()]
    prompt = make_prompt(args.tokens)
    # Every stream is a socket in the client and in a gateway (and the idle ones are all
    # open at once); children inherit the limit.
    needed = max([*levels, args.idle_streams + idle_streams.WARM_UP]) + 1024
    nofile = raise_open_files(needed)
    idle_count = args.idle_streams
    if nofile < needed and idle_count:
        idle_count = max(0, nofile - 1024 - idle_streams.WARM_UP)
        print(
            f"open-files limit {nofile}: holding {idle_count} idle streams, not "
            f"{args.idle_streams}",
            flush=True,
        )

    folder = Path(tempfile.mkdtemp(prefix="kuwa-bench-"))
    started = time.monotonic()
    loads: list[float] = [os.getloadavg()[0]]
    results: dict[str, Any] = {
        "command": " ".join(["bench/stream_bench.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "open_files_limit": nofile,
        "tokens_per_answer": args.tokens,
        "rounds": args.rounds,
        "levels": [],
        "load_average_samples": loads,
    }
    print(f"machine: {results['machine']}", flush=True)
    bench: Bench | None = None
    try:
        bench = start(folder, prompt, args.timeout)
        print(f"stack up in {folder} (redis {bench.redis.url})", flush=True)
        results["redis_benchmark"] = redis_benchmark_publish(bench, args.publish_n)
        print(f"redis-benchmark: {results['redis_benchmark']}", flush=True)
        for streams in levels:
            profile = args.profile if args.profile and streams == max(levels) else None
            results["levels"].append(
                run_level(bench, streams, args.rounds, args.min_requests, profile, loads)
            )
        if args.burst:
            client = bench.redis.client()
            results["burst"] = []
            try:
                for answer in (1, None):  # the pull alone; then while the burst streams
                    profilers: list[subprocess.Popen[bytes]] = []
                    if args.profile is not None:
                        names = [n for n in bench.pids if n.startswith(("gateway", "executor"))]
                        folder = args.profile / f"burst-{answer or 'whole'}"
                        profilers = start_profilers({n: bench.pids[n] for n in names}, folder)
                    try:
                        burst = queue_wait.measure(
                            bench.ask, client, args.burst, args.rounds, answer
                        )
                    finally:
                        stop_profilers(profilers)
                    results["burst"].append(burst)
                    loads.append(os.getloadavg()[0])
                    print("\n".join(queue_wait.report_lines(burst)), flush=True)
            finally:
                client.close()
        if idle_count:
            results["idle"] = idle_streams.measure(
                bench.stack, bench.redis, bench.ask, idle_count, max(args.timeout, 120.0)
            )
            loads.append(os.getloadavg()[0])
        results["elapsed_s"] = time.monotonic() - started
    finally:
        if bench is not None:
            bench.stop()
        if args.keep:
            print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print()
    print(report(results))
    if args.profile:
        for path in sorted(args.profile.glob("*/*.txt")):
            print(f"\n== profile {path}")
            print(summarize_profile(path))
    if args.plot:
        try:
            from bench_plot import plot_ratios

            plot_ratios(results, args.plot)
            print(f"\nplot: {args.plot}")
        except ImportError as exc:
            print(f"\nno plot ({exc}); install the bench extra: pip install -e '.[bench]'")
    print(
        f"\ntotal time {results['elapsed_s']:.0f} s; load average (1 min) during the run "
        f"{min(loads):.2f}-{max(loads):.2f}"
    )
    if args.json:
        args.json.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
