"""The openai backend against real HTTP upstreams.

A real Kuwa gateway with debug executors is one upstream (every OpenAI-compatible feature
the backend uses, end to end); a small Starlette app served by uvicorn in a thread is the
other, misbehaving on purpose: bad keys, unknown models, rate limits, crashes, streams that
break off or stall, error events, and a slow stream that notices when the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from kuwa.executors.base import BackendError, Completion
from kuwa.executors.debug import tokenize
from kuwa.executors.openai_backend import OpenAIBackend
from kuwa.schemas import GenerationParams, Job, Message
from kuwa.settings import Settings
from tests.stack import RedisServer, Stack, free_port, wait_until

pytestmark = pytest.mark.anyio

PROMPT = "Hello there, Kuwa! 你好 🌍"
KEY = "sk-test-0123456789abcdef-secret"


# --- helpers -----------------------------------------------------------------------------
def settings(**values: Any) -> Settings:
    """The settings the backend reads (the upstream_* fields are not in Settings yet)."""
    base: dict[str, Any] = {
        "max_concurrency": 4,
        "model": None,
        "access_code": ("relay",),
        "upstream_base_url": None,
        "upstream_api_key": None,
        "upstream_model": None,
        "upstream_timeout": 5.0,
    }
    return cast(Settings, types.SimpleNamespace(**(base | values)))


@contextlib.asynccontextmanager
async def started(**values: Any) -> AsyncIterator[OpenAIBackend]:
    backend = OpenAIBackend(settings(**values), None)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.stop()


def job(text: str = PROMPT, **params: Any) -> Job:
    return Job("chatcmpl-1", "relay", (Message("user", text),), GenerationParams(**params))


async def ask(backend: OpenAIBackend, text: str = PROMPT, **params: Any) -> tuple[str, Completion]:
    pieces: list[str] = []
    done = await backend.generate(job(text, **params), pieces.append)
    return "".join(pieces), done


# --- a real Kuwa gateway as the upstream ---------------------------------------------------
@pytest.fixture(scope="module")
def kuwa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway with debug executors: ``echo`` (instant) and ``slow`` (20 ms per token)."""
    folder: Path = tmp_path_factory.mktemp("kuwa-upstream")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.token = s.create_user()
        s.executor("echo")
        s.executor("slow", delay=0.02, concurrency=4)
        s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


def via_kuwa(kuwa: Stack, model: str = "echo", **values: Any) -> dict[str, Any]:
    return {
        "upstream_base_url": kuwa.base_url + "/v1",
        "upstream_api_key": kuwa.token,
        "upstream_model": model,
    } | values


async def test_kuwa_upstream_streams_the_echo_with_usage(kuwa: Stack) -> None:
    async with started(**via_kuwa(kuwa)) as backend:
        text, done = await ask(backend)
    assert backend.model == "echo"
    assert text == PROMPT
    n = len(tokenize(PROMPT))
    assert done == Completion("stop", done.usage)
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (n, n)


async def test_kuwa_upstream_whole_answer_for_a_client_that_does_not_stream(kuwa: Stack) -> None:
    """A non-streamed job asks the upstream for a non-streamed answer: one JSON object, the
    same text and usage as the stream."""
    async with started(**via_kuwa(kuwa)) as backend:
        pieces: list[str] = []
        whole = Job("chatcmpl-1", "relay", (Message("user", PROMPT),), stream=False)
        done = await backend.generate(whole, pieces.append)
        streamed_text, streamed = await ask(backend)
    assert pieces == [PROMPT]  # one piece
    assert (done.finish_reason, done.usage) == (streamed.finish_reason, streamed.usage)
    assert streamed_text == PROMPT
    assert done.usage.completion_tokens == len(tokenize(PROMPT))


async def test_kuwa_upstream_max_tokens_and_stop(kuwa: Stack) -> None:
    async with started(**via_kuwa(kuwa)) as backend:
        text, done = await ask(backend, max_tokens=3)
        assert text == "".join(tokenize(PROMPT)[:3])
        assert done.finish_reason == "length"
        assert done.usage.completion_tokens == 3
        text, done = await ask(backend, stop=(",",), temperature=0.5, top_p=0.9, seed=1)
        assert text == "Hello there"
        assert done.finish_reason == "stop"


async def test_kuwa_upstream_runs_jobs_side_by_side(kuwa: Stack) -> None:
    async with started(**via_kuwa(kuwa, "slow")) as backend:
        t0 = time.monotonic()
        answers = await asyncio.gather(*(ask(backend, f"job {i} " * 10) for i in range(4)))
        elapsed = time.monotonic() - t0
    assert [text for text, _ in answers] == [f"job {i} " * 10 for i in range(4)]
    one = 0.02 * len(tokenize("job 0 " * 10))
    assert elapsed < 3 * one, "the four jobs did not overlap"


async def test_kuwa_upstream_error_event_becomes_the_message(kuwa: Stack) -> None:
    pieces: list[str] = []
    async with started(**via_kuwa(kuwa)) as backend:
        with pytest.raises(BackendError, match=r"^the debug backend was asked to fail"):
            await backend.generate(job("/debug error partial answer"), pieces.append)
    assert "".join(pieces) == "partial answer"


async def test_kuwa_upstream_unknown_model_and_bad_key(kuwa: Stack) -> None:
    async with started(**via_kuwa(kuwa, "no-such-model")) as backend:
        with pytest.raises(BackendError, match=r"the model 'no-such-model' was not found upstream"):
            await ask(backend)
    async with started(**via_kuwa(kuwa, upstream_api_key="wrong")) as backend:
        with pytest.raises(BackendError, match=r"^the upstream rejected the API key \(HTTP 401"):
            await ask(backend)


# --- a misbehaving upstream ----------------------------------------------------------------
def sse(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def delta(text: str | None = None, finish: str | None = None) -> bytes:
    content = {} if text is None else {"content": text}
    return sse({"choices": [{"index": 0, "delta": content, "finish_reason": finish}]})


DONE = b"data: [DONE]\n\n"
SSE_HEADERS = [(b"content-type", b"text/event-stream")]


class Upstream:
    """An OpenAI-style server whose behaviour is chosen by the request's ``model``."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.disconnected = threading.Event()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((body, dict(request.headers)))
        model = body["model"]
        error = {"error": {"message": f"no luck for {model}", "type": "x", "code": None}}
        if model == "unauthorized":
            auth = request.headers.get("authorization", "")
            message = f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"
            return JSONResponse({"error": {"message": message}}, 401)
        if model == "forbidden":
            return JSONResponse(error, 403)
        if model == "busy":
            return JSONResponse(error, 429, headers={"Retry-After": "7"})
        if model == "busy-no-hint":
            return JSONResponse(error, 429)
        if model == "broken":
            return Response("Internal Server Error", 500)
        if model == "overloaded":
            return JSONResponse(error, 503)
        if model == "picky":
            return JSONResponse({"error": {"message": "temperature is too hot"}}, 400)
        if model == "not-streaming":
            return JSONResponse({"choices": [{"message": {"content": "hi"}}]})
        if model == "slow":
            await asyncio.sleep(2)
            return JSONResponse(error)
        if model == "trickle":
            return Trickle(self.disconnected)
        if model in SCRIPTS:
            return Scripted(SCRIPTS[model])
        return JSONResponse({"error": {"message": f"The model `{model}` does not exist"}}, 404)


SCRIPTS: dict[str, list[bytes | None]] = {
    # None: pause 2 s. A script that ends without DONE ends the body cleanly.
    "ok": [delta(""), delta("Hel"), delta("lo"), delta(None, "stop"), DONE],
    "no-usage": [delta("a"), delta("b"), delta("c"), delta(None, "content_filter"), DONE],
    "cut-short": [delta("Hello"), delta(", w")],
    "no-done": [delta("all "), delta("there"), delta(None, "length")],
    "error-event": [delta("par"), sse({"error": {"message": "the GPU caught fire"}}), DONE],
    "named-error": [delta("par"), b"event: error\ndata: quota exhausted\n\n"],
    "not-json": [delta("x"), b"data: {oops\n\n"],
    "keepalive": [b": ping\n\n", b"event: ping\ndata:\n\n", delta("ok"), DONE],
    "stall": [delta("wait"), None],
}


class Scripted(Response):
    """Send the script's events (``None``: stall for 2 s), then end the body."""

    def __init__(self, script: list[bytes | None]) -> None:
        self.script = script
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for event in self.script:
            if event is None:
                await asyncio.sleep(2)
                continue
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class Trickle(Response):
    """One token every 50 ms for 10 s; sets ``disconnected`` the moment the client leaves."""

    def __init__(self, disconnected: threading.Event) -> None:
        self.disconnected = disconnected
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()
            streaming.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            for _ in range(200):
                await send(
                    {"type": "http.response.body", "body": delta("tick "), "more_body": True}
                )
                await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": DONE, "more_body": False})
        except asyncio.CancelledError:
            streaming.uncancel()
        except OSError:
            pass
        finally:
            watcher.cancel()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    port = free_port()
    config = uvicorn.Config(
        up.app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="upstream", daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "the upstream server")
    up.url = f"http://127.0.0.1:{port}/v1"
    yield up
    server.should_exit = True
    thread.join(10)


def at(up: Upstream, model: str, **values: Any) -> dict[str, Any]:
    return {"upstream_base_url": up.url, "upstream_model": model} | values


async def test_request_carries_the_set_params_and_the_key(upstream: Upstream) -> None:
    async with started(**at(upstream, "ok", upstream_api_key=KEY)) as backend:
        text, done = await ask(backend, max_tokens=9, stop=("END", "\n"), seed=4, top_p=0.5)
        assert text == "Hello"
        assert done == Completion("stop", done.usage)
        assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (0, 2)
        body, headers = upstream.requests[-1]
        assert headers["authorization"] == f"Bearer {KEY}"
        assert body == {
            "model": "ok",
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "top_p": 0.5,
            "max_tokens": 9,
            "seed": 4,
            "stop": ["END", "\n"],
        }
        await ask(backend)
        body, _ = upstream.requests[-1]
        assert "temperature" not in body and "max_tokens" not in body and "stop" not in body
    async with started(**at(upstream, "ok")) as backend:
        await ask(backend)
    assert "authorization" not in upstream.requests[-1][1]


async def test_counts_deltas_without_usage_and_maps_finish(upstream: Upstream) -> None:
    async with started(**at(upstream, "no-usage")) as backend:
        text, done = await ask(backend)
    assert text == "abc"
    assert done.finish_reason == "stop"  # content_filter → stop
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (0, 3)


async def test_finish_reason_without_done_is_a_complete_answer(upstream: Upstream) -> None:
    async with started(**at(upstream, "no-done")) as backend:
        text, done = await ask(backend)
    assert (text, done.finish_reason, done.usage.completion_tokens) == ("all there", "length", 2)


async def test_keepalives_and_empty_events_are_skipped(upstream: Upstream) -> None:
    async with started(**at(upstream, "keepalive")) as backend:
        assert (await ask(backend))[0] == "ok"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("unauthorized", r"^the upstream rejected the API key \(HTTP 401: Incorrect API key"),
        ("forbidden", r"^the upstream rejected the API key \(HTTP 403: no luck for forbidden\)$"),
        ("gone", r"^the model 'gone' was not found upstream at 127\.0\.0\.1:\d+ \(HTTP 404"),
        ("busy", r"^the upstream is rate-limiting; try again later \(retry after 7 s\)$"),
        ("busy-no-hint", r"^the upstream is rate-limiting; try again later$"),
        ("broken", r"^the upstream failed with HTTP 500: Internal Server Error$"),
        ("overloaded", r"^the upstream failed with HTTP 503: no luck for overloaded$"),
        ("picky", r"^the upstream refused the request \(HTTP 400: temperature is too hot\)$"),
        ("not-streaming", r"did not answer with an event stream \(content type 'application/json'"),
        ("cut-short", r"^the upstream stream broke off after 8 characters$"),
        ("error-event", r"^the GPU caught fire$"),
        ("named-error", r"^quota exhausted$"),
        ("not-json", r"^the upstream sent an event that is not JSON: '\{oops'$"),
    ],
)
async def test_upstream_failures_become_clear_messages(
    upstream: Upstream, model: str, message: str
) -> None:
    async with started(**at(upstream, model, upstream_api_key=KEY)) as backend:
        with pytest.raises(BackendError, match=message) as info:
            await ask(backend)
    assert KEY not in str(info.value)
    error = info.value  # no HTTP-client exception chained to it (no traceback to show)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


async def test_connection_that_dies_mid_stream(upstream: Upstream) -> None:
    # Bypass the app: a raw socket server that sends half a chunked body, then closes.
    port = free_port()
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        event = delta("Hi there")
        writer.write(head + f"{len(event):x}\r\n".encode() + event + b"\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server, started(upstream_base_url=f"http://127.0.0.1:{port}/v1") as backend:
        pieces: list[str] = []
        with pytest.raises(BackendError, match=r"^the upstream stream broke off after 8 char"):
            await backend.generate(job(), pieces.append)
    assert pieces == ["Hi there"]


async def test_a_kept_alive_connection_closed_at_reuse_is_retried_once() -> None:
    """The upstream closes an idle connection just as it is reused (its keep-alive timeout
    racing the request): the request goes again on a new connection, the answer is whole."""
    port = free_port()
    body = delta("Hello") + delta(finish="stop") + b"data: [DONE]\n\n"
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(answer)  # kept alive ...
        await writer.drain()
        await reader.read(1)  # ... until the next request arrives, which it drops
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server, started(upstream_base_url=f"http://127.0.0.1:{port}/v1") as backend:
        assert (await ask(backend))[0] == "Hello"
        assert (await ask(backend))[0] == "Hello"
    assert connections == 2


async def test_timeouts(upstream: Upstream) -> None:
    async with started(**at(upstream, "slow", upstream_timeout=0.5)) as backend:
        t0 = time.monotonic()
        with pytest.raises(BackendError, match=r"^the upstream did not answer within 0\.5 s$"):
            await ask(backend)
        assert time.monotonic() - t0 < 1.5
    pieces: list[str] = []
    async with started(**at(upstream, "stall", upstream_timeout=0.5)) as backend:
        with pytest.raises(BackendError, match=r"^the upstream did not answer within 0\.5 s$"):
            await backend.generate(job(), pieces.append)
    assert pieces == ["wait"]


async def test_connection_refused() -> None:
    port = free_port()
    async with started(upstream_base_url=f"http://127.0.0.1:{port}/v1") as backend:
        with pytest.raises(
            BackendError, match=rf"^could not reach the upstream at 127\.0\.0\.1:{port}$"
        ):
            await ask(backend)


async def test_cancel_closes_the_upstream_stream(upstream: Upstream) -> None:
    upstream.disconnected.clear()
    first = asyncio.Event()
    async with started(**at(upstream, "trickle")) as backend:
        task = asyncio.create_task(backend.generate(job(), lambda _: first.set()))
        await asyncio.wait_for(first.wait(), 5)
        assert not upstream.disconnected.is_set()
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        seen = await asyncio.to_thread(upstream.disconnected.wait, 1.0)
        assert seen, "the upstream did not see the client leave within 1 s"
        assert time.monotonic() - t0 < 1.0
        # The pool is still usable after a cancelled stream.
        backend.model = "ok"
        assert (await ask(backend))[0] == "Hello"


async def test_api_key_never_logged(upstream: Upstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with started(**at(upstream, "ok", upstream_api_key=KEY)) as backend:
        await ask(backend)
    async with started(**at(upstream, "unauthorized", upstream_api_key=KEY)) as backend:
        with pytest.raises(BackendError):
            await ask(backend)
    assert upstream.requests[-1][1]["authorization"] == f"Bearer {KEY}"
    assert "openai backend: model ok at" in caplog.text, "the backend's log was not captured"
    assert "rejected the API key" in caplog.text
    assert KEY not in caplog.text
    assert "0123456789abcdef" not in caplog.text


# --- start() -----------------------------------------------------------------------------
async def test_start_needs_a_base_url() -> None:
    with pytest.raises(BackendError, match="--base-url"):
        await OpenAIBackend(settings(), None).start()
    with pytest.raises(BackendError, match="http"):
        await OpenAIBackend(settings(upstream_base_url="ftp://x/v1"), None).start()


async def test_upstream_model_defaults(upstream: Upstream) -> None:
    async with started(upstream_base_url=upstream.url, model="org/m") as backend:
        assert backend.model == "org/m"
    async with started(upstream_base_url=upstream.url) as backend:
        assert backend.model == "relay"  # the first access code
        assert backend.client is not None
    assert backend.client is None
    with pytest.raises(BackendError, match="--upstream-model"):
        await OpenAIBackend(settings(upstream_base_url=upstream.url, access_code=()), None).start()


async def test_the_proxy_from_the_environment_is_used(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HTTP_PROXY`` carries the requests (here the fake upstream is the proxy: it gets the
    absolute URL of a host that does not exist); ``NO_PROXY`` exempts a host. Both are read
    once, when the backend starts."""
    proxy = upstream.url.removesuffix("/v1")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with started(**at(upstream, "ok", upstream_base_url="http://upstream.invalid/v1")) as b:
        assert b.proxy is not None and str(b.proxy) == proxy
        text, _ = await ask(b)
    assert text == "Hello"
    assert upstream.requests[-1][1]["host"] == "upstream.invalid"
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with started(**at(upstream, "ok")) as backend:
        assert backend.proxy is None
        text, _ = await ask(backend)
    assert text == "Hello"


async def test_a_netrc_login_is_sent_without_a_key(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    async with started(**at(upstream, "ok")) as backend:
        await ask(backend)
        assert upstream.requests[-1][1]["authorization"].startswith("Basic ")
    async with started(**at(upstream, "ok", upstream_api_key=KEY)) as backend:
        await ask(backend)  # a key wins over the login
        assert upstream.requests[-1][1]["authorization"] == f"Bearer {KEY}"


async def test_penalties_and_the_users_own_key_travel_upstream(upstream: Upstream) -> None:
    import dataclasses

    async with started(**at(upstream, "ok", upstream_api_key=KEY)) as backend:
        j = job(PROMPT, presence_penalty=0.5, frequency_penalty=-0.25, top_k=5)
        j = dataclasses.replace(j, upstream_key="sk-users-own")
        await backend.generate(j, lambda _: None)
        body, headers = upstream.requests[-1]
    assert headers["authorization"] == "Bearer sk-users-own"
    assert body["presence_penalty"] == 0.5 and body["frequency_penalty"] == -0.25
    assert "top_k" not in body  # not an OpenAI parameter


def test_a_users_saved_provider_key_is_used_for_openai_models(kuwa: Stack, tmp_path: Path) -> None:
    """Kuwa B relays model ``relay`` to Kuwa A with no key of its own: a user of B who saved
    their key for A (as an "openai" provider key on their profile) gets answers; a user
    without one gets the upstream's refusal."""
    from tests.web import make_user, store_of

    server = RedisServer(tmp_path / "redis")
    b = Stack(tmp_path, server)
    try:
        b.executor(
            "relay",
            extra=[
                "--backend",
                "openai",
                "--base-url",
                kuwa.base_url + "/v1",
                "--upstream-model",
                "echo",
            ],
        )
        base = b.gateway()
        with store_of(b) as store:
            keyed = make_user(b, "keyed@example.com")
            store.identities.set_key(keyed.id, "openai", kuwa.token)
            keyed_token = store.accounts.ensure_token(keyed.id)
            plain_token = store.accounts.ensure_token(make_user(b, "plain@example.com").id)

        def ask(token: str) -> httpx.Response:
            return httpx.post(
                base + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {token}"},
                json={"model": "relay", "messages": [{"role": "user", "content": "via B"}]},
                timeout=30,
            )

        r = ask(keyed_token)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "via B"
        refused = ask(plain_token)
        assert refused.status_code == 500 and "401" in refused.json()["error"]["message"]
        assert kuwa.token not in "".join(p.text() for p in b.procs)
    finally:
        b.stop()
        server.stop()
