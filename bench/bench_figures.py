"""The benchmark's arithmetic: percentiles, per-target summaries of rounds, Kuwa ÷ direct.

Pure functions on plain dicts (what the client reports per round, what ``/proc`` gave), so
they can be unit-tested without starting anything (``tests/test_bench_figures.py``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

# The configurations, in the order of the tables: the direct baseline, Kuwa with one
# gateway process, Kuwa with a gateway of two worker processes.
DIRECT = "direct"
KUWA = ("kuwa", "kuwa2")
TARGETS = (DIRECT, *KUWA)
LABELS = {"direct": "D", "kuwa": "K1", "kuwa2": "K2"}
# The CPU table's columns: process names (as in the pid table) grouped by role.
CPU_GROUPS = ("gateway", "executor", "redis", "direct", "client")


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ratio(a: float, b: float) -> float:
    """``a / b``; NaN when ``b`` is zero or NaN."""
    return a / b if b and not math.isnan(b) else math.nan


def round_order(round_index: int) -> tuple[str, ...]:
    """The order of the targets in one round: rotated by one each round, so over three
    rounds every target runs once first, once second and once last."""
    k = round_index % len(TARGETS)
    return TARGETS[k:] + TARGETS[:k]


def cpu_group(name: str) -> str:
    """``gateway2.w1`` -> ``gateway``: all gateway processes count as the gateway."""
    return next((g for g in CPU_GROUPS if name.startswith(g)), name)


def summarize(target: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One target's rounds at one level, pooled: TTFT percentiles over all requests,
    tokens/s = all tokens ÷ all rounds' wall time, CPU seconds per process summed."""
    ttft = [t for r in runs for t in r["ttft_s"]]
    later = [t for r in runs for t in r["ttft_later_s"]]
    wall = sum(r["wall_s"] for r in runs)
    tokens = sum(r["tokens"] for r in runs)
    errors: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for r in runs:
        errors.update(r["errors"])
        cpu.update({k: v for k, v in r["cpu_s"].items() if not math.isnan(v)})
        calls.update(r["redis_calls"])
    grouped: Counter[str] = Counter()
    for name, seconds in cpu.items():  # each process's own time: workers are not in gateway2
        grouped[cpu_group(name)] += seconds
    per_1k = {g: 1e3 * ratio(grouped[g], tokens) for g in CPU_GROUPS}
    per_1k["total"] = sum(per_1k.values())
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
        "cpu_s_per_1k_tokens": per_1k,
        "redis_calls": dict(calls),
    }


def compare(kuwa: dict[str, Any], direct: dict[str, Any]) -> dict[str, Any]:
    """One Kuwa configuration against the direct baseline at one level (both summaries)."""
    publishes = kuwa["redis_calls"].get("publish", 0)
    return {
        "added_ttft_p50_s": kuwa["ttft_p50_s"] - direct["ttft_p50_s"],
        "added_ttft_p99_s": kuwa["ttft_p99_s"] - direct["ttft_p99_s"],
        "added_ttft_later_p50_s": kuwa["ttft_later_p50_s"] - direct["ttft_later_p50_s"],
        "added_ttft_later_p99_s": kuwa["ttft_later_p99_s"] - direct["ttft_later_p99_s"],
        "tokens_per_s_ratio": ratio(kuwa["tokens_per_s"], direct["tokens_per_s"]),
        "ttft_p50_ratio": ratio(kuwa["ttft_p50_s"], direct["ttft_p50_s"]),
        "ttft_p99_ratio": ratio(kuwa["ttft_p99_s"], direct["ttft_p99_s"]),
        "cpu_per_token_ratio": ratio(
            kuwa["cpu_s_per_1k_tokens"]["total"], direct["cpu_s_per_1k_tokens"]["total"]
        ),
        "chunk_messages": publishes,
        "chunk_messages_per_s": ratio(publishes, kuwa["wall_s"]),
        "tokens_per_chunk_message": ratio(kuwa["tokens"], publishes),
    }


def ratio_rows(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ratio table: one row per level and Kuwa configuration, each figure Kuwa ÷ direct
    (tokens/s: higher is better; TTFT and CPU per token: lower is better)."""
    rows = []
    for lv in levels:
        for target in KUWA:
            vs = lv.get("vs_direct", {}).get(target)
            if vs is None:
                continue
            rows.append(
                {
                    "streams": lv["streams"],
                    "target": target,
                    "label": LABELS[target],
                    "tokens_per_s": vs["tokens_per_s_ratio"],
                    "ttft_p50": vs["ttft_p50_ratio"],
                    "ttft_p99": vs["ttft_p99_ratio"],
                    "cpu_per_token": vs["cpu_per_token_ratio"],
                }
            )
    return rows


def worker_split(summary: dict[str, Any], name: str = "gateway2") -> list[float]:
    """Each worker's share of a multi-worker gateway's worker CPU (``gateway2.w1``, ...)."""
    workers = sorted(k for k in summary["cpu_s"] if k.startswith(name + ".w"))
    total = sum(summary["cpu_s"][k] for k in workers)
    return [ratio(summary["cpu_s"][k], total) for k in workers]


def per_stream_bytes(
    before: dict[str, int], during: dict[str, int], streams: int
) -> dict[str, float]:
    """Memory growth per open stream, for each measure both readings have (rss, pss, uss)."""
    return {k: ratio(during[k] - before[k], streams) for k in before if k in during}
