"""The result of a stress run: its figures, saved as JSON and read back for comparison, and
the human table of them, laid out like ``vllm bench serve`` prints its own."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Any

from kuwa.errors import InvalidRequestError
from kuwa.stress.stats import STAT_KEYS

FORMAT = "kuwa-stress"
VERSION = 1
LATENCIES = ("ttft", "tpot", "itl", "e2e")
# The human table (StressResult.report)
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


@dataclass(frozen=True)
class StressResult:
    """Figures of one run. Latencies are ``{"mean", "p50", "p90", "p99"}`` in seconds.

    ``failures`` maps a cause (``HTTP 404 model_not_found: …``, ``timeout: …``,
    ``connection error: …``, ``stream error model_error: …``) to how many requests failed of
    it. ``per_model`` holds the same figures for each model (``completed``, ``failed``,
    ``request_throughput``, ``output_tokens_per_s``, ``total_tokens_per_s``,
    ``total_output_tokens``, ``total_input_tokens``, the four latencies and ``failures``).
    ``token_counting`` says where token counts come from: ``usage`` (the gateway's
    ``usage``), ``tokenize`` (counted here with the debug backend's tokenizer), ``mixed`` or
    ``none`` (no request succeeded). ``cancelled`` counts requests in flight when the run
    was stopped (neither completed nor failed).
    """

    config: dict[str, Any]
    started_at: float
    duration: float
    completed: int
    failed: int
    request_throughput: float
    output_tokens_per_s: float
    total_output_tokens: int
    ttft: dict[str, float]
    tpot: dict[str, float]
    itl: dict[str, float]
    e2e: dict[str, float]
    failures: dict[str, int]
    per_model: dict[str, dict[str, Any]]
    token_counting: str
    cancelled: int = 0
    total_input_tokens: int = 0
    total_tokens_per_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = {"format": FORMAT, "version": VERSION}
        out.update(dataclasses.asdict(self))
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StressResult:
        """Read a result :meth:`to_json` wrote; a malformed one is an ``InvalidRequestError``.

        Unknown keys (from a later version) are ignored; fields added after version 1 may be
        missing and take their defaults."""
        if not isinstance(d, dict) or d.get("format", FORMAT) != FORMAT:
            raise InvalidRequestError("not a kuwa stress result", param="result")
        if not isinstance(d.get("version", VERSION), int) or d.get("version", VERSION) > VERSION:
            raise InvalidRequestError(
                f"stress result version {d.get('version')!r} is newer than this Kuwa reads",
                param="version",
            )
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in values]
        if missing:
            raise InvalidRequestError(f"stress result lacks {', '.join(missing)}", param=missing[0])
        for name in LATENCIES:
            value = values[name]
            if not isinstance(value, dict) or set(STAT_KEYS) - set(value):
                raise InvalidRequestError(f"{name} must have {', '.join(STAT_KEYS)}", param=name)
        return cls(**values)

    def report(self) -> str:
        """The human table (like ``vllm bench serve`` prints)."""
        return render(self)


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
