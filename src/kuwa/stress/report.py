"""The human table of a stress result, laid out like ``vllm bench serve`` prints its own."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kuwa.stress.result import StressResult

WIDTH = 50
SECTIONS = (
    ("ttft", "TTFT", "Time to First Token"),
    ("tpot", "TPOT", "Time per Output Token (excl. 1st token)"),
    ("itl", "ITL", "Inter-token Latency"),
    ("e2e", "E2EL", "End-to-end Latency"),
)
COUNTING = {
    "usage": "usage (reported by the gateway)",
    "tokenize": "tokenize (kuwa.executors.debug, client side)",
    "mixed": "mixed (usage where reported, else tokenize)",
    "none": "none (no request succeeded)",
}
MAX_CAUSE = 90


def render(result: StressResult) -> str:
    config = result.config
    lines = [" Kuwa stress result ".center(WIDTH, "=")]
    row = lines.append
    started = datetime.datetime.fromtimestamp(result.started_at).astimezone()
    row(_row("Started:", started.strftime("%Y-%m-%d %H:%M:%S %z")))
    row(_row("Target:", str(config.get("url", "?"))))
    row(_row("Models:", ", ".join(config.get("models", ()))))
    row(_row("Load:", _load(config)))
    row(_row("Successful requests:", result.completed))
    row(_row("Failed requests:", result.failed))
    if result.cancelled:
        row(_row("Cancelled requests (stopped):", result.cancelled))
    row(_row("Benchmark duration (s):", f"{result.duration:.2f}"))
    row(_row("Total input tokens:", result.total_input_tokens))
    row(_row("Total generated tokens:", result.total_output_tokens))
    row(_row("Request throughput (req/s):", f"{result.request_throughput:.2f}"))
    row(_row("Output token throughput (tok/s):", f"{result.output_tokens_per_s:.2f}"))
    row(_row("Total token throughput (tok/s):", f"{result.total_tokens_per_s:.2f}"))
    row(_row("Tokens counted by:", COUNTING.get(result.token_counting, result.token_counting)))
    for key, short, title in SECTIONS:
        lines.append(f"{title:-^{WIDTH}}")
        stats: dict[str, float] = getattr(result, key)
        for stat, label in (("mean", "Mean"), ("p50", "Median"), ("p90", "P90"), ("p99", "P99")):
            row(_row(f"{label} {short} (ms):", f"{stats[stat] * 1000:.2f}"))
    if len(result.per_model) > 1:
        lines.append(f"{'Per model':-^{WIDTH}}")
        for model, figures in result.per_model.items():
            lines += _model(model, figures)
    if result.failures:
        lines.append(f"{'Failures':-^{WIDTH}}")
        for cause, count in result.failures.items():
            lines.append(f"{count:>7}  {_short(cause)}")
    lines.append("=" * WIDTH)
    return "\n".join(lines)


def _row(label: str, value: object) -> str:
    return f"{label:<40} {value}"


def _load(config: dict[str, Any]) -> str:
    bound = f"{config.get('requests')} requests"
    if config.get("duration"):
        bound += f" or {config['duration']:g} s"
    if config.get("rate"):
        shape = f"Poisson {config['rate']:g} req/s, at most {config.get('concurrency')} at once"
    else:
        shape = f"{config.get('concurrency')} workers, closed loop"
    return f"{shape}; {bound}"


def _model(model: str, f: dict[str, Any]) -> list[str]:
    ms = 1000
    head = f"{model}: {f['completed']} ok, {f['failed']} failed"
    if not f["completed"]:
        return [head]
    return [
        f"{head}, {f['request_throughput']:.2f} req/s, {f['output_tokens_per_s']:.1f} tok/s",
        f"  TTFT p50 {f['ttft']['p50'] * ms:.1f} ms, TPOT p50 {f['tpot']['p50'] * ms:.2f} ms, "
        f"ITL p50 {f['itl']['p50'] * ms:.2f} ms, E2EL p50 {f['e2e']['p50'] * ms:.1f} ms",
    ]


def _short(cause: str) -> str:
    return cause if len(cause) <= MAX_CAUSE else cause[: MAX_CAUSE - 1] + "…"
