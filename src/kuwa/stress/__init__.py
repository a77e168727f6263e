"""The stress measure: a load generator for any Kuwa gateway, reporting like ``vllm bench
serve`` (throughput, TTFT, TPOT, ITL, end-to-end latency, failures by cause).

A library first: ``kuwa-cli stress`` and the dashboard's background job are thin wrappers
around :func:`run_stress`. See docs/stress.md.
"""

from __future__ import annotations

from kuwa.stress.config import (
    BUILTIN_PROMPTS,
    MAX_CONCURRENCY,
    MAX_DURATION,
    MAX_RATE,
    MAX_REQUESTS,
    StressConfig,
    configured_targets,
    load_prompts,
    targets_of,
)
from kuwa.stress.result import StressResult
from kuwa.stress.runner import Progress, run_stress

__all__ = [
    "BUILTIN_PROMPTS",
    "MAX_CONCURRENCY",
    "MAX_DURATION",
    "MAX_RATE",
    "MAX_REQUESTS",
    "Progress",
    "StressConfig",
    "StressResult",
    "configured_targets",
    "load_prompts",
    "run_stress",
    "targets_of",
]
