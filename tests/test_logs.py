"""API tokens never reach the logs, even at debug level."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.stack import RedisServer, Stack

INVALID_TOKEN = "kuwa-INVALIDtoken0123456789abcdefNOTREAL"


@pytest.fixture(scope="module")
def debug_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway and an executor that log at debug level."""
    folder: Path = tmp_path_factory.mktemp("debug-logs")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.token = s.create_user("logger@example.com")
        s.executor("echo", extra=["--log-level", "debug"])
        s.gateway({"KUWA_LOG_LEVEL": "debug", "KUWA_ACCESS_LOG": "1"})  # requests logged too
        yield s
    finally:
        s.stop()
        server.stop()


def exercise(stack: Stack) -> None:
    """Good requests on both APIs, streamed and not, a bad token, a failing job."""
    good = {"Authorization": f"Bearer {stack.token}"}
    messages = [{"role": "user", "content": "log me 你好"}]
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        for path in ("/v1/chat/completions", "/v1.0/chat/completions"):
            for stream in (True, False):
                r = client.post(
                    path,
                    headers=good,
                    json={"model": "echo", "messages": messages, "stream": stream},
                )
                assert r.status_code == 200, r.text
                assert '"error"' not in r.text
            r = client.post(
                path,
                headers={"Authorization": f"Bearer {INVALID_TOKEN}"},
                json={"model": "echo", "messages": messages},
            )
            assert r.status_code == 401
            r = client.post(
                path,
                headers={"Authorization": f"Basic {stack.token}"},
                json={"model": "echo", "messages": messages},
            )
            assert r.status_code == 401
            r = client.post(
                path,
                headers=good,
                json={
                    "model": "echo",
                    "stream": False,
                    "messages": [{"role": "user", "content": "/debug error boom"}],
                },
            )
            assert r.status_code == 500
            r = client.post(path, headers=good, json={"model": "nope", "messages": messages})
            assert r.status_code == 404
            r = client.post(path, headers=good, content=b"{broken")
            assert r.status_code == 400
        r = client.get("/v1/models", headers=good)
        assert r.status_code == 200
        r = client.get("/v1/models", headers={"Authorization": f"Bearer {INVALID_TOKEN}"})
        assert r.status_code == 401
    with openai.OpenAI(
        base_url=stack.base_url + "/v1", api_key=stack.token, max_retries=0, timeout=10
    ) as client:
        stream = client.chat.completions.create(
            model="echo",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "log me 你好"
    with (
        openai.OpenAI(
            base_url=stack.base_url + "/v1", api_key=INVALID_TOKEN, max_retries=0, timeout=10
        ) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()


def test_tokens_never_logged(debug_stack: Stack) -> None:
    exercise(debug_stack)
    procs = list(debug_stack.procs)
    assert {p.name.split("-")[0] for p in procs} == {"gateway", "executor"}
    debug_stack.stop()  # every process exits: what shutdown logs counts too
    secret = debug_stack.token
    assert len(secret) >= 20
    logs = {p.name: p.text() for p in procs}
    for name, text in logs.items():
        # The logs are really at debug level and saw the traffic: the test can fail.
        assert text.strip(), f"{name} logged nothing"
        assert " DEBUG " in text, f"{name} is not logging at debug level"
        assert secret not in text, f"{name} leaked the API token"
        assert secret[-16:] not in text, f"{name} leaked part of the API token"
        assert INVALID_TOKEN not in text, f"{name} leaked a rejected token"
        assert INVALID_TOKEN[-16:] not in text, f"{name} leaked part of a rejected token"
    gateway = next(t for n, t in logs.items() if n.startswith("gateway"))
    assert "/v1/chat/completions" in gateway
    assert "/v1.0/chat/completions" in gateway
    assert " 401" in gateway
