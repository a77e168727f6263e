"""Gateway memory per open, idle stream (part of ``stream_bench.py``).

An idle stream here is what a user sees while a slow model thinks: the request was accepted,
the SSE response has started (head and the role event are through), the job is *running*
on an executor, and no token has come yet. To hold N of them open the benchmark starts a
second debug executor for its own model with a token delay of an hour and N + 50 slots, and
a fresh gateway (default settings, one process) so earlier levels' garbage is not in its
heap. The client opens the streams 200 at a time, each on its own connection.

Readings (``/proc``): the gateway's RSS, PSS and USS after a warm-up (50 idle streams opened
and closed, so lazy imports and caches are not counted), again with all N open and every
job running on the executor, and after they are closed. Per stream = (open - before) ÷ N.
The executor's memory and Redis's ``used_memory`` are read the same way for context; the
kernel's socket buffers (whole machine, both ends of every connection) are not in any RSS
and are reported separately.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from bench_figures import per_stream_bytes
from procinfo import memory, open_files, open_files_limit, tcp_buffer_bytes

from kuwa import keys
from tests.stack import RedisServer, Stack

MODEL = "bench-idle"
DELAY = 3600.0  # seconds before the first token: the job stays running, the stream idle
WARM_UP = 50
BATCH = 200  # streams opened at once (under KUWA_MAX_QUEUE=256 waiting jobs)
SETTLE_S = 2.0

Ask = Callable[[dict[str, Any]], dict[str, Any]]


def _executor_used(redis: RedisServer, pid: int) -> int:
    """The slots the executor with ``pid`` reported busy at its last heartbeat."""
    client = redis.client()
    try:
        for raw in client.hvals(keys.EXECUTOR_INFO):
            info = orjson.loads(raw)
            if info.get("pid") == pid:
                return int(info.get("used", 0))
    finally:
        client.close()
    return 0


def _channels(redis: RedisServer) -> int:
    client = redis.client()
    try:
        return len(client.pubsub_channels())
    finally:
        client.close()


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


def _readings(redis: RedisServer, pids: dict[str, int]) -> dict[str, Any]:
    client = redis.client()
    try:
        redis_used = int(client.info("memory")["used_memory"])
    finally:
        client.close()
    return {
        "gateway": memory(pids["gateway"]),
        "executor": memory(pids["executor"]),
        "redis": {"used_memory": redis_used},
        "tcp_buffers": tcp_buffer_bytes(),
        "gateway_open_files": open_files(pids["gateway"]),
    }


def measure(
    stack: Stack, redis: RedisServer, ask: Ask, count: int, timeout: float
) -> dict[str, Any]:
    """Open ``count`` idle streams on a fresh gateway; memory before, with them, after."""
    executor = stack.executor(
        MODEL, delay=DELAY, concurrency=count + WARM_UP, name="bench-idle-exec"
    )
    url = stack.gateway()
    pids = {"gateway": stack.procs[-1].popen.pid, "executor": executor.popen.pid}
    ask({"op": "target", "name": "idle", "url": url})
    hold = {"op": "hold", "target": "idle", "model": MODEL, "batch": BATCH}
    base_channels = _channels(redis)

    def closed() -> bool:
        return _channels(redis) <= base_channels and _executor_used(redis, pids["executor"]) == 0

    warm = ask(hold | {"streams": WARM_UP})
    ask({"op": "release"})
    if warm["errors"]:
        print(f"  idle warm-up errors: {warm['errors']} {warm['error_samples']}", flush=True)
    _wait(closed, timeout)
    time.sleep(SETTLE_S)
    before = _readings(redis, pids)

    held = ask(hold | {"streams": count})
    opened = held["opened"]
    print(
        f"  idle streams: {opened:,} of {count:,} open in {held['wall_s']:.1f} s, "
        f"errors {held['errors'] or 0}",
        flush=True,
    )
    for kind, message in held.get("error_samples", {}).items():
        print(f"      {kind}: {message}", flush=True)
    subscribed = _wait(lambda: _channels(redis) >= base_channels + opened, timeout)
    running = _wait(lambda: _executor_used(redis, pids["executor"]) >= opened, timeout)
    time.sleep(SETTLE_S)
    during = _readings(redis, pids)
    jobs_running = _executor_used(redis, pids["executor"])
    channels = _channels(redis) - base_channels

    ask({"op": "release"})
    released = _wait(closed, timeout)
    time.sleep(SETTLE_S)
    after = _readings(redis, pids)
    left = {
        "job_channels": _channels(redis) - base_channels,
        "jobs_running": _executor_used(redis, pids["executor"]),
    }

    def per_stream(reading: dict[str, Any], what: str) -> dict[str, float]:
        return per_stream_bytes(before[what], reading[what], opened)

    tcp = (
        (during["tcp_buffers"] - before["tcp_buffers"]) / opened
        if opened and during["tcp_buffers"] is not None and before["tcp_buffers"] is not None
        else None
    )
    return {
        "streams": count,
        "opened": opened,
        "errors": held["errors"],
        "open_s": held["wall_s"],
        "all_subscribed": subscribed,
        "all_running": running,
        "jobs_running": jobs_running,
        "job_channels": channels,
        "all_closed_after": released,
        "left_after_close": left,  # still subscribed / running when "after" was read
        "gateway_open_files_limit": open_files_limit(pids["gateway"]),
        "before": before,
        "open": during,
        "after": after,
        "per_stream_bytes": {
            "gateway": per_stream(during, "gateway"),
            "executor": per_stream(during, "executor"),
            "redis": per_stream(during, "redis"),
            "tcp_buffers_both_ends": tcp,
        },
        "left_after_close_per_stream_bytes": per_stream(after, "gateway"),
    }
