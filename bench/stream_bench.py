"""Streaming benchmark: Kuwa vs. a direct baseline, side by side in one run.

Starts, as real processes: a private ``redis-server``, a Kuwa gateway (``python -m kuwa
gateway start``), a debug executor at zero delay with 1,024 slots, the direct baseline
(``bench/direct_server.py``: the same token generator behind a bare Starlette SSE endpoint,
no broker) and a load generator (``bench/stream_client.py``, its own process and event loop).

For each concurrency level the client runs Kuwa and the direct server alternately, in
interleaved rounds whose order alternates, so slow drift on a shared machine hits both. It
reports TTFT p50/p99 for both and the TTFT Kuwa adds, tokens/s for both and their ratio,
the CPU each process used per 1,000 tokens, and Kuwa's chunk messages/s (PUBLISH calls
counted by ``INFO commandstats``, which also counts calls made inside Lua scripts) next to
``redis-benchmark``'s PUBLISH/s on the same Redis.

    .venv/bin/python bench/stream_bench.py [--streams 1,100,1000] [--tokens 200]
        [--rounds 3] [--json OUT] [--profile DIR]

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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiling import start_profilers, stop_profilers, summarize_profile  # noqa: E402

from kuwa.executors.debug import tokenize  # noqa: E402
from tests.stack import RedisServer, Stack, free_port, wait_until  # noqa: E402

MODEL = "bench"
TARGETS = ("kuwa", "direct")
EXECUTOR_SLOTS = 1024
# Targets from the issue.
ADDED_TTFT_P50_MAX = 0.001
ADDED_TTFT_P99_MAX = 0.005
TTFT_LEVEL = 100
RATIO_MIN = 0.5
RATIO_LEVEL = 1000


def make_prompt(tokens: int) -> str:
    """A prompt the debug backend answers with exactly ``tokens`` tokens."""
    words = [f"w{i % 1000}" for i in range(tokens)]
    prompt = " ".join(words)
    assert len(tokenize(prompt)) == tokens
    return prompt


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- processes ----------------------------------------------------------------------------
@dataclass
class Bench:
    folder: Path
    redis: RedisServer
    stack: Stack
    gateway_url: str
    direct_url: str
    direct: subprocess.Popen[bytes]
    client: subprocess.Popen[bytes]
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


def start(folder: Path, prompt: str, timeout: float) -> Bench:
    """Start every process; on any failure stop the ones already started."""
    redis = RedisServer(folder / "redis")
    stack = Stack(folder, redis)
    direct: subprocess.Popen[bytes] | None = None
    client: subprocess.Popen[bytes] | None = None
    try:
        stack.token = stack.create_user("bench@example.com")
        executor = stack.executor(MODEL, delay=0.0, concurrency=EXECUTOR_SLOTS, name="bench-exec")
        gateway_url = stack.gateway()  # default settings
        gateway = stack.procs[-1]
        direct, direct_url = start_direct(folder)
        client = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "stream_client.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        bench = Bench(folder, redis, stack, gateway_url, direct_url, direct, client)
        bench.pids = {
            "gateway": gateway.popen.pid,
            "executor": executor.popen.pid,
            "redis": redis.proc.pid,
            "direct": direct.pid,
            "client": client.pid,
        }
        bench.ask(
            {
                "op": "init",
                "targets": {"kuwa": gateway_url, "direct": direct_url},
                "token": stack.token,
                "model": MODEL,
                "prompt": prompt,
                "timeout": timeout,
            }
        )
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
def command_calls(bench: Bench) -> dict[str, int]:
    client = bench.redis.client()
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
    calls0 = command_calls(bench)
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
    calls1 = command_calls(bench)
    client_cpu = result.pop("cpu_s")  # the client's own: the timed window, not the checks
    result["cpu_s"] = {name: cpu1[name] - cpu0[name] for name in cpu0} | {"client": client_cpu}
    result["redis_calls"] = {
        name: calls1.get(name, 0) - calls0.get(name, 0)
        for name in ("publish", "rpush", "evalsha")
        if calls1.get(name, 0) - calls0.get(name, 0)
    }
    return result


def summarize(target: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ttft = [t for r in runs for t in r["ttft_s"]]
    later = [t for r in runs for t in r["ttft_later_s"]]
    wall = sum(r["wall_s"] for r in runs)
    tokens = sum(r["tokens"] for r in runs)
    errors: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for r in runs:
        errors.update(r["errors"])
        cpu.update(r["cpu_s"])
        calls.update(r["redis_calls"])
    return {
        "target": target,
        "rounds": len(runs),
        "requests": sum(r["requests"] for r in runs),
        "errors": dict(errors),
        "ttft_p50_s": percentile(ttft, 0.50),
        "ttft_p99_s": percentile(ttft, 0.99),
        "ttft_later_n": len(later),
        "ttft_later_p50_s": percentile(later, 0.50),
        "ttft_later_p99_s": percentile(later, 0.99),
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": ratio(tokens, wall),
        "round_tokens_per_s": [r["tokens"] / r["wall_s"] for r in runs if r["wall_s"]],
        "cpu_s": dict(cpu),
        "redis_calls": dict(calls),
    }


def run_level(
    bench: Bench, streams: int, rounds: int, min_requests: int, profile: Path | None
) -> dict[str, Any]:
    per_stream = max(1, math.ceil(min_requests / streams))
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
    for r in range(rounds):
        order = TARGETS if r % 2 == 0 else TARGETS[::-1]
        for target in order:
            profilers: list[subprocess.Popen[bytes]] = []
            if profile is not None:
                names = ["gateway", "executor"] if target == "kuwa" else ["direct"]
                pids = {name: bench.pids[name] for name in [*names, "client"]}
                profilers = start_profilers(pids, profile / f"{streams}-r{r}-{target}")
            try:
                result = run_once(bench, target, streams, per_stream)
            finally:
                stop_profilers(profilers)
            runs[target].append(result)
            print(
                f"  {streams:>5} streams  round {r + 1}/{rounds}  {target:<6}  "
                f"{result['requests']:>5} requests  {result['wall_s']:7.2f} s  "
                f"{ratio(result['tokens'], result['wall_s']):>9.0f} tokens/s  "
                f"errors {result['errors'] or 0}",
                flush=True,
            )
            for kind, message in result.get("error_samples", {}).items():
                print(f"      {kind}: {message}", flush=True)
    kuwa, direct = summarize("kuwa", runs["kuwa"]), summarize("direct", runs["direct"])
    publishes = kuwa["redis_calls"].get("publish", 0)
    return {
        "streams": streams,
        "requests_per_stream": per_stream,
        "kuwa": kuwa,
        "direct": direct,
        "added_ttft_p50_s": kuwa["ttft_p50_s"] - direct["ttft_p50_s"],
        "added_ttft_p99_s": kuwa["ttft_p99_s"] - direct["ttft_p99_s"],
        "added_ttft_later_p50_s": kuwa["ttft_later_p50_s"] - direct["ttft_later_p50_s"],
        "added_ttft_later_p99_s": kuwa["ttft_later_p99_s"] - direct["ttft_later_p99_s"],
        "tokens_per_s_ratio": ratio(kuwa["tokens_per_s"], direct["tokens_per_s"]),
        "chunk_messages": publishes,
        "chunk_messages_per_s": ratio(publishes, kuwa["wall_s"]),
        "tokens_per_chunk_message": ratio(kuwa["tokens"], publishes),
    }


# --- report -------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def errors_text(summary: dict[str, Any]) -> str:
    n = sum(summary["errors"].values())
    return f"{n}/{summary['requests']}"


def report(results: dict[str, Any]) -> str:
    levels = results["levels"]
    out = [
        "TTFT over all requests (each level opens with every stream sending at once); "
        "D = direct, K = Kuwa:",
        "",
        "| streams | requests K / D | errors K / D | TTFT p50 ms D / K / added "
        "| TTFT p99 ms D / K / added | tokens/s D / K | K ÷ D |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        k, d = lv["kuwa"], lv["direct"]
        out.append(
            f"| {lv['streams']:,} | {k['requests']:,} / {d['requests']:,} "
            f"| {errors_text(k)} / {errors_text(d)} "
            f"| {ms(d['ttft_p50_s'])} / {ms(k['ttft_p50_s'])} / **{ms(lv['added_ttft_p50_s'])}** "
            f"| {ms(d['ttft_p99_s'])} / {ms(k['ttft_p99_s'])} / **{ms(lv['added_ttft_p99_s'])}** "
            f"| {d['tokens_per_s']:,.0f} / {k['tokens_per_s']:,.0f} "
            f"| **{100 * lv['tokens_per_s_ratio']:.0f} %** |"
        )
    later = [lv for lv in levels if lv["kuwa"]["ttft_later_n"] and lv["direct"]["ttft_later_n"]]
    if later:
        out += [
            "",
            "TTFT of each stream's later requests only (sent while the other streams are "
            "mid-answer, without the opening burst):",
            "",
            "| streams | requests K / D | TTFT p50 ms D / K / added | TTFT p99 ms D / K / added |",
            "|---:|---:|---:|---:|",
        ]
        for lv in later:
            k, d = lv["kuwa"], lv["direct"]
            out.append(
                f"| {lv['streams']:,} | {k['ttft_later_n']:,} / {d['ttft_later_n']:,} "
                f"| {ms(d['ttft_later_p50_s'])} / {ms(k['ttft_later_p50_s'])} "
                f"/ **{ms(lv['added_ttft_later_p50_s'])}** "
                f"| {ms(d['ttft_later_p99_s'])} / {ms(k['ttft_later_p99_s'])} "
                f"/ **{ms(lv['added_ttft_later_p99_s'])}** |"
            )
    out += [
        "",
        "CPU time per 1,000 tokens streamed, by process:",
        "",
        "| streams | run | gateway | executor | redis | direct server | client | total |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        for target in TARGETS:
            s = lv[target]
            per = {n: 1e6 * ratio(c, s["tokens"]) for n, c in s["cpu_s"].items()}
            cells = " | ".join(
                f"{per[n]:.0f} ms" for n in ("gateway", "executor", "redis", "direct", "client")
            )
            out.append(
                f"| {lv['streams']:,} | {target[0].upper()} | {cells} "
                f"| {sum(per.values()):.0f} ms |"
            )
    top = results["levels"][-1]
    rb = results["redis_benchmark"]
    out += ["", f"Chunk messages during the {top['streams']:,}-stream Kuwa rounds:"]
    out.append(
        f"  {top['chunk_messages']:,} PUBLISH calls in {top['kuwa']['wall_s']:.2f} s = "
        f"{top['chunk_messages_per_s']:,.0f} messages/s "
        f"({top['tokens_per_chunk_message']:.1f} tokens per message)"
    )
    if "rps" in rb:
        out.append(
            f"  `{rb['command']}`: {rb['rps']:,.0f} PUBLISH/s "
            f"-> Kuwa used {100 * top['chunk_messages_per_s'] / rb['rps']:.0f} % of it"
        )
    else:
        out.append(f"  redis-benchmark: {rb['error']}")
    out += ["", "Targets:"]
    for line in targets(results):
        out.append("  " + line)
    return "\n".join(out)


def targets(results: dict[str, Any]) -> list[str]:
    by_streams = {lv["streams"]: lv for lv in results["levels"]}
    lines = []
    lv = by_streams.get(TTFT_LEVEL)
    if lv is None:
        lines.append(f"added TTFT: not measured (no {TTFT_LEVEL}-stream level)")
    else:
        p50, p99 = lv["added_ttft_p50_s"], lv["added_ttft_p99_s"]
        lines.append(
            f"added TTFT p50 at {TTFT_LEVEL} streams {ms(p50)} ms (target <= "
            f"{ms(ADDED_TTFT_P50_MAX)} ms): {'MET' if p50 <= ADDED_TTFT_P50_MAX else 'MISSED'}"
        )
        lines.append(
            f"added TTFT p99 at {TTFT_LEVEL} streams {ms(p99)} ms (target <= "
            f"{ms(ADDED_TTFT_P99_MAX)} ms): {'MET' if p99 <= ADDED_TTFT_P99_MAX else 'MISSED'}"
        )
        if lv["kuwa"]["ttft_later_n"]:
            lines.append(
                f"  (later requests only, without the opening burst: added p50 "
                f"{ms(lv['added_ttft_later_p50_s'])} ms, p99 {ms(lv['added_ttft_later_p99_s'])} ms)"
            )
    lv = by_streams.get(RATIO_LEVEL)
    if lv is None:
        lines.append(f"tokens/s ratio: not measured (no {RATIO_LEVEL}-stream level)")
    else:
        ratio = lv["tokens_per_s_ratio"]
        lines.append(
            f"tokens/s Kuwa / direct at {RATIO_LEVEL:,} streams {100 * ratio:.0f} % (target "
            f">= {100 * RATIO_MIN:.0f} %): {'MET' if ratio >= RATIO_MIN else 'MISSED'}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,100,1000", help="concurrency levels")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per answer")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target and level")
    parser.add_argument(
        "--min-requests",
        type=int,
        default=300,
        help="requests per round at least (each stream sends several when streams is lower)",
    )
    parser.add_argument("--publish-n", type=int, default=200_000, help="redis-benchmark -n")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds before a request counts as failed"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--profile", type=Path, help="py-spy the servers; profiles go here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    levels = [int(s) for s in args.streams.split(",") if s.strip()]
    prompt = make_prompt(args.tokens)

    folder = Path(tempfile.mkdtemp(prefix="kuwa-bench-"))
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": " ".join(["bench/stream_bench.py", *sys.argv[1:]]),
        "machine": machine(),
        "tokens_per_answer": args.tokens,
        "rounds": args.rounds,
        "levels": [],
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
                run_level(bench, streams, args.rounds, args.min_requests, profile)
            )
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
    print(f"\ntotal time {results['elapsed_s']:.0f} s")
    if args.json:
        args.json.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
