"""GET /v1/jobs/{id}/events: a late or reconnecting reader replays, then follows live."""

from __future__ import annotations

import json
import threading

import httpx

from tests.stack import Stack


def auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def contents(lines: list[str]) -> str:
    out = ""
    for line in lines:
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                out += choice["delta"].get("content") or ""
    return out


def start_slow(stack: Stack, prompt: str) -> tuple[str, threading.Thread, list[str]]:
    """Start a streamed request on `slow`; return its job id once the first chunk came."""
    lines: list[str] = []
    got_id = threading.Event()

    def run() -> None:
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": prompt}]}
        with httpx.stream(
            "POST",
            stack.base_url + "/v1/chat/completions",
            json=body,
            headers=auth(stack),
            timeout=30,
        ) as r:
            for line in r.iter_lines():
                lines.append(line)
                if '"content":"' in line and '"content":""' not in line:
                    got_id.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert got_id.wait(10)
    job_id = json.loads(lines[0][6:])["id"]
    return job_id, thread, lines


def test_a_second_reader_gets_the_whole_answer(stack: Stack) -> None:
    prompt = "one two three four five six seven eight"
    job_id, thread, original = start_slow(stack, prompt)
    with httpx.stream(
        "GET", f"{stack.base_url}/v1/jobs/{job_id}/events", headers=auth(stack), timeout=30
    ) as r:
        assert r.status_code == 200
        follower = list(r.iter_lines())
    thread.join(30)
    assert contents(follower) == prompt == contents(original)
    assert [x for x in follower if x][-1] == "data: [DONE]"
    ids = [int(x[4:]) for x in follower if x.startswith("id: ")]
    assert ids == sorted(ids) and ids[0] == 0
    assert any('"usage":{"prompt_tokens"' in x for x in follower)


def test_resume_after_a_chunk(stack: Stack) -> None:
    prompt = "alpha beta gamma delta"
    job_id, thread, _ = start_slow(stack, prompt)
    thread.join(30)
    with httpx.stream(
        "GET", f"{stack.base_url}/v1/jobs/{job_id}/events", headers=auth(stack), timeout=30
    ) as r:
        whole = list(r.iter_lines())
    first_id = next(int(x[4:]) for x in whole if x.startswith("id: "))
    first_text = contents([whole[whole.index(f"id: {first_id}") + 1]])
    resumed = httpx.get(
        f"{stack.base_url}/v1/jobs/{job_id}/events",
        headers=auth(stack) | {"Last-Event-ID": str(first_id)},
        timeout=30,
    )
    assert first_text + contents(resumed.text.splitlines()) == prompt


def test_following_does_not_cancel_and_others_cannot_follow(stack: Stack) -> None:
    job_id, thread, original = start_slow(stack, "a b c d e f")
    with httpx.stream(
        "GET", f"{stack.base_url}/v1/jobs/{job_id}/events", headers=auth(stack), timeout=30
    ) as r:
        next(r.iter_lines())  # leave at once
    other = stack.create_user("intruder@example.com")
    r2 = httpx.get(
        f"{stack.base_url}/v1/jobs/{job_id}/events",
        headers={"Authorization": f"Bearer {other}"},
        timeout=10,
    )
    assert r2.status_code == 404 and r2.json()["error"]["param"] == "job_id"
    thread.join(30)
    assert contents(original) == "a b c d e f"  # the original reader got everything


def test_unknown_job_and_bad_resume_point(stack: Stack) -> None:
    r = httpx.get(f"{stack.base_url}/v1/jobs/chatcmpl-nope/events", headers=auth(stack))
    assert r.status_code == 404
    r = httpx.get(f"{stack.base_url}/v1/jobs/x%7By%7D/events", headers=auth(stack))
    assert r.status_code == 404
    r = httpx.get(
        f"{stack.base_url}/v1/jobs/chatcmpl-nope/events",
        headers=auth(stack) | {"Last-Event-ID": "soon"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"


def test_a_v1_stream_cut_off_by_a_dead_gateway_resumes_where_it_stopped(stack: Stack) -> None:
    """/v1/chat/completions streams carry ``id:`` lines (the chunk numbers), so a client whose
    gateway died resumes on another with ``Last-Event-ID``: no text lost, none twice."""
    import signal
    import time

    doomed_base = stack.gateway()
    doomed = next(p for p in stack.procs if p.name.endswith(doomed_base.rsplit(":", 1)[1]))
    prompt = " ".join(f"w{i}" for i in range(60))  # 3 s at 50 ms a token
    got: list[str] = []
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    with httpx.stream(
        "POST", doomed_base + "/v1/chat/completions", json=body, headers=auth(stack), timeout=30
    ) as r:
        try:
            for line in r.iter_lines():
                got.append(line)
                if sum(x.startswith("id: ") for x in got) == 5 and not line:
                    doomed.stop(signal.SIGKILL)
        except httpx.HTTPError:
            pass  # the gateway died under us
    assert got[0].startswith('data: {"id":"chatcmpl-'), got[:2]
    job_id = json.loads(got[0][6:])["id"]
    events = [e for e in "\n".join(got).split("\n\n") if e.strip()]
    for event in events[1:]:  # the role event aside, each chunk's events carry its number
        assert event.startswith("id: "), event
    last_id = [int(x[4:]) for x in got if x.startswith("id: ")][-1]
    before = contents(got)  # the gateway died between two events: each one is whole
    resumed = httpx.get(
        f"{stack.base_url}/v1/jobs/{job_id}/events",
        headers=auth(stack) | {"Last-Event-ID": str(last_id)},
        timeout=30,
    )
    assert resumed.status_code == 200
    lines = resumed.text.splitlines()
    assert before + contents(lines) == prompt
    assert [x for x in lines if x][-1] == "data: [DONE]"
    # Resuming after the final chunk ends at once (not after the idle timeout).
    final_id = [int(x[4:]) for x in lines if x.startswith("id: ")][-1]
    started = time.monotonic()
    after_end = httpx.get(
        f"{stack.base_url}/v1/jobs/{job_id}/events",
        headers=auth(stack) | {"Last-Event-ID": str(final_id)},
        timeout=30,
    )
    assert time.monotonic() - started < 3
    assert [x for x in after_end.text.splitlines() if x] == ["data: [DONE]"]
