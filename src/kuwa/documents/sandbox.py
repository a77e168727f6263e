"""Reading a document in a child process with a time and memory limit.

``python -m kuwa.documents.sandbox MODE KIND MAX_PAGES < document``: MODE ``count`` prints
``{"pages": N}``, MODE ``extract`` prints ``{"progress": [done, total]}`` lines while it
reads, then ``{"pages": [[number, text], …]}``; either prints ``{"error": …, "too_large": …}``
for a file it cannot read. The parent (:func:`run`) kills a child that runs past its time,
so no file — a malformed PDF that loops, an XML bomb — can keep a worker or a gateway busy.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from kuwa.documents.extract import ExtractError, Page, count_pages, extract

MEMORY_LIMIT = 3 * 1024**3  # bytes of address space the child may map
__all__ = ["count", "read"]


def read(
    data: bytes,
    kind: str,
    max_pages: int,
    timeout: float,
    progress: Callable[[int, int], None] | None = None,
) -> list[Page]:
    """The document's pages (:func:`kuwa.documents.extract.extract`), read in a child."""
    out = _run("extract", data, kind, max_pages, timeout, progress)
    return [Page(number, text) for number, text in out["pages"]]


def count(data: bytes, kind: str, timeout: float) -> int:
    """The document's pages, counted in a child (a quick look before it is stored)."""
    return int(_run("count", data, kind, 0, timeout, None)["pages"])


def _run(
    mode: str,
    data: bytes,
    kind: str,
    max_pages: int,
    timeout: float,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kuwa.documents.sandbox", mode, kind, str(max_pages), str(timeout)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        result = _follow(proc, timeout, progress)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    if result is None:
        raise ExtractError(
            "Reading the file took too long, needed too much memory or crashed; it was stopped."
        )
    if "error" in result:
        raise ExtractError(str(result["error"]), too_large=bool(result.get("too_large")))
    return result


def _follow(
    proc: subprocess.Popen[bytes], timeout: float, progress: Callable[[int, int], None] | None
) -> dict[str, Any] | None:
    """Read the child's lines until its result; None when it ran out of time or died."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            chunk = os.read(proc.stdout.fileno(), 1 << 20)
            if not chunk:
                return None  # ended without a result: killed (memory) or crashed
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if "progress" in message:
                    if progress is not None:
                        progress(*message["progress"])
                    continue
                return dict(message)


def _limit_self(timeout: float) -> None:
    """The child's own limits, set first thing (not in ``preexec_fn``: the parent may have
    threads, with which forking and running Python before exec is unsafe)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    cpu = int(timeout) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def main(argv: list[str]) -> int:
    mode, kind, max_pages = argv[0], argv[1], int(argv[2])
    _limit_self(float(argv[3]))
    data = sys.stdin.buffer.read()
    out = sys.stdout

    def say(message: dict[str, Any]) -> None:
        out.write(json.dumps(message, ensure_ascii=False) + "\n")
        out.flush()

    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or done == total:
            last[0] = now
            say({"progress": [done, total]})

    try:
        if mode == "count":
            say({"pages": count_pages(data, kind)})
        else:
            pages = extract(data, kind, max_pages, progress)
            say({"pages": [[p.number, p.text] for p in pages]})
    except ExtractError as exc:
        say({"error": exc.message, "too_large": exc.too_large})
    except MemoryError:
        say({"error": "Reading the file needed too much memory; it was stopped."})
    except RecursionError:
        say({"error": "The file is nested too deeply to be read."})
    except Exception as exc:  # a library's own failure on a malformed file
        say({"error": f"The file cannot be read ({type(exc).__name__}: {exc})."})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
