"""``GET /metrics`` for processes without a web framework (the kernel, executors).

A small asyncio HTTP/1.1 server on the process's own event loop: one request per connection,
Prometheus text from the given registries (and prometheus_client's default one, which holds
the standard ``process_*`` figures and whatever an engine such as vLLM registers). With
``KUWA_METRICS_TOKEN`` set, a scrape must send it as a Bearer token, as on the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import REGISTRY as DEFAULT_REGISTRY

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0
MAX_HEADER_LINES = 100


class MetricsServer:
    def __init__(self, registries: Sequence[CollectorRegistry], token: str | None = None) -> None:
        self.registries = [*registries, DEFAULT_REGISTRY]
        self.token = token
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port``; returns the port (useful with port 0)."""
        self.server = await asyncio.start_server(self._handle, host, port)
        sockets = self.server.sockets
        bound = int(sockets[0].getsockname()[1]) if sockets else port
        log.info("metrics at http://%s:%d/metrics", host, bound)
        return bound

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def render(self) -> bytes:
        return b"".join(generate_latest(r) for r in self.registries)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                status, body, extra = await self._answer(reader)
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, ConnectionError):
            status, body, extra = "400 Bad Request", b"bad request\n", ""
        content_type = CONTENT_TYPE_LATEST if status.startswith("200") else "text/plain"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, bytes, str]:
        request_line = (await reader.readline()).decode("latin-1").split()
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            line = (await reader.readline()).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ValueError("too many header lines")
        if len(request_line) != 3:
            raise ValueError("not an HTTP request")
        method, target, _ = request_line
        if target.split("?", 1)[0] != "/metrics":
            return "404 Not Found", b"only /metrics is here\n", ""
        if method != "GET":
            return "405 Method Not Allowed", b"GET /metrics\n", "Allow: GET\r\n"
        if self.token:
            given = headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return (
                    "401 Unauthorized",
                    b"metrics need 'Authorization: Bearer KUWA_METRICS_TOKEN'\n",
                    'WWW-Authenticate: Bearer realm="metrics"\r\n',
                )
        return "200 OK", self.render(), ""


async def serve_metrics(
    registries: Sequence[CollectorRegistry], host: str, port: int, token: str | None
) -> MetricsServer | None:
    """Start a metrics server; a port that cannot be bound is logged, not fatal (a process's
    real work matters more than its metrics)."""
    server = MetricsServer(registries, token)
    try:
        await server.start(host, port)
    except OSError as exc:
        log.error("cannot serve metrics on %s:%d: %s", host, port, exc)
        return None
    return server
