"""The result of a stress run: its figures, saved as JSON and read back for comparison."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kuwa.errors import InvalidRequestError
from kuwa.stress.stats import STAT_KEYS

FORMAT = "kuwa-stress"
VERSION = 1
LATENCIES = ("ttft", "tpot", "itl", "e2e")


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
        from kuwa.stress.report import render

        return render(self)
