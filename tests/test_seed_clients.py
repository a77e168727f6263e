"""The seed guide's clients (Python requests, JavaScript fetch, curl) against a live gateway.

The snippets in ``tests/seed/`` are the guide's code verbatim; only the URL and the token are
replaced in a temporary copy. The model stays ``gemini-pro`` (a debug echo executor here) and
the prompt stays 請自我介紹, so each client must print exactly that.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import Stack

SEED = Path(__file__).parent / "seed"
PROMPT = "請自我介紹"
SEED_URLS = ("http://127.0.0.1/v1.0/chat/completions", "http://localhost/v1.0/chat/completions")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc")


@pytest.fixture(scope="module")
def seed_stack(stack: Stack) -> Stack:
    stack.executor("gemini-pro", concurrency=8)
    return stack


def seed_copy(name: str, stack: Stack, folder: Path) -> Path:
    text = (SEED / name).read_text(encoding="utf-8")
    url = stack.base_url + "/v1.0/chat/completions"
    replaced = 0
    for seed_url in SEED_URLS:
        replaced += text.count(seed_url)
        text = text.replace(seed_url, url)
    assert replaced == 1, f"{name} should contain the seed's URL once"
    assert text.count("YOUR_AUTH_TOKEN") == 1
    text = text.replace("YOUR_AUTH_TOKEN", stack.token)
    out = folder / name
    out.write_text(text, encoding="utf-8")
    return out


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, encoding="utf-8", timeout=30, check=False
    )


def kuwa_events(raw: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``data:`` payloads and the other non-empty lines of a v1.0 stream, in order."""
    data, other = [], []
    for line in raw.split("\n"):
        if line.startswith("data: "):
            data.append(json.loads(line[len("data: ") :]))
        elif line:
            other.append(line)
    return data, other


def assert_seed_event(event: dict[str, Any], model: str) -> str:
    """Shaped like the guide's 'Handling Responses' example; returns the one character."""
    assert set(event) == {"choices", "created", "id", "model", "object", "usage"}, event
    assert len(event["choices"]) == 1
    delta = event["choices"][0]["delta"]
    assert set(delta) == {"content", "role"}
    assert delta["role"] == "assistant"
    assert isinstance(event["created"], int)
    assert abs(event["created"] - time.time()) < 60
    assert event["id"].startswith("chatcmpl-")
    assert event["model"] == model
    assert event["object"] == "chat.completion"
    assert event["usage"] == []
    content = delta["content"]
    assert isinstance(content, str)
    assert len(content) == 1, f"one code point per event, got {content!r}"
    return content


def test_seed_python_client_prints_the_answer(seed_stack: Stack, tmp_path: Path) -> None:
    script = seed_copy("seed_client.py", seed_stack, tmp_path)
    result = run([sys.executable, str(script)])
    assert result.returncode == 0, result.stderr
    assert result.stdout == PROMPT
    assert result.stderr == ""


def test_seed_javascript_client_prints_the_answer(seed_stack: Stack, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node (Node 20) must be on PATH"
    script = seed_copy("seed_client.js", seed_stack, tmp_path)
    result = run([node, str(script)])
    assert result.returncode == 0, result.stderr
    combined = ANSI.sub("", result.stdout + result.stderr)
    assert "Error parsing JSON" not in combined
    assert "Error:" not in combined
    lines = [line for line in ANSI.sub("", result.stdout).splitlines() if line.strip()]
    assert lines[-1] == "Stream ended"
    assert lines[-2] == PROMPT
    # console.log(output) ran once per character: the answer grew one character at a time.
    assert lines[:-1] == [PROMPT[: i + 1] for i in range(len(PROMPT))]


def test_seed_curl_example(seed_stack: Stack, tmp_path: Path) -> None:
    assert shutil.which("curl"), "curl must be installed"
    script = seed_copy("seed_curl.sh", seed_stack, tmp_path)
    result = run(["bash", str(script)])
    assert result.returncode == 0, result.stderr
    raw = result.stdout
    data, other = kuwa_events(raw)
    assert other == ["event: close"]
    assert raw.rstrip("\n").endswith("event: close")
    assert "".join(assert_seed_event(e, "gemini-pro") for e in data) == PROMPT
    assert len({e["id"] for e in data}) == 1
    assert len({e["created"] for e in data}) == 1
    # Every event is a "data: {json}" line followed by a blank line.
    assert re.fullmatch(r"(data: \{[^\n]*\}\n\n)+event: close\n\n", raw), raw


def post_v10(stack: Stack, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        stack.base_url + "/v1.0/chat/completions",
        headers={"Authorization": f"Bearer {stack.token}"},
        json=body,
        timeout=15,
    )


def test_multi_round_answers_the_last_user_message(seed_stack: Stack) -> None:
    messages = [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好，我是一個機器人"},  # noqa: RUF001 (the seed's)
        {"role": "user", "content": "嗨"},
    ]
    r = post_v10(seed_stack, {"messages": messages, "model": "gemini-pro"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    data, other = kuwa_events(r.text)
    assert other == ["event: close"]
    assert "".join(assert_seed_event(e, "gemini-pro") for e in data) == "嗨"


@pytest.mark.parametrize(
    "content",
    ["你好🌍👍🏽 e\u0301", 'Hello, Kuwa! 你好 🇹🇼\n\ttab "quote" \\ </script>'],
    ids=["cjk-emoji-combining", "mixed-escapes"],
)
def test_every_event_carries_one_code_point(seed_stack: Stack, content: str) -> None:
    r = post_v10(
        seed_stack,
        {"messages": [{"role": "user", "content": content}], "model": "gemini-pro"},
    )
    assert r.status_code == 200, r.text
    assert r.content.isascii(), "v1.0 JSON is ASCII-escaped like the original PHP server's"
    data, other = kuwa_events(r.text)
    assert other == ["event: close"]
    chars = [assert_seed_event(e, "gemini-pro") for e in data]
    assert chars == list(content)
    assert "".join(chars) == content


def test_stream_false_returns_one_json_completion(seed_stack: Stack) -> None:
    r = post_v10(
        seed_stack,
        {
            "messages": [{"role": "user", "content": PROMPT}],
            "model": "gemini-pro",
            "stream": False,
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gemini-pro"
    assert isinstance(body["created"], int)
    assert len(body["choices"]) == 1
    choice = body["choices"][0]
    assert choice["message"] == {"content": PROMPT, "role": "assistant"}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == len(PROMPT)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


# --- citations: a request with files keeps the seed's event format ---------------------------
def with_files(script: Path, line: str, files: str) -> Path:
    """The seed client ``script`` with Kuwa's ``files`` added to its request, after ``line``."""
    text = script.read_text(encoding="utf-8")
    assert text.count(line) == 1
    script.write_text(text.replace(line, f"{line}, {files}"), encoding="utf-8")
    return script


def test_the_seed_clients_read_an_answer_that_carries_citations(
    seed_stack: Stack, tmp_path: Path
) -> None:
    """The seed's clients, with only ``files`` added to their request: the citations ride on
    the first event as one more key, so both print the answer as before, and every event is
    the seed's shape otherwise."""
    auth = {"Authorization": f"Bearer {seed_stack.token}"}
    upload = httpx.post(
        seed_stack.base_url + "/v1/files",
        headers=auth,
        files={
            "file": ("介紹.txt", "自我介紹: Kuwa 是一個可以同時和許多模型聊天的平台。\n".encode())
        },
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["id"]
    url = f"{seed_stack.base_url}/v1/files/{file_id}"
    deadline = time.monotonic() + 60
    while httpx.get(url, headers=auth).json()["status"] == "uploaded":
        assert time.monotonic() < deadline, "the file was not indexed"
        time.sleep(0.1)
    body = {"messages": [{"role": "user", "content": PROMPT}], "model": "gemini-pro"}
    whole = post_v10(seed_stack, {**body, "files": [file_id], "stream": False}).json()
    expected = whole["choices"][0]["message"]["content"]
    # An echo model answers with its prompt: the passages in the zh-TW template (the question
    # is in Chinese and no Accept-Language says otherwise).
    assert expected.startswith("請根據下列編號的段落回答問題") and "[1] 介紹.txt" in expected
    assert whole["citations"][0]["file"] == file_id

    r = post_v10(seed_stack, {**body, "files": [file_id]})
    data, other = kuwa_events(r.text)
    assert other == ["event: close"]
    first = data[0]
    assert first.pop("citations") == whole["citations"]
    assert "".join(assert_seed_event(e, "gemini-pro") for e in data) == expected
    assert r.content.isascii()

    python = with_files(
        seed_copy("seed_client.py", seed_stack, tmp_path),
        '"model": "gemini-pro"',
        f'"files": ["{file_id}"]',
    )
    result = run([sys.executable, str(python)])
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout == expected
    node = shutil.which("node")
    assert node, "node (Node 20) must be on PATH"
    js = with_files(
        seed_copy("seed_client.js", seed_stack, tmp_path),
        'model: "gemini-pro"',
        f'files: ["{file_id}"]',
    )
    result = run([node, str(js)])
    assert result.returncode == 0, result.stderr
    assert "Error" not in ANSI.sub("", result.stdout + result.stderr)
    assert ANSI.sub("", result.stdout).endswith(expected + "\nStream ended\n")
