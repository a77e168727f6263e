"""Optional profiling for ``stream_bench.py --profile``: py-spy on the benchmark's processes.

py-spy (``pip install py-spy``) samples a running process from outside, so the servers run
unchanged; its ``raw`` output (collapsed stacks) is summarised here as self and inclusive
shares per function.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


def start_profilers(pids: dict[str, int], folder: Path) -> list[subprocess.Popen[bytes]]:
    """Attach ``py-spy record`` to each named process; stop them with :func:`stop_profilers`."""
    binary = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if binary is None:
        print("--profile: py-spy not found (set PY_SPY=/path/to/py-spy)", file=sys.stderr)
        return []
    folder.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, pid in pids.items():
        cmd = [binary, "record", "--pid", str(pid), "--format", "raw"]
        rate = os.environ.get("PY_SPY_RATE", "250")
        cmd += ["--rate", rate, "--nonblocking", "--output", str(folder / f"{name}.txt")]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # let py-spy attach
    return procs


def stop_profilers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def summarize_profile(path: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from a py-spy ``raw`` (collapsed) file."""
    if not path.exists():
        return f"(no profile at {path})"
    total = 0
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r" \(.*?/((?:site-packages|src)/)?", " (", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    if not total:
        return "(empty profile)"
    lines = [f"{total} samples; top self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("top inclusive time:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in incl.most_common(top)]
    return "\n".join(lines)
