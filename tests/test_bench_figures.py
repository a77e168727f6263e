"""The benchmark's arithmetic (bench/bench_figures.py): no processes, only the numbers."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _load() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "bench" / "bench_figures.py"
    spec = importlib.util.spec_from_file_location("bench_figures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bf = _load()


def _round(ttft: list[float], tokens: int, wall: float, cpu: dict[str, float]) -> dict[str, Any]:
    return {
        "ttft_s": ttft,
        "ttft_later_s": ttft[1:],
        "wall_s": wall,
        "tokens": tokens,
        "requests": len(ttft),
        "errors": {},
        "cpu_s": cpu,
        "redis_calls": {"publish": tokens // 8},
    }


def test_percentile_interpolates_like_numpy() -> None:
    assert bf.percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.5
    assert bf.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.99) == pytest.approx(4.96)
    assert math.isnan(bf.percentile([], 0.5))
    assert math.isnan(bf.ratio(1.0, 0.0))


def test_rounds_rotate_so_each_target_takes_each_place() -> None:
    orders = [bf.round_order(r) for r in range(3)]
    assert orders[0] == ("direct", "kuwa", "kuwa2")
    for place in range(3):
        assert {o[place] for o in orders} == set(bf.TARGETS)
    assert bf.round_order(3) == orders[0]


def test_summary_and_ratios() -> None:
    direct = bf.summarize(
        "direct",
        [_round([0.010, 0.020], 2000, 1.0, {"direct": 0.04, "client": 0.02, "gateway": 0.0})],
    )
    kuwa2 = bf.summarize(
        "kuwa2",
        [
            _round(
                [0.030, 0.040],
                2000,
                2.0,
                {"gateway2": 0.001, "gateway2.w1": 0.006, "gateway2.w2": 0.002, "executor": 0.02},
            )
        ],
    )
    # All gateway processes (supervisor and workers) count as the gateway.
    assert kuwa2["cpu_s_per_1k_tokens"]["gateway"] == pytest.approx(0.0045)
    assert kuwa2["cpu_s_per_1k_tokens"]["total"] == pytest.approx(0.0145)
    assert direct["cpu_s_per_1k_tokens"]["total"] == pytest.approx(0.03)
    assert bf.worker_split(kuwa2) == pytest.approx([0.75, 0.25])

    vs = bf.compare(kuwa2, direct)
    assert vs["tokens_per_s_ratio"] == pytest.approx(0.5)
    assert vs["ttft_p50_ratio"] == pytest.approx(0.035 / 0.015)
    assert vs["added_ttft_p50_s"] == pytest.approx(0.020)
    assert vs["cpu_per_token_ratio"] == pytest.approx(0.0145 / 0.03)
    assert vs["chunk_messages_per_s"] == pytest.approx(125.0)

    rows = bf.ratio_rows([{"streams": 10, "vs_direct": {"kuwa2": vs}}])
    assert rows == [
        {
            "streams": 10,
            "target": "kuwa2",
            "label": "K2",
            "tokens_per_s": vs["tokens_per_s_ratio"],
            "ttft_p50": vs["ttft_p50_ratio"],
            "ttft_p99": vs["ttft_p99_ratio"],
            "cpu_per_token": vs["cpu_per_token_ratio"],
        }
    ]


def test_memory_per_stream() -> None:
    before = {"rss": 100_000_000, "uss": 90_000_000}
    during = {"rss": 250_000_000, "uss": 240_000_000, "pss": 1}
    assert bf.per_stream_bytes(before, during, 10_000) == {"rss": 15_000.0, "uss": 15_000.0}
