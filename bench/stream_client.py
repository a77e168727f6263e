"""The load generator of ``stream_bench.py``, in its own process (own event loop and core).

Driven over stdin/stdout, one JSON object per line, so its connections stay open across
rounds:

* ``{"op": "init", "targets": {name: base_url}, "token": ..., "model": ..., "prompt": ...,
  "timeout": seconds}`` (a request still unfinished after ``timeout`` counts as an error);
* ``{"op": "run", "target": name, "streams": S, "per_stream": K, "max_tokens": M|null}``
  runs S concurrent streams, each sending K streaming chat completions back to back on its
  own keep-alive connection, and answers with the wall time, the client's own CPU time in
  that window, every request's TTFT (and separately those of each stream's later
  requests), tokens received and errors. Answers are checked after the timed window.
  Optional in ``run``: ``"model"`` (another model than init's), ``"stream": false`` (plain
  chat completions: "TTFT" is then the whole answer's time) and ``"itl": true`` (also
  answer ``gaps_s``: the times between successive reads that brought answer text, over
  every stream: the inter-token latency a reader sees);
* ``{"op": "target", "name": ..., "url": ..., "token": ...}`` adds a target (a server started
  later; its own token if given);
* ``{"op": "hold", "target": name, "streams": N, "model": ..., "batch": B}`` opens N idle
  streams (B at a time, each on its own new connection) and keeps them open: a stream
  counts as open once the response head and its first event (the role delta) arrived.
  Answers with how many opened, the errors and the wall time;
* ``{"op": "release"}`` closes every held stream's connection;
* ``{"op": "quit"}``.

TTFT is the time from writing a request to receiving the first non-empty content delta.
Tokens are counted with ``kuwa.executors.debug.tokenize`` on the concatenated content, so
both targets count the same way; a stream counts as an error unless it is a 200 that
carries the whole answer (when ``max_tokens`` is null), a finish reason and ``[DONE]``.

Why not httpx: the load generator must cost far less than what it measures. httpx spent
~33 µs of CPU per received event (the direct baseline sends one per token) and its
connection pool scans every connection on each request (``_assign_requests_to_connections``
took ~40 % of the client's CPU at 100 streams), so with httpx the client, not the servers,
set the pace and the direct baseline (200 events per answer) was slowed far more than Kuwa
(a few coalesced events per answer). This client is a minimal HTTP/1.1 keep-alive client on
asyncio protocols: per read it appends bytes and checks for the end of the response; it
parses the events once, after the timed window.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import orjson

from kuwa.executors.debug import tokenize

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
    uvloop = None  # type: ignore[assignment]

FIRST_CONTENT = re.compile(rb'"delta":\{"content":"[^"]')
ANY_CONTENT = re.compile(rb'"content":"[^"]')
LAST_CHUNK = b"0\r\n\r\n"


class Response:
    """One response being received: status, body framing, TTFT, completion."""

    def __init__(
        self,
        start: float,
        done: asyncio.Future[None],
        opened: asyncio.Future[None] | None = None,
    ) -> None:
        self.start = start
        self.done = done
        self.opened = opened  # set at the first complete event of a 200 (held streams)
        self.buf = bytearray()
        self.body_at = -1
        self.status = 0
        self.chunked = False
        self.length = -1
        self.keep_alive = True
        self.ttft: float | None = None
        self.scanned = 0
        self.marks: list[float] | None = None  # when reads brought answer text ("itl")

    def feed(self, data: bytes) -> None:
        self.buf += data
        if self.marks is not None and ANY_CONTENT.search(data) is not None:
            self.marks.append(time.perf_counter())
        if self.body_at < 0 and not self._head():
            return
        if (
            self.opened is not None
            and not self.opened.done()
            and self.status == 200
            and self.buf.find(b"\n\n", self.body_at) >= 0
        ):
            self.opened.set_result(None)
        if self.ttft is None:
            found = FIRST_CONTENT.search(self.buf, max(self.body_at, self.scanned - 32))
            if found is not None:
                self.ttft = time.perf_counter() - self.start
            self.scanned = len(self.buf)
        if self.chunked:
            if self.buf.endswith(LAST_CHUNK) and self.body() is not None:
                self.done.set_result(None)
        elif self.length >= 0 and len(self.buf) - self.body_at >= self.length:
            self.done.set_result(None)

    def _head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self.buf[:end]).split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value:
                self.chunked = True
            elif name == b"content-length":
                self.length = int(value)
            elif name == b"connection" and value == b"close":
                self.keep_alive = False
        self.body_at = end + 4
        return True

    def body(self) -> bytes | None:
        """The de-chunked body, or None while incomplete."""
        if not self.chunked:
            return bytes(self.buf[self.body_at : self.body_at + self.length])
        out = []
        pos, buf = self.body_at, self.buf
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            if size == 0:
                return b"".join(out) if buf.find(b"\r\n", eol + 2) >= 0 else None
            start = eol + 2
            if len(buf) < start + size + 2:
                return None
            out.append(bytes(buf[start : start + size]))
            pos = start + size + 2


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.response is not None and not self.response.done.done():
            try:
                self.response.feed(data)
            except ValueError as exc:  # a malformed response
                self.response.done.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None and not self.response.done.done():
            self.response.done.set_exception(ConnectionError("connection lost"))
            self.response.done.exception()  # nobody may be waiting for it (held streams)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True


class Outcome:
    __slots__ = ("body", "error", "first", "gaps", "tokens", "ttft")

    def __init__(self, first: bool) -> None:
        self.first = first  # the first request of its stream (sent in the opening burst)
        self.ttft: float | None = None
        self.body = b""  # checked after the timed window, so checking costs no time in it
        self.tokens = 0
        self.error: str | None = None
        self.gaps: list[float] = []


def _events(body: bytes) -> list[bytes]:
    """The ``data:`` payloads of the SSE events in ``body``."""
    return [
        line[5:].strip()
        for event in body.split(b"\n\n")
        for line in event.split(b"\n")
        if line.startswith(b"data:")
    ]


class Target:
    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        ).encode()
        self.conns: list[Connection | None] = []

    async def connection(self, i: int, *, fresh: bool = False) -> tuple[Connection, bool]:
        """Stream ``i``'s connection and whether it was just opened."""
        while len(self.conns) <= i:
            self.conns.append(None)
        conn = self.conns[i]
        stale = conn is not None and (
            conn.closed or conn.transport is None or conn.transport.is_closing()
        )
        if conn is not None and (fresh or stale):
            conn.close()
            conn = None
        if conn is None:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(Connection, self.host, self.port)
            self.conns[i] = conn
            return conn, True
        return conn, False

    def close(self) -> None:
        for conn in self.conns:
            if conn is not None:
                conn.close()


class Client:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.targets = {name: Target(url, spec["token"]) for name, url in spec["targets"].items()}
        self.model = spec["model"]
        self.prompt = spec["prompt"]
        self.timeout = float(spec.get("timeout", 60))
        self.samples: dict[str, str] = {}  # one message per kind of error
        self.token = spec["token"]
        self.held: list[Connection] = []

    def close(self) -> None:
        self.release()
        for target in self.targets.values():
            target.close()

    def add_target(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.targets[cmd["name"]] = Target(cmd["url"], cmd.get("token") or self.token)
        return {"ok": True}

    async def hold(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Open ``streams`` idle streams, ``batch`` at a time, and keep them open."""
        target = self.targets[cmd["target"]]
        body = orjson.dumps(
            {
                "model": cmd["model"],
                "stream": True,
                "messages": [{"role": "user", "content": "an idle stream"}],
            }
        )
        request = target.head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        loop = asyncio.get_running_loop()
        errors: Counter[str] = Counter()

        async def open_one() -> None:
            conn: Connection | None = None
            try:
                async with asyncio.timeout(self.timeout):
                    _, conn = await loop.create_connection(Connection, target.host, target.port)
                    assert conn.transport is not None
                    opened: asyncio.Future[None] = loop.create_future()
                    conn.response = Response(time.perf_counter(), loop.create_future(), opened)
                    conn.transport.write(request)
                    await asyncio.wait(
                        [opened, conn.response.done], return_when=asyncio.FIRST_COMPLETED
                    )
                if opened.done():
                    self.held.append(conn)
                    return
                conn.response.done.result()  # raises what ended it
                errors[f"HTTP {conn.response.status}"] += 1
                self.samples.setdefault(
                    f"HTTP {conn.response.status}",
                    (conn.response.body() or b"")[:300].decode(errors="replace"),
                )
            except Exception as exc:  # counted and reported, never fatal
                errors[type(exc).__name__] += 1
            if conn is not None:
                conn.close()

        start = time.perf_counter()
        left = cmd["streams"]
        while left > 0:
            n = min(left, cmd.get("batch", 200))
            async with asyncio.TaskGroup() as tg:
                for _ in range(n):
                    tg.create_task(open_one())
            left -= n
        return {
            "opened": len(self.held),
            "errors": dict(errors),
            "error_samples": {k: v for k, v in self.samples.items() if k in errors},
            "wall_s": time.perf_counter() - start,
        }

    def release(self) -> dict[str, Any]:
        n = len(self.held)
        for conn in self.held:
            conn.close()
        self.held.clear()
        return {"closed": n}

    async def exchange(self, target: Target, i: int, request: bytes, itl: bool = False) -> Response:
        """Send one request on stream ``i``'s connection and wait for the whole response.

        A kept-alive connection the server closed while this process was idle (its loop
        only runs during a round, so it has not seen the FIN yet) fails before any byte
        comes back; like any HTTP client, retry that once on a new connection. The clock
        starts when the request is written, so connection set-up is never in the TTFT.
        """
        loop = asyncio.get_running_loop()
        conn, fresh = await target.connection(i)
        while True:
            assert conn.transport is not None
            response = Response(time.perf_counter(), loop.create_future())
            if itl:
                response.marks = []
            conn.response = response
            conn.transport.write(request)
            try:
                async with asyncio.timeout(self.timeout):
                    await response.done
            except ConnectionError:
                if fresh or response.buf:
                    raise
                conn, fresh = await target.connection(i, fresh=True)
                continue
            if not response.keep_alive:
                conn.close()
            return response

    async def one(
        self, target: Target, i: int, body: bytes, first: bool, *, itl: bool = False
    ) -> Outcome:
        out = Outcome(first)
        request = target.head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        try:
            response = await self.exchange(target, i, request, itl)
        except Exception as exc:  # counted and reported, never fatal
            out.error = type(exc).__name__
            if i < len(target.conns) and target.conns[i] is not None:
                target.conns[i].close()  # type: ignore[union-attr]
            return out
        if response.status != 200:
            out.error = f"HTTP {response.status}"
            try:
                err = orjson.loads(response.body() or b"{}")["error"]
                out.error += f" {err.get('code') or err.get('type')}"
                self.samples.setdefault(out.error, str(err.get("message"))[:300])
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                pass
            return out
        out.ttft = response.ttft
        if response.ttft is None and not response.chunked:  # a plain (non-streamed) answer
            out.ttft = time.perf_counter() - response.start
        if response.marks:
            out.gaps = [b - a for a, b in zip(response.marks, response.marks[1:], strict=False)]
        out.body = response.body() or b""
        return out

    def _check(self, out: Outcome, max_tokens: int | None) -> None:
        body, out.body = out.body, b""
        text: list[str] = []
        finish = None
        done = False
        if not body.startswith(b"data:") and body.startswith(b"{"):
            return self._check_plain(out, body, max_tokens)
        try:
            for payload in _events(body):
                if payload == b"[DONE]":
                    done = True
                    continue
                obj = orjson.loads(payload)
                if "error" in obj:
                    err = obj["error"]
                    out.error = f"{err.get('type', 'error')}: {err.get('code')}"
                    self.samples.setdefault(out.error, str(err.get("message"))[:300])
                    continue
                choice = obj["choices"][0]
                text.append(choice["delta"].get("content") or "")
                finish = choice.get("finish_reason") or finish
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            out.error = "malformed event"
        answer = "".join(text)
        out.tokens = len(tokenize(answer))
        if out.error is None:
            if not done or finish is None:
                out.error = "incomplete stream"
            elif max_tokens is None and answer != self.prompt:
                out.error = "wrong content"
            elif out.ttft is None:
                out.error = "no content"

    def _check_plain(self, out: Outcome, body: bytes, max_tokens: int | None) -> None:
        """A non-streamed answer: one ``chat.completion`` object."""
        try:
            choice = orjson.loads(body)["choices"][0]
            answer = choice["message"]["content"] or ""
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            out.error = "malformed answer"
            return
        out.tokens = len(tokenize(answer))
        if max_tokens is None and answer != self.prompt:
            out.error = "wrong content"

    async def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        target = self.targets[cmd["target"]]
        max_tokens = cmd.get("max_tokens")
        itl = bool(cmd.get("itl"))
        request: dict[str, Any] = {
            "model": cmd.get("model") or self.model,
            "stream": cmd.get("stream", True),
            "messages": [{"role": "user", "content": self.prompt}],
        }
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        body = orjson.dumps(request)
        outcomes: list[Outcome] = []

        async def stream(i: int) -> None:
            for n in range(cmd["per_stream"]):
                outcomes.append(await self.one(target, i, body, n == 0, itl=itl))

        await asyncio.sleep(0.05)  # let the loop see connections closed while it was idle
        cpu, start = time.process_time(), time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for i in range(cmd["streams"]):
                tg.create_task(stream(i))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        for o in outcomes:
            if o.error is None:
                self._check(o, max_tokens)
        errors = Counter(o.error for o in outcomes if o.error is not None)
        good = [o for o in outcomes if o.ttft is not None and o.error is None]
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "requests": len(outcomes),
            "ttft_s": [o.ttft for o in good],
            "ttft_later_s": [o.ttft for o in good if not o.first],
            "tokens": sum(o.tokens for o in outcomes),
            "gaps_s": [g for o in good for g in o.gaps],
            "errors": dict(errors),
            "error_samples": {k: v for k, v in self.samples.items() if k in errors},
        }


def main() -> None:
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop if uvloop else None)
    client: Client | None = None
    with runner:
        for line in sys.stdin:
            cmd = orjson.loads(line)
            op = cmd["op"]
            if op == "quit":
                break
            if op == "init":
                client = Client(cmd)
                reply: dict[str, Any] = {"ok": True}
            else:
                assert client is not None, "init first"
                if op == "target":
                    reply = client.add_target(cmd)
                elif op == "hold":
                    reply = runner.run(client.hold(cmd))
                elif op == "release":
                    reply = client.release()
                    runner.run(asyncio.sleep(0.1))  # let the loop send the FINs
                else:
                    reply = runner.run(client.run(cmd))
            sys.stdout.write(orjson.dumps(reply).decode() + "\n")
            sys.stdout.flush()
        if client is not None:
            client.close()


if __name__ == "__main__":
    main()
