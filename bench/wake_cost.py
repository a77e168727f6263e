"""What one wake-up costs on this machine, doing nothing: the floor under every paced token.

A child process on the same core sends one byte every 5 ms over a socket pair; the parent
sleeps until it comes, 1,000 times, and reads its own CPU time (user + system) from
``getrusage``: once blocking in ``recv`` (the kernel's part alone), once in an asyncio event
loop, once in uvloop's (which Kuwa's processes run on). Each Kuwa process a token passes
through pays at least this, and more: the work itself runs with cold caches after a sleep.

    .venv/bin/python bench/wake_cost.py [--core 0] [--wakes 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import time
from collections.abc import Callable


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def with_sender(wakes: int, receive: Callable[[socket.socket], None]) -> float:
    """CPU seconds per wake-up of ``receive`` (which must take ``wakes`` bytes)."""
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the sender
        a.close()
        for _ in range(wakes):
            time.sleep(0.005)
            b.send(b"x")
        os._exit(0)
    b.close()
    start = cpu()
    receive(a)
    spent = cpu() - start
    os.waitpid(pid, 0)
    a.close()
    return spent / wakes


def blocking(wakes: int) -> Callable[[socket.socket], None]:
    def receive(sock: socket.socket) -> None:
        for _ in range(wakes):
            sock.recv(16)

    return receive


def event_loop(wakes: int, run: Callable[..., None]) -> Callable[[socket.socket], None]:
    def receive(sock: socket.socket) -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            count = 0

            def readable() -> None:
                nonlocal count
                count += len(sock.recv(16))
                if count >= wakes and not done.done():
                    done.set_result(None)

            sock.setblocking(False)
            loop.add_reader(sock.fileno(), readable)
            await done
            loop.remove_reader(sock.fileno())

        run(main())

    return receive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--wakes", type=int, default=1000)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    runs: dict[str, Callable[[socket.socket], None]] = {
        "blocking recv": blocking(args.wakes),
        "asyncio": event_loop(args.wakes, asyncio.run),
    }
    try:
        import uvloop

        runs["uvloop"] = event_loop(args.wakes, uvloop.run)
    except ImportError:
        pass
    print(f"1-min load {os.getloadavg()[0]:.2f}; {args.wakes} wake-ups each, on core {args.core}")
    for name, receive in runs.items():
        print(f"  {name}: {with_sender(args.wakes, receive) * 1e6:.0f} µs of CPU per wake-up")


if __name__ == "__main__":
    main()
