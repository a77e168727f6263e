"""Every error a client can get, each in the one shape ``{"error": {message, type, param, code}}``.

Special gateways (a 2 KiB body limit, a queue of 2) and executors (one slot; one that is
stopped) run beside the module's stack on its Redis.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.stack import Stack

CHAT_PATHS = ["/v1/chat/completions", "/v1.0/chat/completions"]
ALL_AUTH_PATHS = [("POST", p) for p in CHAT_PATHS] + [("GET", "/v1/models")]
GOOD_MESSAGES = [{"role": "user", "content": "hi"}]


def assert_error(
    r: httpx.Response,
    status: int,
    type_: str,
    code: str,
    param: str | None = None,
) -> dict[str, Any]:
    """The status, a JSON content type and exactly the one error shape; returns the error."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == type_, error
    assert error["code"] == code, error
    assert error["param"] == param, error
    assert_sentence(error["message"])
    return dict(error)


def assert_sentence(message: object) -> None:
    assert isinstance(message, str)
    assert len(message.split()) >= 3, f"not a sentence: {message!r}"
    assert "Traceback" not in message
    assert "Exception" not in message


def auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client (one keep-alive connection) for the module: a new client per request is slow."""
    with httpx.Client(timeout=10) as client:
        yield client


def post(
    http: httpx.Client, stack: Stack, path: str, body: Any, base_url: str | None = None
) -> httpx.Response:
    return http.post((base_url or stack.base_url) + path, headers=auth(stack), json=body)


# --- 400: the request itself is wrong ------------------------------------------------------


@pytest.mark.parametrize("path", CHAT_PATHS)
@pytest.mark.parametrize(
    "content",
    [b'{"model": "echo", "messages": [', b"not json at all", b"{'model': 'echo'}", b"\xff\xfe"],
    ids=["truncated", "text", "single-quotes", "binary"],
)
def test_malformed_json(http: httpx.Client, stack: Stack, path: str, content: bytes) -> None:
    r = http.post(
        stack.base_url + path,
        headers=auth(stack) | {"Content-Type": "application/json"},
        content=content,
        timeout=10,
    )
    error = assert_error(r, 400, "invalid_request_error", "invalid_request")
    assert "JSON" in error["message"]


@pytest.mark.parametrize("path", CHAT_PATHS)
def test_empty_body(http: httpx.Client, stack: Stack, path: str) -> None:
    r = http.post(stack.base_url + path, headers=auth(stack), content=b"")
    assert_error(r, 400, "invalid_request_error", "invalid_request")


@pytest.mark.parametrize("path", CHAT_PATHS)
@pytest.mark.parametrize("body", [[], "echo", 42, None], ids=["list", "string", "number", "null"])
def test_body_not_an_object(http: httpx.Client, stack: Stack, path: str, body: Any) -> None:
    assert_error(post(http, stack, path, body), 400, "invalid_request_error", "invalid_request")


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("missing-messages", {"model": "echo"}, "messages"),
    ("null-messages", {"model": "echo", "messages": None}, "messages"),
    ("empty-messages", {"model": "echo", "messages": []}, "messages"),
    ("string-messages", {"model": "echo", "messages": "hi"}, "messages"),
    ("object-messages", {"model": "echo", "messages": {"role": "user"}}, "messages"),
    ("message-not-object", {"model": "echo", "messages": ["hi"]}, "messages[0]"),
    ("missing-role", {"model": "echo", "messages": [{"content": "hi"}]}, "messages[0].role"),
    (
        "role-tool",
        {"model": "echo", "messages": [{"role": "tool", "content": "hi"}]},
        "messages[0].role",
    ),
    (
        "role-robot",
        {"model": "echo", "messages": [*GOOD_MESSAGES, {"role": "robot", "content": "hi"}]},
        "messages[1].role",
    ),
    (
        "role-number",
        {"model": "echo", "messages": [{"role": 1, "content": "hi"}]},
        "messages[0].role",
    ),
    (
        "content-missing",
        {"model": "echo", "messages": [{"role": "user"}]},
        "messages[0].content",
    ),
    (
        "content-number",
        {"model": "echo", "messages": [{"role": "user", "content": 42}]},
        "messages[0].content",
    ),
    (
        "content-object",
        {"model": "echo", "messages": [{"role": "user", "content": {"text": "hi"}}]},
        "messages[0].content",
    ),
    ("model-missing", {"messages": GOOD_MESSAGES}, "model"),
    ("model-empty", {"model": "", "messages": GOOD_MESSAGES}, "model"),
    ("model-number", {"model": 7, "messages": GOOD_MESSAGES}, "model"),
    ("stream-string", {"model": "echo", "messages": GOOD_MESSAGES, "stream": "yes"}, "stream"),
    (
        "temperature-high",
        {"model": "echo", "messages": GOOD_MESSAGES, "temperature": 5},
        "temperature",
    ),
    ("top-p-string", {"model": "echo", "messages": GOOD_MESSAGES, "top_p": "0.5"}, "top_p"),
    (
        "max-tokens-zero",
        {"model": "echo", "messages": GOOD_MESSAGES, "max_tokens": 0},
        "max_tokens",
    ),
    ("n-two", {"model": "echo", "messages": GOOD_MESSAGES, "n": 2}, "n"),
    ("stop-five", {"model": "echo", "messages": GOOD_MESSAGES, "stop": list("abcde")}, "stop"),
    ("stop-number", {"model": "echo", "messages": GOOD_MESSAGES, "stop": 3}, "stop"),
    ("seed-float", {"model": "echo", "messages": GOOD_MESSAGES, "seed": 1.5}, "seed"),
]


@pytest.mark.parametrize("path", CHAT_PATHS)
@pytest.mark.parametrize(
    ("body", "param"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_invalid_request_names_the_param(
    http: httpx.Client, stack: Stack, path: str, body: dict[str, Any], param: str
) -> None:
    error = assert_error(
        post(http, stack, path, body), 400, "invalid_request_error", "invalid_request", param
    )
    assert param.split(".")[0].split("[")[0] in error["message"]


def test_v10_content_must_be_a_string(http: httpx.Client, stack: Stack) -> None:
    parts = [{"type": "text", "text": "hi"}]
    body = {"model": "echo", "messages": [{"role": "user", "content": parts}]}
    assert_error(
        post(http, stack, "/v1.0/chat/completions", body),
        400,
        "invalid_request_error",
        "invalid_request",
        "messages[0].content",
    )
    # The OpenAI dialect accepts text parts, but nothing else.
    r = post(http, stack, "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "hi"
    body["messages"][0]["content"] = [{"type": "image_url", "image_url": {"url": "x"}}]
    assert_error(
        post(http, stack, "/v1/chat/completions", body),
        400,
        "invalid_request_error",
        "invalid_request",
        "messages[0].content[0]",
    )


# --- 413 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_body_gateway(stack: Stack) -> str:
    return stack.gateway({"KUWA_MAX_BODY_BYTES": "2048"})


@pytest.mark.parametrize("path", CHAT_PATHS)
def test_oversized_body(
    http: httpx.Client, stack: Stack, small_body_gateway: str, path: str
) -> None:
    big = {"model": "echo", "messages": [{"role": "user", "content": "x" * 3000}]}
    error = assert_error(
        post(http, stack, path, big, small_body_gateway),
        413,
        "invalid_request_error",
        "payload_too_large",
    )
    assert "2048" in error["message"]
    # Without a Content-Length (chunked upload) the limit holds while reading.
    raw = json.dumps(big).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(raw), 512):
            yield raw[i : i + 512]

    r = http.post(small_body_gateway + path, headers=auth(stack), content=chunks())
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "invalid_request_error", "payload_too_large")
    # Just under the limit is fine.
    ok = {"model": "echo", "stream": False, "messages": [{"role": "user", "content": "y" * 1900}]}
    assert len(json.dumps(ok)) < 2048
    r = post(http, stack, path, ok, small_body_gateway)
    assert r.status_code == 200, r.text


# --- 401 ---------------------------------------------------------------------------------

BAD_AUTH = {
    "none": None,
    "invalid": "Bearer kuwa-this-token-does-not-exist",
    "empty-bearer": "Bearer",
    "wrong-scheme": "Basic {token}",
    "token-scheme": "Token {token}",
    "no-scheme": "{token}",
}


@pytest.mark.parametrize(("method", "path"), ALL_AUTH_PATHS)
@pytest.mark.parametrize("kind", list(BAD_AUTH))
def test_unauthenticated(
    http: httpx.Client, stack: Stack, method: str, path: str, kind: str
) -> None:
    template = BAD_AUTH[kind]
    headers = {} if template is None else {"Authorization": template.format(token=stack.token)}
    r = http.request(
        method,
        stack.base_url + path,
        headers=headers,
        json={"model": "echo", "messages": GOOD_MESSAGES} if method == "POST" else None,
        timeout=10,
    )
    error = assert_error(r, 401, "authentication_error", "invalid_api_key")
    assert stack.token not in error["message"]


@pytest.mark.parametrize("path", CHAT_PATHS)
def test_auth_is_checked_before_the_body(http: httpx.Client, stack: Stack, path: str) -> None:
    r = http.post(stack.base_url + path, content=b"not json")
    assert_error(r, 401, "authentication_error", "invalid_api_key")


# --- 404 / 503: models -------------------------------------------------------------------


@pytest.mark.parametrize("path", CHAT_PATHS)
@pytest.mark.parametrize("model", ["no-such-model", "bad model!", "x" * 300])
@pytest.mark.parametrize("stream", [True, False])
def test_unknown_model(
    http: httpx.Client, stack: Stack, path: str, model: str, stream: bool
) -> None:
    body = {"model": model, "messages": GOOD_MESSAGES, "stream": stream}
    error = assert_error(
        post(http, stack, path, body), 404, "invalid_request_error", "model_not_found", "model"
    )
    assert "/v1/models" in error["message"]


def test_model_whose_executor_stopped_is_unavailable(http: httpx.Client, stack: Stack) -> None:
    proc = stack.executor("doomed", concurrency=2)
    for path in CHAT_PATHS:
        r = post(http, stack, path, {"model": "doomed", "messages": GOOD_MESSAGES, "stream": False})
        assert r.status_code == 200, r.text
    assert proc.stop() == 0
    for path in CHAT_PATHS:
        for stream in (True, False):
            start = time.monotonic()
            r = post(
                http, stack, path, {"model": "doomed", "messages": GOOD_MESSAGES, "stream": stream}
            )
            elapsed = time.monotonic() - start
            error = assert_error(r, 503, "service_unavailable", "model_unavailable")
            assert "doomed" in error["message"]
            assert elapsed < 1.0, f"503 took {elapsed:.2f}s"


# --- 429 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_queue_gateway(stack: Stack) -> str:
    stack.executor("one-slot", delay=0.05, concurrency=1)
    return stack.gateway({"KUWA_MAX_QUEUE": "2"})


def open_stream(client: httpx.Client, path: str, stack: Stack, prompt: str) -> httpx.Response:
    request = client.build_request(
        "POST",
        path,
        headers=auth(stack),
        json={
            "model": "one-slot",
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
        },
    )
    return client.send(request, stream=True)


def test_queue_full(stack: Stack, small_queue_gateway: str) -> None:
    long_prompt = " ".join(f"w{i}" for i in range(200))  # 10 s at 50 ms per token
    with contextlib.ExitStack() as cleanup:
        client = cleanup.enter_context(httpx.Client(base_url=small_queue_gateway))
        running = open_stream(client, "/v1/chat/completions", stack, long_prompt)
        cleanup.callback(running.close)
        assert running.status_code == 200
        lines = running.iter_lines()  # kept referenced: closing it would close the stream
        for line in lines:  # the job is running once its first token arrives
            if '"content":"w0"' in line:
                break
        waiting = []
        for path in CHAT_PATHS:  # two more wait in the queue: it is full now
            r = open_stream(client, path, stack, long_prompt)
            cleanup.callback(r.close)
            assert r.status_code == 200
            waiting.append(r)
        for path in CHAT_PATHS:
            for stream in (True, False):
                start = time.monotonic()
                r = client.post(
                    path,
                    headers=auth(stack),
                    json={"model": "one-slot", "messages": GOOD_MESSAGES, "stream": stream},
                )
                assert time.monotonic() - start < 1.0
                assert_error(r, 429, "rate_limit_error", "queue_full")
                assert r.headers["retry-after"].isdigit()
                assert int(r.headers["retry-after"]) >= 1
        # Other models are not affected.
        r = client.post(
            "/v1/chat/completions",
            headers=auth(stack),
            json={"model": "echo", "messages": GOOD_MESSAGES},
        )
        assert r.status_code == 200, r.text


# --- routing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nope"), ("POST", "/v2/chat/completions"), ("GET", "/v1.0/models/x")],
)
def test_unknown_path(http: httpx.Client, stack: Stack, method: str, path: str) -> None:
    r = http.request(method, stack.base_url + path, headers=auth(stack))
    error = assert_error(r, 404, "invalid_request_error", "not_found")
    assert path in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("GET", "/v1.0/chat/completions", "POST"),
        ("PUT", "/v1/chat/completions", "POST"),
        ("POST", "/v1/models", "GET, HEAD"),
        ("TRACE", "/healthz", "GET, HEAD"),
        ("PATCH", "/v1/files", "GET, HEAD, POST"),  # two routes on one path: both named
        ("GET", "/app/rooms/1/delete", "POST"),  # a web path (unsafe methods meet CSRF first)
    ],
)
def test_method_not_allowed(
    http: httpx.Client, stack: Stack, method: str, path: str, allow: str
) -> None:
    """405 in the one error shape, with the path's methods in ``Allow`` (RFC 9110)."""
    r = http.request(method, stack.base_url + path, headers=auth(stack))
    error = assert_error(r, 405, "invalid_request_error", "method_not_allowed")
    assert method in error["message"]
    assert r.headers["allow"] == allow


def test_method_not_allowed_page_names_the_allowed_methods(
    http: httpx.Client, stack: Stack
) -> None:
    r = http.request("TRACE", stack.base_url + "/login", headers={"accept": "text/html"})
    assert r.status_code == 405
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["allow"] == "GET, HEAD, POST"


# --- the openai SDK's exception classes ----------------------------------------------------


def sdk(stack: Stack, token: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=stack.base_url + "/v1", api_key=token or stack.token, max_retries=0, timeout=10
    )


def test_sdk_exceptions(stack: Stack) -> None:
    with sdk(stack, "kuwa-wrong") as client, pytest.raises(openai.AuthenticationError) as auth_exc:
        client.chat.completions.create(model="echo", messages=GOOD_MESSAGES)  # type: ignore[arg-type]
    assert auth_exc.value.status_code == 401
    assert auth_exc.value.code == "invalid_api_key"
    with sdk(stack, "kuwa-wrong") as client, pytest.raises(openai.AuthenticationError):
        client.models.list()
    with sdk(stack) as client:
        with pytest.raises(openai.NotFoundError) as nf:
            client.chat.completions.create(model="no-such-model", messages=GOOD_MESSAGES)  # type: ignore[arg-type]
        assert nf.value.code == "model_not_found"
        assert nf.value.param == "model"
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(
                model="echo",
                messages=[{"role": "robot", "content": "hi"}],  # type: ignore[list-item]
            )
        assert bad.value.code == "invalid_request"
        assert bad.value.param == "messages[0].role"
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="echo", messages=[])
        assert bad.value.param == "messages"


# --- errors after streaming began ----------------------------------------------------------


def sse_lines(r: httpx.Response) -> list[str]:
    return [line for line in r.text.split("\n") if line]


def test_openai_stream_error_after_tokens(http: httpx.Client, stack: Stack) -> None:
    body = {
        "model": "echo",
        "stream": True,
        "messages": [{"role": "user", "content": "/debug error hello world 你好"}],
    }
    r = post(http, stack, "/v1/chat/completions", body)
    assert r.status_code == 200
    assert r.text.endswith("\n\n")
    ids = [line for line in sse_lines(r) if line.startswith("id: ")]  # /v1: chunk numbers
    assert ids and all(line[len("id: ") :].isdigit() for line in ids), ids
    lines = [line for line in sse_lines(r) if not line.startswith("id: ")]
    assert all(line.startswith("data: ") for line in lines), lines
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    error_event = events[-1]
    assert list(error_event) == ["error"]
    error = error_event["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error"
    assert error["code"] == "model_error"
    assert error["param"] is None
    assert_sentence(error["message"])
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "hello world 你好"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


def test_kuwa_stream_error_after_tokens(http: httpx.Client, stack: Stack) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "/debug error 你好 ok"}]}
    r = post(http, stack, "/v1.0/chat/completions", body)
    assert r.status_code == 200
    lines = sse_lines(r)
    assert lines[-1] == "event: close"
    assert r.text.endswith("event: close\n\n")
    events = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    error = events[-1]["error"]
    assert list(events[-1]) == ["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "model_error"
    assert_sentence(error["message"])
    chars = [e["choices"][0]["delta"]["content"] for e in events[:-1]]
    assert all(len(c) == 1 for c in chars)
    assert "".join(chars) == "你好 ok"


@pytest.mark.parametrize("path", CHAT_PATHS)
def test_non_stream_error(http: httpx.Client, stack: Stack, path: str) -> None:
    body = {
        "model": "echo",
        "stream": False,
        "messages": [{"role": "user", "content": "/debug error partial"}],
    }
    assert_error(post(http, stack, path, body), 500, "server_error", "model_error")


def test_sdk_stream_error_raises(stack: Stack) -> None:
    with sdk(stack) as client:
        stream = client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "/debug error abc"}],
            stream=True,
        )
        seen = []
        with pytest.raises(openai.APIError) as exc:
            for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
        assert "".join(seen) == "abc"
        assert "debug" in exc.value.message
