"""What one request measured (a :class:`Sample`) and the summaries a run reports.

The definitions are vLLM's (``vllm bench serve``), so numbers compare:

- TTFT: from sending the request to the first chunk with non-empty content;
- TPOT: per request, ``(e2e - ttft) / (output_tokens - 1)``, for requests with more than one
  output token; the summary is over requests;
- ITL: the gaps between consecutive content chunks, over all chunks of all requests (a chunk
  may carry several tokens when the executor coalesces them);
- E2E: from sending the request to the end of its stream (``[DONE]``).

Only successful requests enter the latency and token figures; failed ones are counted by
cause.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

STAT_KEYS = ("mean", "p50", "p90", "p99")
USAGE = "usage"
TOKENIZE = "tokenize"


@dataclass
class Sample:
    """One request: what it asked, when things arrived (seconds on the run's clock)."""

    model: str
    start: float
    end: float = 0.0
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    input_tokens: int = 0
    counted_by: str = USAGE  # "usage" (reported by the gateway) or "tokenize" (counted here)
    cause: str | None = None  # why it failed; None when it succeeded

    @property
    def ok(self) -> bool:
        return self.cause is None

    @property
    def e2e(self) -> float:
        return self.end - self.start

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, interpolated like numpy's default."""
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Iterable[float]) -> dict[str, float]:
    """``{"mean", "p50", "p90", "p99"}`` in seconds; all 0.0 when there are no values."""
    ordered = sorted(values)
    mean = math.fsum(ordered) / len(ordered) if ordered else 0.0
    return {
        "mean": mean,
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
    }


def token_counting(samples: Sequence[Sample]) -> str:
    """``usage`` when the gateway reported every successful request's tokens, ``tokenize``
    when none (counted with the debug tokenizer), ``mixed`` for both, ``none`` without any
    successful request."""
    ways = {s.counted_by for s in samples if s.ok}
    if not ways:
        return "none"
    return ways.pop() if len(ways) == 1 else "mixed"


def figures(samples: Sequence[Sample], duration: float) -> dict[str, Any]:
    """The numbers a result holds for ``samples`` (a whole run, or one model's share)."""
    ok = [s for s in samples if s.ok]
    output = sum(s.output_tokens for s in ok)
    total = output + sum(s.input_tokens for s in ok)
    per_s = 1 / duration if duration > 0 else 0.0
    return {
        "completed": len(ok),
        "failed": len(samples) - len(ok),
        "request_throughput": len(ok) * per_s,
        "output_tokens_per_s": output * per_s,
        "total_tokens_per_s": total * per_s,
        "total_output_tokens": output,
        "total_input_tokens": total - output,
        "ttft": summary(s.ttft for s in ok if s.ttft is not None),
        "tpot": summary(t for s in ok if (t := s.tpot) is not None),
        "itl": summary(gap for s in ok for gap in s.itl),
        "e2e": summary(s.e2e for s in ok),
        "failures": failures(samples),
    }


def failures(samples: Iterable[Sample]) -> dict[str, int]:
    """Failed requests by cause, most frequent first."""
    counts = Counter(s.cause for s in samples if s.cause is not None)
    return dict(counts.most_common())
