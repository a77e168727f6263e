from __future__ import annotations

import httpx

from tests.stack import Stack


def test_openai_stream_through_real_processes(stack: Stack) -> None:
    r = httpx.post(
        stack.base_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {stack.token}"},
        json={"model": "echo", "messages": [{"role": "user", "content": "hi there"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "hi there"
