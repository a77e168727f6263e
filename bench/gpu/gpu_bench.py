"""Kuwa's vllm executor vs. vLLM's AsyncLLM alone, on one GPU, in one run.

Run by bench/gpu/run.sh on the GPU host (a gateway and a `kuwa-cli executor start --backend
vllm` are already up). Order: Kuwa, direct, Kuwa again (drift shows), at 64 and 256 streams
x 128 tokens (ignore EOS) and one stream alone; then a cancel check. Prints a table and one
machine-readable line ``GPU_BENCH {json}``.

Definitions (per request): TTFT = request sent → first non-empty text; ITL = (last text -
first text) / (tokens - 1), the mean inter-token latency; tokens/s = all tokens / wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

import aiohttp

MESSAGES = [
    [{"role": "user", "content": f"Tell me story number {i} about a lighthouse keeper."}]
    for i in range(512)
]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def summarize(label: str, streams: int, runs: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    ok = [r for r in runs if r["tokens"] > 0 and not r.get("error")]
    tokens = sum(r["tokens"] for r in ok)
    ttft = [r["ttft"] * 1000 for r in ok if r["ttft"] is not None]
    itl = [r["itl"] * 1000 for r in ok if r["itl"] is not None]
    return {
        "label": label,
        "streams": streams,
        "ok": len(ok),
        "errors": len(runs) - len(ok),
        "tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1) if wall else 0.0,
        "ttft_p50_ms": round(pct(ttft, 50), 1),
        "ttft_p99_ms": round(pct(ttft, 99), 1),
        "itl_p50_ms": round(pct(itl, 50), 2),
        "itl_p99_ms": round(pct(itl, 99), 2),
    }


# --- through Kuwa ---------------------------------------------------------------------------
async def kuwa_one(
    session: aiohttp.ClientSession, base: str, token: str, model: str, i: int, n: int
) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": MESSAGES[i % len(MESSAGES)],
        "max_tokens": n,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = last = None
    tokens = 0
    error = None
    job_id = None
    async with session.post(
        base + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        if r.status != 200:
            return {"tokens": 0, "ttft": None, "itl": None, "error": await r.text()}
        async for raw in r.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if "error" in data:
                error = data["error"]
                continue
            job_id = job_id or data.get("id")
            if data.get("usage"):
                tokens = data["usage"]["completion_tokens"]
            for choice in data.get("choices", []):
                if choice["delta"].get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
    ttft = None if first is None else first - started
    itl = None if first is None or last is None or tokens < 2 else (last - first) / (tokens - 1)
    return {
        "tokens": tokens,
        "ttft": ttft,
        "itl": itl,
        "error": error,
        "job": job_id,
        "sent_at": time.time() - (time.perf_counter() - started),
    }


async def kuwa_level(base: str, token: str, model: str, streams: int, n: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=streams + 8)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        runs = await asyncio.gather(
            *(kuwa_one(session, base, token, model, i, n) for i in range(streams))
        )
        wall = time.perf_counter() - started
    return summarize("kuwa", streams, list(runs), wall) | {"breakdown": breakdown(list(runs))}


def breakdown(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Where Kuwa's TTFT goes, from the job state the gateway and executor record in Redis."""
    url = os.environ.get("KUWA_REDIS_URL")
    if not url:
        return {}
    import redis

    client = redis.Redis.from_url(url)
    parts: dict[str, list[float]] = {
        "client_to_queued": [],
        "queued_to_started": [],
        "started_to_first": [],
    }
    for r in runs:
        if not r.get("job"):
            continue
        created, started, first = client.hmget(
            f"kuwa:{{job:{r['job']}}}:state", ["created", "started", "first"]
        )
        if not (created and started and first):
            continue
        parts["client_to_queued"].append((float(created) - r["sent_at"]) * 1000)
        parts["queued_to_started"].append((float(started) - float(created)) * 1000)
        parts["started_to_first"].append((float(first) - float(started)) * 1000)
    client.close()
    return {f"{k}_p50_ms": round(pct(v, 50), 1) for k, v in parts.items() if v}


# --- vLLM alone -----------------------------------------------------------------------------
class Direct:
    def __init__(self, model_dir: str, gpu_util: float, max_len: int, max_seqs: int) -> None:
        self.args = {
            "model": model_dir,
            "tokenizer": model_dir,
            "load_format": "dummy",
            "enforce_eager": True,
            "gpu_memory_utilization": gpu_util,
            "dtype": "bfloat16",
            "max_model_len": max_len,
            "max_num_seqs": max_seqs,
        }
        self.engine: Any = None

    async def start(self) -> float:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        t0 = time.perf_counter()
        self.engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(**self.args), usage_context=UsageContext.ENGINE_CONTEXT
        )
        self.tokenizer = self.engine.get_tokenizer()
        return time.perf_counter() - t0

    def ids(self, i: int) -> list[int]:
        out = self.tokenizer.apply_chat_template(
            MESSAGES[i % len(MESSAGES)], tokenize=True, add_generation_prompt=True
        )
        return list(out if isinstance(out, list) else out["input_ids"])

    async def one(self, i: int, n: int, tag: str) -> dict[str, Any]:
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        params = SamplingParams(max_tokens=n, ignore_eos=True, output_kind=RequestOutputKind.DELTA)
        started = time.perf_counter()
        first = last = None
        tokens = 0
        async for out in self.engine.generate(
            {"prompt_token_ids": self.ids(i)}, params, f"{tag}-{i}"
        ):
            piece = out.outputs[0]
            tokens += len(piece.token_ids)
            if piece.text:
                now = time.perf_counter()
                first = first or now
                last = now
        ttft = None if first is None else first - started
        itl = None if first is None or last is None or tokens < 2 else (last - first) / (tokens - 1)
        return {"tokens": tokens, "ttft": ttft, "itl": itl}

    async def level(self, streams: int, n: int, tag: str) -> dict[str, Any]:
        started = time.perf_counter()
        runs = await asyncio.gather(*(self.one(i, n, tag) for i in range(streams)))
        return summarize("direct", streams, list(runs), time.perf_counter() - started)


# --- cancel ---------------------------------------------------------------------------------
async def engine_running(base: str) -> int | None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kuwa",
        "executor",
        "list",
        "--json",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    rows = json.loads(out or b"[]")
    values = [r.get("engine", {}).get("running") for r in rows]
    return values[0] if values else None


async def cancel_check(base: str, token: str, model: str, heartbeat: float) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": MESSAGES[0],
        "max_tokens": 1500,
        "ignore_eos": True,
        "stream": True,
    }
    events: list[str] = []
    async with aiohttp.ClientSession() as session:
        r = await session.post(
            base + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        async for raw in r.content:
            line = raw.decode().strip()
            if line.startswith("data: "):
                events.append(line[:120])
            if len(events) >= 5:
                break
        await asyncio.sleep(heartbeat * 1.5)
        during = await engine_running(base)
        r.close()  # drop the connection: the gateway must cancel the job
    closed_at = time.perf_counter()
    await asyncio.sleep(heartbeat * 1.5)
    after = await engine_running(base)
    return {
        "engine_running_while_streaming": during,
        "engine_running_after_disconnect": after,
        "checked_after_s": round(time.perf_counter() - closed_at, 2),
        "status": r.status,
        "first_events": events[:2],
    }


def table(rows: list[dict[str, Any]]) -> str:
    cols = [
        "label",
        "streams",
        "ok",
        "errors",
        "tokens_per_s",
        "ttft_p50_ms",
        "ttft_p99_ms",
        "itl_p50_ms",
        "itl_p99_ms",
    ]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    lines += [" | ".join(str(r[c]) for c in cols) for r in rows]
    return "\n".join(lines)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="http://127.0.0.1:8000")
    ap.add_argument("--token", required=True)
    ap.add_argument("--model", default="tinyllama")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--levels", default="64,256,1")
    ap.add_argument("--gpu-util", type=float, default=0.4)
    ap.add_argument("--heartbeat", type=float, default=2.0)
    ap.add_argument("--skip-direct", action="store_true", help="dry run without vLLM")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    rows: list[dict[str, Any]] = []

    # warm-up through Kuwa (first requests pay allocator and kernel-selection costs)
    await kuwa_level(args.base, args.token, args.model, 8, 16)
    for streams in levels:
        rows.append(
            await kuwa_level(args.base, args.token, args.model, streams, args.tokens)
            | {"label": "kuwa#1"}
        )
        print(rows[-1], flush=True)

    startup = 0.0
    if not args.skip_direct:
        direct = Direct(args.model_dir, args.gpu_util, 2048, max(levels))
        startup = await direct.start()
        print(f"direct engine ready in {startup:.1f}s", flush=True)
        await direct.level(8, 16, "warm")
        for streams in levels:
            rows.append(await direct.level(streams, args.tokens, f"d{streams}"))
            print(rows[-1], flush=True)
        direct.engine.shutdown()

    for streams in levels:
        rows.append(
            await kuwa_level(args.base, args.token, args.model, streams, args.tokens)
            | {"label": "kuwa#2"}
        )
        print(rows[-1], flush=True)

    cancel = await cancel_check(args.base, args.token, args.model, args.heartbeat)
    ratios = {}
    for streams in levels:
        d = next((r for r in rows if r["label"] == "direct" and r["streams"] == streams), None)
        if d is None:
            continue
        ks = [r for r in rows if r["label"].startswith("kuwa") and r["streams"] == streams]
        k_tps = statistics.mean(r["tokens_per_s"] for r in ks)
        k_ttft = statistics.mean(r["ttft_p50_ms"] for r in ks)
        ratios[streams] = {
            "tokens_per_s_ratio": round(k_tps / d["tokens_per_s"], 3)
            if d["tokens_per_s"]
            else None,
            "added_ttft_p50_ms": round(k_ttft - d["ttft_p50_ms"], 1),
        }
    print(table(rows), flush=True)
    for r in rows:
        if r.get("breakdown"):
            print("BREAKDOWN", r["label"], r["streams"], json.dumps(r["breakdown"]), flush=True)
    print("RATIOS", json.dumps(ratios), flush=True)
    print("CANCEL", json.dumps(cancel), flush=True)
    print(
        "GPU_BENCH "
        + json.dumps(
            {
                "rows": rows,
                "ratios": ratios,
                "cancel": cancel,
                "direct_startup_s": round(startup, 1),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
    sys.exit(asyncio.run(main()))
