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
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from kuwa import keys

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
    sent_at = time.time() - (time.perf_counter() - started)  # wall clock, as in Redis
    return {
        "tokens": tokens,
        "ttft": ttft,
        "itl": itl,
        "error": error,
        "job": job_id,
        "sent_at": sent_at,
        "first_at": None if ttft is None else sent_at + ttft,
    }


async def per_stream(
    streams: int, requests: int, one: Callable[[int], Awaitable[dict[str, Any]]]
) -> tuple[list[dict[str, Any]], float]:
    """``streams`` concurrent streams, each sending ``requests`` requests back to back
    (request ``i + k * streams``); every request's figures, and the wall time."""

    async def stream(i: int) -> list[dict[str, Any]]:
        return [await one(i + k * streams) for k in range(requests)]

    started = time.perf_counter()
    runs = await asyncio.gather(*(stream(i) for i in range(streams)))
    return [r for rs in runs for r in rs], time.perf_counter() - started


async def kuwa_level(
    base: str,
    token: str,
    model: str,
    streams: int,
    n: int,
    redis_url: str | None = None,
    requests: int = 1,
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=streams + 8)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        runs_list, wall = await per_stream(
            streams, requests, lambda i: kuwa_one(session, base, token, model, i, n)
        )
    return summarize("kuwa", streams, runs_list, wall) | {
        "breakdown": breakdown(runs_list, redis_url)
    }


# The parts of Kuwa's TTFT, between the timestamps in a job's state hash in Redis: the client
# sent the request; `created` (the gateway made the job: HTTP, auth, parsing); `started` (an
# executor took it: enqueue, queue wait, pick-up); `first` (the executor published the first
# chunk: tokenizing, waiting for a slot, prefill, the first token, the batcher); the client
# read the first text (Redis pub/sub, the gateway's hub, SSE, the client).
TTFT_PARTS = ("client_to_queued", "queued_to_started", "started_to_first", "first_to_client")


def breakdown(runs: list[dict[str, Any]], url: str | None = None) -> dict[str, float]:
    """Where Kuwa's TTFT goes (p50 of each part, ms), from the job state the gateway and the
    executor record in Redis (``url``, default ``KUWA_REDIS_URL``)."""
    url = url or os.environ.get("KUWA_REDIS_URL")
    if not url:
        return {}
    import redis

    client = redis.Redis.from_url(url)
    parts: dict[str, list[float]] = {name: [] for name in TTFT_PARTS}
    for r in runs:
        if not r.get("job") or r.get("first_at") is None:
            continue
        created, started, first = client.hmget(
            keys.job_state(r["job"]), ["created", "started", "first"]
        )
        if not (created and started and first):
            continue
        times = [r["sent_at"], float(created), float(started), float(first), r["first_at"]]
        for name, a, b in zip(TTFT_PARTS, times, times[1:], strict=False):
            parts[name].append((b - a) * 1000)
    client.close()
    return {f"{k}_p50_ms": round(pct(v, 50), 1) for k, v in parts.items() if v}


# --- vLLM alone -----------------------------------------------------------------------------
class Direct:
    """The same requests straight into an ``AsyncLLM`` (and its tokenizer), no Kuwa."""

    def __init__(self, engine: Any, tokenizer: Any) -> None:
        self.engine = engine
        self.tokenizer = tokenizer

    @classmethod
    async def start(
        cls, model_dir: str, gpu_util: float, max_len: int, max_seqs: int
    ) -> tuple[Direct, float]:
        """An engine with the options run.sh gives the executor; and its start-up time."""
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        args = {
            "model": model_dir,
            "tokenizer": model_dir,
            "load_format": "dummy",
            "enforce_eager": True,
            "gpu_memory_utilization": gpu_util,
            "dtype": "bfloat16",
            "max_model_len": max_len,
            "max_num_seqs": max_seqs,
        }
        t0 = time.perf_counter()
        engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(**args), usage_context=UsageContext.ENGINE_CONTEXT
        )
        return cls(engine, engine.get_tokenizer()), time.perf_counter() - t0

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

    async def level(self, streams: int, n: int, tag: str, requests: int = 1) -> dict[str, Any]:
        runs, wall = await per_stream(streams, requests, lambda i: self.one(i, n, tag))
        return summarize("direct", streams, runs, wall)


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


COLUMNS = (
    "label",
    "streams",
    "ok",
    "errors",
    "tokens_per_s",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "itl_p50_ms",
    "itl_p99_ms",
)


def table(rows: list[dict[str, Any]], cols: tuple[str, ...] = COLUMNS) -> str:
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    lines += [" | ".join(str(r.get(c, "")) for c in cols) for r in rows]
    return "\n".join(lines)


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.mean(r[key] for r in rows)


def ratios(
    rows: list[dict[str, Any]], levels: list[int], kuwa: str = "kuwa"
) -> dict[int, dict[str, Any]]:
    """Kuwa ÷ direct per level: the mean of Kuwa's passes (rows labelled ``kuwa`` or
    ``kuwa#N``) over the mean of the direct ones (tokens/s: higher is better; TTFT and ITL:
    lower is better), and the TTFT Kuwa adds."""
    out: dict[int, dict[str, Any]] = {}
    for streams in levels:
        at = [r for r in rows if r["streams"] == streams]
        ds = [r for r in at if r["label"].split("#")[0] == "direct"]
        ks = [r for r in at if r["label"].split("#")[0] == kuwa]
        if not ds or not ks:
            continue
        out[streams] = {
            f"{key.removesuffix('_ms')}_ratio": round(_mean(ks, key) / _mean(ds, key), 3)
            if _mean(ds, key)
            else None
            for key in ("tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms")
        }
        out[streams]["added_ttft_p50_ms"] = round(
            _mean(ks, "ttft_p50_ms") - _mean(ds, "ttft_p50_ms"), 1
        )
    return out


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
        direct, startup = await Direct.start(args.model_dir, args.gpu_util, 2048, max(levels))
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
    by_level = ratios(rows, levels)
    print(table(rows), flush=True)
    for r in rows:
        if r.get("breakdown"):
            print("BREAKDOWN", r["label"], r["streams"], json.dumps(r["breakdown"]), flush=True)
    print("RATIOS", json.dumps(by_level), flush=True)
    print("CANCEL", json.dumps(cancel), flush=True)
    print(
        "GPU_BENCH "
        + json.dumps(
            {
                "rows": rows,
                "ratios": by_level,
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
