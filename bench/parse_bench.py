"""The chat request parse path, before and after the typed wire schemas (#21), side by side.

The gateway's first step for every chat: the request body's bytes become a ``ChatRequest``.
Before: ``orjson.loads`` then the hand-written validator (``parse_chat_request``), loaded here
from git at ``--baseline`` (the last commit that had it). After: ``decode_chat_request``, one
msgspec pass into the typed struct, then the same ``ChatRequest``. Both run on the same bodies
in alternating rounds, in one process; it prints microseconds per request and the ratio.

    .venv/bin/python bench/parse_bench.py [--baseline 83b1f5d] [--rounds 7] [--number 20000]

A benchmark, not a test: it prints figures and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import timeit
import types
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from kuwa.schemas import ChatRequest, decode_chat_request  # noqa: E402


def legacy_parser(rev: str) -> Callable[[Any, str], ChatRequest]:
    """``parse_chat_request`` as it was at ``rev`` (its module run from git's copy)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/kuwa/schemas/chat.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("legacy_chat")
    sys.modules["legacy_chat"] = module  # dataclasses look their module up
    exec(compile(source, "legacy_chat.py", "exec"), module.__dict__)
    parse: Callable[[Any, str], ChatRequest] = module.parse_chat_request
    return parse


def bodies() -> dict[str, bytes]:
    hello = [{"role": "user", "content": "Hello! How are you today?"}]
    history = [
        {"role": "system", "content": "Answer briefly and politely."},
        *[
            {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}: " + "x" * 200}
            for i in range(10)
        ],
    ]
    long = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 100}
        for i in range(100)
    ]
    params = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 256, "stop": ["\n\n"], "seed": 1}
    return {
        "one prompt": orjson.dumps({"model": "echo", "messages": hello}),
        "one prompt, streamed + params": orjson.dumps(
            {
                "model": "echo",
                "messages": hello,
                "stream": True,
                "stream_options": {"include_usage": True},
                **params,
            }
        ),
        "10-turn history + params": orjson.dumps({"model": "echo", "messages": history, **params}),
        "100-turn history (50 KB)": orjson.dumps({"model": "echo", "messages": long}),
    }


def measure(fn: Callable[[], object], number: int) -> float:
    """Microseconds per call."""
    return timeit.timeit(fn, number=number) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="83b1f5d", help="git revision of the old parser")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000, help="calls per round (one prompt)")
    args = parser.parse_args()
    old = legacy_parser(args.baseline)
    print(f"chat request parse path: bytes -> ChatRequest (openai dialect), {args.rounds} rounds")
    print(f"{'body':<32} {'before µs':>10} {'after µs':>10} {'after/before':>13}")
    for name, raw in bodies().items():
        before_fields = asdict(old(orjson.loads(raw), "openai"))
        after_fields = asdict(decode_chat_request(raw, "openai"))  # may have fields added since
        same = before_fields == {k: v for k, v in after_fields.items() if k in before_fields}
        assert same, f"{name}: the two parsers disagree"
        number = max(100, args.number * 300 // max(300, len(raw)))
        before, after = [], []
        for _ in range(args.rounds):  # alternate, so drift hits both
            before.append(measure(lambda raw=raw: old(orjson.loads(raw), "openai"), number))
            after.append(measure(lambda raw=raw: decode_chat_request(raw, "openai"), number))
        b, a = statistics.median(before), statistics.median(after)
        print(f"{name:<32} {b:>10.2f} {a:>10.2f} {a / b:>13.2f}")


if __name__ == "__main__":
    main()
