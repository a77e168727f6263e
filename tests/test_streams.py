"""Streams under load and streams whose client goes away.

* 100 concurrent streams (both APIs, CJK prompts) each get exactly their own answer.
* A client that disconnects cancels its job: the executor stops within 100 ms, the transcript
  ends with a ``cancelled`` chunk, nothing more is generated, and the executor's slot is free.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import pytest

from kuwa import keys
from kuwa.schemas import Chunk
from tests.stack import Stack, wait_until

N_STREAMS = 100
SLOW_ONE = "slow-one"  # 50 ms per token, one slot: a leaked slot would block the next request


@pytest.fixture(scope="module")
def slow_one(stack: Stack) -> str:
    stack.executor(SLOW_ONE, delay=0.05, concurrency=1)
    return SLOW_ONE


# --- many streams at once -----------------------------------------------------------------


def prompt_for(i: int) -> str:
    cjk = "你好世界請自我介紹"[i % 9 :] + "🌍"
    return f"stream {i:03d} says {cjk} to #{i * 7919 % 1000:03d} and {'x' * (i % 13)}."


async def read_stream(client: httpx.AsyncClient, token: str, i: int) -> tuple[str, set[str]]:
    """Send request ``i`` (odd: /v1, even: /v1.0) and return its answer and event ids."""
    kuwa = i % 2 == 0
    path = "/v1.0/chat/completions" if kuwa else "/v1/chat/completions"
    body: dict[str, Any] = {
        "model": "echo",
        "messages": [
            {"role": "user", "content": f"earlier question {i}"},
            {"role": "assistant", "content": f"earlier answer {i}"},
            {"role": "user", "content": prompt_for(i)},
        ],
    }
    if not kuwa:
        body["stream"] = True
    parts: list[str] = []
    ids: set[str] = set()
    seqs: list[int] = []
    ended = False
    async with client.stream(
        "POST", path, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status_code == 200, await r.aread()
        async for line in r.aiter_lines():
            if not line:
                continue
            assert not ended, f"stream {i}: data after the end: {line!r}"
            if line in ("data: [DONE]", "event: close"):
                assert line == ("event: close" if kuwa else "data: [DONE]")
                ended = True
                continue
            if line.startswith("id: ") and not kuwa:  # /v1 only: the chunk's number
                seqs.append(int(line[len("id: ") :]))
                continue
            assert line.startswith("data: "), line  # /v1.0: nothing but the seed's lines
            event = json.loads(line[len("data: ") :])
            assert "error" not in event, event
            ids.add(event["id"])
            parts.append(event["choices"][0]["delta"].get("content") or "")
    assert ended, f"stream {i} did not end properly"
    assert seqs == ([] if kuwa else list(range(len(seqs)))) and (kuwa or seqs), seqs
    return "".join(parts), ids


async def run_streams(stack: Stack) -> list[tuple[str, set[str]]]:
    limits = httpx.Limits(max_connections=N_STREAMS + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=stack.base_url, limits=limits, timeout=30) as client:
        return await asyncio.gather(
            *(read_stream(client, stack.token, i) for i in range(N_STREAMS))
        )


@pytest.mark.anyio
async def test_concurrent_streams_no_cross_talk(stack: Stack) -> None:
    started = time.monotonic()
    results = await run_streams(stack)
    elapsed = time.monotonic() - started
    all_ids: set[str] = set()
    for i, (answer, ids) in enumerate(results):
        assert answer == prompt_for(i), f"stream {i} got someone else's answer"
        assert len(ids) == 1, f"stream {i} mixed job ids {ids}"
        all_ids |= ids
    assert len(all_ids) == N_STREAMS
    assert elapsed < 20


# --- disconnect cancels -------------------------------------------------------------------


class RawStream:
    """A streaming request on a plain socket, so the test controls exactly when it closes."""

    def __init__(
        self, stack: Stack, path: str, model: str, prompt: str, *, stream: bool = True
    ) -> None:
        host, port = stack.base_url.removeprefix("http://").split(":")
        body = {
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": prompt}],
        }
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {stack.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.sendall(head + payload)
        self.buffer = b""

    def first_content_event(self) -> dict[str, Any]:
        """Read until the first event that carries text; return it."""
        while True:
            for line in self.buffer.split(b"\n"):
                if line.startswith(b"data: {") and line.endswith(b"}"):
                    event = json.loads(line[len(b"data: ") :])
                    if event["choices"][0]["delta"].get("content"):
                        return dict(event)
            data = self.sock.recv(65536)
            assert data, f"the server closed the stream: {self.buffer!r}"
            self.buffer += data

    def close(self) -> float:
        """Close the connection; returns the wall-clock time it happened."""
        now = time.time()
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        return now


def job_state(stack: Stack, job_id: str) -> dict[str, str]:
    client = stack.redis.client()
    try:
        raw = client.hgetall(keys.job_state(job_id))
    finally:
        client.close()
    return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]


def transcript(stack: Stack, job_id: str) -> list[Chunk]:
    client = stack.redis.client()
    try:
        raws = client.lrange(keys.job_transcript(job_id), 0, -1)
    finally:
        client.close()
    return [Chunk.decode(r) for r in raws]  # type: ignore[union-attr]


def wait_for_status(stack: Stack, job_id: str, status: str, timeout: float = 5) -> dict[str, str]:
    wait_until(
        lambda: job_state(stack, job_id).get("status") == status,
        timeout,
        f"job {job_id} to be {status} (now {job_state(stack, job_id)})",
    )
    return job_state(stack, job_id)


def assert_slot_free(stack: Stack, model: str) -> None:
    """A short request on the one-slot executor is answered at once."""
    start = time.monotonic()
    r = httpx.post(
        stack.base_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {stack.token}"},
        json={"model": model, "messages": [{"role": "user", "content": "still here"}]},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "still here"
    assert time.monotonic() - start < 2


LONG_PROMPT = " ".join(f"token{i}" for i in range(400))  # 20 s at 50 ms per token


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1.0/chat/completions"])
def test_disconnect_cancels_the_job(stack: Stack, slow_one: str, path: str) -> None:
    raw = RawStream(stack, path, slow_one, LONG_PROMPT)
    event = raw.first_content_event()
    job_id = event["id"]
    assert job_id.startswith("chatcmpl-")
    assert job_state(stack, job_id)["status"] == "running"
    disconnected = raw.close()

    state = wait_for_status(stack, job_id, "cancelled")
    stopped_after = float(state["finished"]) - disconnected
    assert stopped_after < 0.1, f"the executor stopped {stopped_after * 1000:.0f} ms after"

    chunks = transcript(stack, job_id)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].finish_reason == "cancelled"
    assert chunks[-1].error is None
    assert all(c.finish_reason is None for c in chunks[:-1])
    text = "".join(c.text for c in chunks)
    assert LONG_PROMPT.startswith(text)
    assert len(text) < len(LONG_PROMPT) // 2

    time.sleep(0.3)  # six token intervals: nothing more may be generated
    assert len(transcript(stack, job_id)) == len(chunks)
    assert job_state(stack, job_id)["status"] == "cancelled"
    assert_slot_free(stack, slow_one)


def test_disconnect_while_queued_never_runs(stack: Stack, slow_one: str) -> None:
    running = RawStream(stack, "/v1/chat/completions", slow_one, LONG_PROMPT)
    running_id = running.first_content_event()["id"]
    queued = RawStream(stack, "/v1/chat/completions", slow_one, LONG_PROMPT)
    # The /v1 stream starts with the role chunk before any token: the job is enqueued.
    queued.buffer = b""
    while b"data: {" not in queued.buffer or b"\n\n" not in queued.buffer:
        queued.buffer += queued.sock.recv(65536)
    first = queued.buffer.split(b"data: ", 1)[1].split(b"\n", 1)[0]
    queued_id = json.loads(first)["id"]
    assert job_state(stack, queued_id)["status"] == "queued"
    queued.close()
    time.sleep(0.1)
    assert job_state(stack, queued_id)["status"] == "queued"  # still waiting for the slot
    running.close()

    wait_for_status(stack, running_id, "cancelled")
    state = wait_for_status(stack, queued_id, "cancelled")
    assert "started" in state
    chunks = transcript(stack, queued_id)
    assert len(chunks) == 1
    assert chunks[0].finish_reason == "cancelled"
    assert chunks[0].text == ""
    assert_slot_free(stack, slow_one)


def running_job_of(stack: Stack, model: str) -> str | None:
    """The id of the job an executor has taken from ``model``'s queue, once it is running."""
    client = stack.redis.client()
    try:
        entries = client.xrange(keys.queue_stream(model))
    finally:
        client.close()
    for _, fields in entries:  # type: ignore[union-attr]
        job_id = fields[b"id"].decode()
        if job_state(stack, job_id).get("status") == "running":
            return str(job_id)
    return None


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1.0/chat/completions"])
def test_disconnect_cancels_a_non_streaming_request(stack: Stack, slow_one: str, path: str) -> None:
    raw = RawStream(stack, path, slow_one, LONG_PROMPT, stream=False)
    found: list[str] = []

    def running() -> bool:
        job_id = running_job_of(stack, slow_one)
        if job_id:
            found.append(job_id)
        return bool(found)

    wait_until(running, 5, "the non-streaming job to run")
    job_id = found[0]
    time.sleep(0.2)  # it is generating (its text is buffered: nobody reads it piece by piece)
    disconnected = raw.close()

    state = wait_for_status(stack, job_id, "cancelled")
    stopped_after = float(state["finished"]) - disconnected
    assert stopped_after < 0.1, f"the executor stopped {stopped_after * 1000:.0f} ms after"
    chunks = transcript(stack, job_id)
    assert chunks[-1].finish_reason == "cancelled"
    time.sleep(0.3)
    assert len(transcript(stack, job_id)) == len(chunks)
    assert_slot_free(stack, slow_one)
