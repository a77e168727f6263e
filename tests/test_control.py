"""Rule-based control inside a running executor: Modelfiles, input/output rules, counters."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from kuwa.broker import Hub, JobQueue, Registry
from kuwa.executors.debug import DebugBackend
from kuwa.executors.runtime import ExecutorRuntime
from kuwa.schemas import Chunk, Job, Message
from kuwa.settings import Settings
from tests.stack import RedisServer, Stack

pytestmark = pytest.mark.anyio

RULES = """
input:
  - match: {keyword: "password"}
    action: block
    message: "Please do not share passwords."
  - match: {regex: "\\\\b\\\\d{16}\\\\b"}
    action: overwrite
    replace: "[card]"
output:
  - match: {keyword: "codename"}
    action: block
    message: "The answer was stopped by a content rule."
  - match: {regex: "sk-[A-Za-z0-9]{8,}"}
    action: overwrite
    replace: "[redacted]"
parameters:
  max_tokens: {max: 50}
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text('SYSTEM "Be brief."\nBEFORE-PROMPT "Q: "\nPARAMETER temperature 0.3\n')
    return {"rules": rules, "modelfile": modelfile}


async def run(
    redis: aioredis.Redis, hub: Hub, settings: Settings, text: str, modelfile: str | None = None
) -> tuple[list[Chunk], ExecutorRuntime]:
    runtime = ExecutorRuntime(settings, DebugBackend(settings), redis)
    task = asyncio.create_task(runtime.run())
    for _ in range(200):
        if (await Registry(redis).live_counts(["echo"]))["echo"]:
            break
        await asyncio.sleep(0.01)
    job = Job(
        f"chatcmpl-{time.monotonic_ns()}", "echo", (Message("user", text),), modelfile=modelfile
    )
    sub = await hub.subscribe(job.id)
    await JobQueue(redis).enqueue(job)
    try:
        return [c async for c in sub.chunks(idle_timeout=10)], runtime
    finally:
        await sub.close()
        runtime.request_stop()
        await asyncio.wait_for(task, 10)


def settings(**kw: object) -> Settings:
    return Settings(access_code=("echo",), **kw)  # type: ignore[arg-type]


async def test_modelfile_shapes_the_prompt(
    redis: aioredis.Redis, hub: Hub, files: dict[str, Path]
) -> None:
    chunks, _ = await run(redis, hub, settings(modelfile=files["modelfile"]), "hello")
    assert "".join(c.text for c in chunks) == "Q: hello"  # the echo shows BEFORE-PROMPT


async def test_bots_modelfile_travels_with_the_job(
    redis: aioredis.Redis, hub: Hub, files: dict[str, Path]
) -> None:
    bot = 'AFTER-PROMPT " (answer in French)"'
    chunks, _ = await run(redis, hub, settings(modelfile=files["modelfile"]), "hi", bot)
    assert "".join(c.text for c in chunks) == "Q: hi (answer in French)"


async def test_invalid_bot_modelfile_is_a_clear_error(redis: aioredis.Redis, hub: Hub) -> None:
    chunks, _ = await run(redis, hub, settings(), "hi", 'SYSTEM """never closed')
    assert chunks[-1].error is not None
    assert "Modelfile" in chunks[-1].error["message"] and "line 1" in chunks[-1].error["message"]


async def test_input_rule_blocks_with_its_message(
    redis: aioredis.Redis, hub: Hub, files: dict[str, Path]
) -> None:
    chunks, runtime = await run(redis, hub, settings(rules=files["rules"]), "my password is x")
    assert chunks[-1].error == {"message": "Please do not share passwords.", "code": "blocked"}
    assert "".join(c.text for c in chunks) == ""
    assert runtime.control.counters()["input.block"] == 1


async def test_input_rule_overwrites(
    redis: aioredis.Redis, hub: Hub, files: dict[str, Path]
) -> None:
    chunks, _ = await run(redis, hub, settings(rules=files["rules"]), "card 1234567812345678 ok")
    assert "".join(c.text for c in chunks) == "card [card] ok"


async def test_blocked_phrase_never_reaches_the_reader(
    redis: aioredis.Redis, hub: Hub, files: dict[str, Path]
) -> None:
    s = settings(rules=files["rules"], debug_delay=0.01)
    chunks, runtime = await run(redis, hub, s, "the secret codename is kiwi and more")
    text = "".join(c.text for c in chunks)
    assert "codename" not in text and "kiwi" not in text
    assert text == "the secret "
    assert chunks[-1].error == {
        "message": "The answer was stopped by a content rule.",
        "code": "blocked",
    }
    assert runtime.control.counters()["output.block"] == 1


async def test_output_rule_overwrites_while_streaming(
    redis: aioredis.Redis, hub: Hub, files: dict[str, Path]
) -> None:
    chunks, _ = await run(redis, hub, settings(rules=files["rules"]), "key sk-abcdefghij12 end")
    assert "".join(c.text for c in chunks) == "key [redacted] end"
    assert chunks[-1].finish_reason == "stop"


async def test_system_prompt_option(redis: aioredis.Redis, hub: Hub) -> None:
    chunks, runtime = await run(redis, hub, settings(system_prompt='Say "hi" """x"""'), "yo")
    assert "".join(c.text for c in chunks) == "yo"
    assert runtime.control.modelfile is not None
    assert runtime.control.modelfile.system == 'Say "hi" """x"""'


def test_rule_counters_are_visible_to_operators(tmp_path: Path, files: dict[str, Path]) -> None:
    """A real executor process with --rules: `executor list --json` shows the decisions."""
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        stack.token = stack.create_user()
        stack.executor(
            "echo", extra=["--rules", str(files["rules"])], env={"KUWA_HEARTBEAT_TTL": "0.6"}
        )
        base = stack.gateway()
        r = httpx.post(
            base + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {stack.token}"},
            json={"model": "echo", "messages": [{"role": "user", "content": "a password"}]},
        )
        assert r.status_code == 400
        assert r.json()["error"] == {
            "message": "Please do not share passwords.",
            "type": "invalid_request_error",
            "param": None,
            "code": "content_blocked",
        }
        import json
        import subprocess
        import sys

        deadline = time.monotonic() + 5
        while True:
            out = subprocess.run(
                [sys.executable, "-m", "kuwa", "executor", "list", "--json"],
                env=stack.env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rules = json.loads(out)[0]["rules"]
            if rules.get("input.block") == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert rules["input.block"] == 1
    finally:
        stack.stop()
        server.stop()
