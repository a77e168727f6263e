"""The ratio plot of ``stream_bench.py --plot PNG`` (matplotlib, the ``bench`` extra).

Four panels over the concurrency levels, each Kuwa ÷ direct for K1 (one gateway process)
and K2 (a gateway of two workers): tokens/s, TTFT p50, TTFT p99 and CPU per token. A dotted
line marks parity (1x) and, on the tokens/s panel, a dashed one the issue's 50 % target.

Redraw from a saved run: ``python bench/bench_plot.py RESULTS.json OUT.png`` (the JSON of
``stream_bench.py --json``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from bench_figures import KUWA, LABELS, ratio_rows

PANELS = (
    ("tokens_per_s", "tokens/s  (higher is better)", False),
    ("ttft_p50", "TTFT p50  (lower is better)", True),
    ("ttft_p99", "TTFT p99  (lower is better)", True),
    ("cpu_per_token", "CPU per token, all processes  (lower is better)", False),
)
COLOURS = {"kuwa": "#1f77b4", "kuwa2": "#ff7f0e"}


def plot_ratios(results: dict[str, Any], path: Path) -> None:
    """Write the PNG; raises ImportError without matplotlib (``pip install -e '.[bench]'``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = ratio_rows(results["levels"])
    levels = [lv["streams"] for lv in results["levels"]]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), dpi=110)
    width = 0.38
    for ax, (key, title, log) in zip(axes.flat, PANELS, strict=True):
        for k, target in enumerate(KUWA):
            values = [
                next((r[key] for r in rows if r["streams"] == n and r["target"] == target), 0)
                for n in levels
            ]
            values = [0.0 if v is None or math.isnan(v) else v for v in values]
            xs = [i + (k - 0.5) * width for i in range(len(levels))]
            bars = ax.bar(xs, values, width, label=_label(target), color=COLOURS[target])
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8, padding=2)
        ax.axhline(1.0, color="black", linestyle=":", linewidth=1)
        if key == "tokens_per_s":
            ax.axhline(0.5, color="red", linestyle="--", linewidth=1, label="target ≥ 0.5 at 1,000")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(levels)), [f"{n:,}" for n in levels])
        ax.set_xlabel("concurrent streams", fontsize=9)
        ax.set_ylabel("Kuwa ÷ direct", fontsize=9)
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    refused = _refused(results)
    if refused:
        fig.text(0.5, 0.045, refused, ha="center", fontsize=8.5, color="#a00")
    machine = results["machine"]
    when = f"{results['date']}, " if results.get("date") else ""
    fig.suptitle(
        f"Kuwa ÷ direct baseline, debug executor at zero delay, "
        f"{results['tokens_per_answer']} tokens an answer, rounds a level: {results['rounds']}\n"
        f"{when}commit {machine['source']['commit']}, {machine['cpus']} vCPUs shared with "
        f"other work (load average {_load(results)})",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _label(target: str) -> str:
    return f"{LABELS[target]}: " + (
        "one gateway process" if target == "kuwa" else "gateway with 2 workers"
    )


def _refused(results: dict[str, Any]) -> str:
    """A footnote naming the levels where Kuwa refused or failed requests (bars count only
    what was delivered)."""
    notes = []
    for lv in results["levels"]:
        shares = [
            f"{LABELS[t]} {100 * sum(lv[t]['errors'].values()) / lv[t]['requests']:.0f} %"
            for t in KUWA
            if lv[t]["requests"] and sum(lv[t]["errors"].values())
        ]
        if shares:
            notes.append(f"{lv['streams']:,} streams: {', '.join(shares)}")
    if not notes:
        return ""
    kinds = sorted({k for lv in results["levels"] for t in KUWA for k in lv[t]["errors"]})
    return f"Requests failed ({', '.join(kinds)}): {'; '.join(notes)}"


def _load(results: dict[str, Any]) -> str:
    loads = results.get("load_average_samples") or [results["machine"]["load_average_at_start"][0]]
    return f"{min(loads):.1f}-{max(loads):.1f}"


if __name__ == "__main__":
    import orjson

    plot_ratios(orjson.loads(Path(sys.argv[1]).read_bytes()), Path(sys.argv[2]))
