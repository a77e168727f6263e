"""The openai backend: relay jobs to any OpenAI-compatible chat completions API.

OpenAI, Gemini's OpenAI-compatible endpoint, Groq, an existing ``vllm serve``, Ollama or
another Kuwa gateway: each job becomes one streamed ``POST {base_url}/chat/completions``
on one pooled ``aiohttp.ClientSession`` (as many connections as the executor has slots),
and the server-sent events are parsed by ``httpx-sse``'s ``EventSource``. Upstream failures
become :class:`BackendError` messages a user can act on; the API key never reaches a log line
or an error message. A cancelled job leaves the ``async with`` blocks, which closes the
upstream response (and so its connection) at once.

Why aiohttp and not httpx: every token of a streamed answer is one event to read, and
measured side by side (``bench/proxy_bench.py``'s upstream, one core) httpx's layers
(httpcore, anyio, h11) cost 175 µs of CPU per event at 8 paced streams and 65 µs unpaced,
aiohttp with its C HTTP parser 65 µs and 18 µs, with the same SSE parser. On an executor
that shares its core with the gateway and Redis that difference was the largest single cost
of a relayed token.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar, cast

import aiohttp
import httpx
import orjson
from aiohttp.helpers import basicauth_from_netrc, get_env_proxy_for_url, netrc_from_env
from httpx_sse import EventSource, SSEError
from multidict import CIMultiDictProxy
from yarl import URL

from kuwa.executors.base import Backend, BackendError, Completion, Emit
from kuwa.schemas import Job, Usage

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
KEEPALIVE_S = 4.0  # how long an idle upstream connection is kept for reuse
DETAIL_MAX = 300  # characters of an upstream error message passed on to the user


class OpenAIBackend(Backend):
    name: ClassVar[str] = "openai"

    client: aiohttp.ClientSession | None = None
    proxy: URL | None = None  # HTTP(S)_PROXY for the upstream, unless NO_PROXY names it
    proxy_auth: aiohttp.BasicAuth | None = None
    netrc_login: str | None = None  # ~/.netrc's login for the upstream's host (a header)

    async def start(self) -> None:
        base_url = getattr(self.settings, "upstream_base_url", None)
        if not base_url:
            raise BackendError(
                "the openai backend needs --base-url (KUWA_UPSTREAM_BASE_URL), "
                "e.g. https://api.openai.com/v1"
            )
        url = URL(str(base_url).rstrip("/") + "/")
        if url.scheme not in ("http", "https") or not url.host:
            raise BackendError(f"the upstream base URL must be an http(s) URL, not {base_url!r}")
        timeout = float(getattr(self.settings, "upstream_timeout", DEFAULT_TIMEOUT))
        if timeout <= 0:
            raise BackendError("upstream_timeout must be more than 0 seconds")
        codes = tuple(getattr(self.settings, "access_code", ()) or ())
        model = (
            getattr(self.settings, "upstream_model", None)
            or getattr(self.settings, "model", None)
            or (codes[0] if codes else None)
        )
        if not model:
            raise BackendError("the openai backend needs --upstream-model (the upstream's name)")
        self.model = str(model)
        self.timeout = timeout
        self.host = f"{url.host}:{url.explicit_port}" if url.explicit_port else url.host
        self.url = str(url / "chat/completions")
        slots = int(getattr(self.settings, "max_concurrency", 16))
        # Like httpx.Timeout(timeout): connecting, and each wait for more of the answer.
        self.client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
            # Idle connections close after 4 s, before the 5 s of uvicorn (vLLM's server, Kuwa's
            # gateway) and most servers, so a reused connection is rarely one being closed.
            connector=aiohttp.TCPConnector(
                limit=slots, limit_per_host=slots, keepalive_timeout=KEEPALIVE_S
            ),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            auto_decompress=True,
            # The environment is read here, once (below): with trust_env aiohttp reads it in
            # two worker threads per request, two thread hops on a relayed request's path.
            trust_env=False,
        )
        self._read_environment(url)
        log.info("openai backend: model %s at %s", self.model, self.host)

    def _read_environment(self, url: URL) -> None:
        """The proxy (``HTTP(S)_PROXY``, ``NO_PROXY``) and the ``~/.netrc`` login for the
        upstream, as httpx and aiohttp's ``trust_env`` honour them."""
        with contextlib.suppress(LookupError):
            self.proxy, self.proxy_auth = get_env_proxy_for_url(url)
        with contextlib.suppress(LookupError):
            netrc = netrc_from_env()
            if netrc is not None and url.host is not None:
                self.netrc_login = basicauth_from_netrc(netrc, url.host).encode()
        if self.proxy is not None:
            log.info("openai backend: through the proxy at %s", self.proxy.with_user(None))

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    def _api_key_for(self, job: Job) -> str | None:
        """The user's own provider key when one travels with the job, else the executor's."""
        key = job.upstream_key or getattr(self.settings, "upstream_api_key", None)
        return str(key) if key else None

    def request_body(self, job: Job) -> dict[str, Any]:
        """The chat completions request for ``job``; only the parameters that are set."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in job.messages],
            "stream": job.stream,
        }
        if job.stream:
            body["stream_options"] = {"include_usage": True}
        p = job.params
        for name in (
            "temperature",
            "top_p",
            "max_tokens",
            "seed",
            "presence_penalty",
            "frequency_penalty",
        ):
            value = getattr(p, name)
            if value is not None:
                body[name] = value
        if p.stop:
            body["stop"] = list(p.stop)
        return body

    async def generate(self, job: Job, emit: Emit) -> Completion:
        if self.client is None:
            raise BackendError("the openai backend was not started")
        key = self._api_key_for(job)
        # A client that waits for the whole answer gets it from the upstream in one piece:
        # one JSON object to read instead of an event per token.
        headers = {"Accept": "text/event-stream" if job.stream else "application/json"}
        headers["Cache-Control"] = "no-store"
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self.netrc_login:
            headers["Authorization"] = self.netrc_login
        stream = _Stream(emit)
        content_type = "none"
        try:
            async with await self._post(self.client, self.request_body(job), headers) as response:
                content_type = response.headers.get("content-type", "none")
                if response.status >= 400:
                    raise self._status_error(
                        response.status, await response.read(), response.headers, key
                    )
                if not job.stream:
                    try:
                        stream.whole(await response.read(), key)
                    except BackendError as exc:
                        raise self._fail(str(exc)) from None
                    return stream.completion()
                source = EventSource(cast(httpx.Response, _Body(response)))
                async with contextlib.aclosing(source.aiter_sse()) as events:
                    async for event in events:
                        data = event.data.strip()
                        if data == "[DONE]":
                            stream.done = True
                            break
                        if not data:  # a keep-alive or a named event without data
                            continue
                        first = not stream.deltas
                        try:
                            stream.feed(data, key, error=event.event == "error")
                        except BackendError as exc:
                            raise self._fail(str(exc)) from None
                        if first and stream.deltas:
                            # The first token leaves now, not after the events that came
                            # with it in one read have all been parsed (TTFT).
                            await asyncio.sleep(0)
        except SSEError:
            raise self._fail(
                f"the upstream at {self.host} did not answer with an event stream "
                f"(content type {content_type!r}); "
                "is the base URL an OpenAI-compatible API?"
            ) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            raise self._fail(f"could not reach the upstream at {self.host}") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            if stream.finish is None:
                raise self._fail(f"the upstream did not answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError):
            if stream.finish is None:
                raise self._fail(stream.broke_off()) from None
        if stream.finish is None and not stream.done:
            raise self._fail(stream.broke_off())
        return stream.completion()

    async def _post(
        self, client: aiohttp.ClientSession, body: dict[str, Any], headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """The upstream's answer, once its head has arrived. A kept-alive connection that the
        upstream closed just as it was reused (its idle timeout racing the request) fails
        before any answer: that request goes once more, on a new connection."""
        options: dict[str, Any] = {"json": body, "headers": headers}
        if self.proxy is not None:
            options |= {"proxy": self.proxy, "proxy_auth": self.proxy_auth}
        try:
            return await client.post(self.url, **options)
        except aiohttp.ClientConnectorError:
            raise
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            log.debug("openai backend (%s): a pooled connection was closed; retrying", self.host)
            return await client.post(self.url, **options)

    def _fail(self, message: str) -> BackendError:
        log.warning("openai backend (%s): %s", self.host, message)
        return BackendError(message)

    def _status_error(
        self, status: int, body: bytes, headers: CIMultiDictProxy[str], key: str | None
    ) -> BackendError:
        detail = _redact(_error_message(body), key)
        suffix = f": {detail}" if detail else ""
        if status in (401, 403):
            message = f"the upstream rejected the API key (HTTP {status}{suffix})"
        elif status == 404:
            message = (
                f"the model {self.model!r} was not found upstream at {self.host} (HTTP 404{suffix})"
            )
        elif status == 429:
            message = "the upstream is rate-limiting; try again later"
            retry = headers.get("retry-after", "").strip()
            if retry:
                message += f" (retry after {retry}{' s' if retry.isdigit() else ''})"
        elif status >= 500:
            message = f"the upstream failed with HTTP {status}{suffix}"
        else:
            message = f"the upstream refused the request (HTTP {status}{suffix})"
        return self._fail(message)


class _Body:
    """What ``httpx-sse``'s :class:`EventSource` reads of a response (its headers and its
    text as it arrives), served from an aiohttp response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.headers = response.headers

    async def aiter_text(self) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for data in self.response.content.iter_any():
            text = decoder.decode(data)
            if text:
                yield text
        text = decoder.decode(b"", final=True)
        if text:
            yield text


class _Stream:
    """What one answer has streamed so far: text length, deltas, finish reason, usage."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.chars = 0
        self.deltas = 0
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.done = False

    def feed(self, data: str, key: str | None, *, error: bool = False) -> None:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            if error:  # ``event: error`` with a plain-text message
                raise BackendError(_redact(data[:DETAIL_MAX], key)) from None
            raise BackendError(
                f"the upstream sent an event that is not JSON: {_redact(data[:80], key)!r}"
            ) from None
        if error or (isinstance(chunk, dict) and "error" in chunk):
            detail = _redact(_error_message(chunk), key)
            raise BackendError(detail or "the upstream failed mid-answer (no details given)")
        if not isinstance(chunk, dict):
            return
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                self.emit(text)
                self.chars += len(text)
                self.deltas += 1
            if choice.get("finish_reason"):
                self.finish = "length" if choice["finish_reason"] == "length" else "stop"

    def whole(self, raw: bytes, key: str | None) -> None:
        """A non-streamed answer: one ``chat.completion`` object."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            text = _redact(raw[:80].decode(errors="replace"), key)
            raise BackendError(f"the upstream sent an answer that is not JSON: {text!r}") from None
        if not isinstance(data, dict) or "error" in data:
            detail = _redact(_error_message(data), key)
            raise BackendError(detail or "the upstream failed (no details given)")
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            content = (choice.get("message") or {}).get("content")
            if isinstance(content, str) and content:
                self.emit(content)
                self.chars += len(content)
                self.deltas += 1
            if choice.get("finish_reason"):
                self.finish = "length" if choice["finish_reason"] == "length" else "stop"
        self.done = True

    def broke_off(self) -> str:
        return f"the upstream stream broke off after {self.chars} characters"

    def completion(self) -> Completion:
        return Completion(self.finish or "stop", self.usage or Usage(0, self.deltas))


def _error_message(raw: Any) -> str:
    """The message of an OpenAI-style error body (``{"error": {"message": …}}``), if any."""
    data: Any = raw
    if isinstance(raw, bytes):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw.decode(errors="replace").strip()[:DETAIL_MAX]
    if isinstance(data, list) and data:  # Gemini wraps its error in a list
        data = data[0]
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or ""
    return str(error or "").strip()[:DETAIL_MAX]


def _redact(text: str, key: str | None) -> str:
    """``text`` with the API key (should an upstream echo it) masked."""
    return text.replace(key, "***") if key else text
