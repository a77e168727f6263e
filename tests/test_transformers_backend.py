"""The transformers backend on a real (tiny, random) Llama model, offline, on the CPU.

The model and tokenizer are built here (tests/tinymodel.py) and saved like a downloaded
model. Its answers are arbitrary text, so tests check structure (usage, finish reasons,
determinism, stop cuts against a first run) rather than words. The last test runs a real
``python -m kuwa executor start --backend transformers`` behind a real gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never download

import torch

from kuwa.executors import load_backend
from kuwa.executors.base import BackendError
from kuwa.executors.transformers_backend import TransformersBackend, generation_kwargs
from kuwa.schemas import GenerationParams, Job, Message
from kuwa.settings import Settings
from tests import tinymodel
from tests.stack import RedisServer, Stack

# The model is tiny: torch's intra-op threads only add overhead, and on a busy CI machine their
# spin-waiting makes generation several times slower.
torch.set_num_threads(1)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tinymodel.build(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def backend(tiny_model: Path) -> Any:
    b = TransformersBackend(Settings(model=str(tiny_model)), str(tiny_model))
    await b.start()
    yield b
    await b.stop()


def job(text: str = "Hello there!", **params: Any) -> Job:
    return Job("chatcmpl-t", "tiny", (Message("user", text),), GenerationParams(**params))


async def run(backend: TransformersBackend, j: Job) -> tuple[str, Any, list[str]]:
    pieces: list[str] = []
    done = await backend.generate(j, pieces.append)
    return "".join(pieces), done, pieces


def test_registered_as_an_entry_point() -> None:
    assert load_backend("transformers") is TransformersBackend


def test_importing_the_backend_imports_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, json, kuwa.executors.transformers_backend; print(json.dumps([*sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert not loaded & {"torch", "transformers", "tokenizers"}


def test_generation_kwargs() -> None:
    assert generation_kwargs(GenerationParams(), room=50) == {"max_new_tokens": 50}
    assert generation_kwargs(GenerationParams(max_tokens=500, temperature=0), room=50) == {
        "max_new_tokens": 50,
        "do_sample": False,
    }
    full = GenerationParams(max_tokens=8, temperature=0.7, top_p=0.9, ignore_eos=True)
    assert generation_kwargs(full, room=50) == {
        "max_new_tokens": 8,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "min_new_tokens": 8,
    }
    assert generation_kwargs(GenerationParams(top_p=0.5), room=9)["do_sample"] is True


async def test_loads_and_streams(backend: TransformersBackend, tiny_model: Path) -> None:
    assert backend.model == str(tiny_model)
    assert backend.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert backend.prompts.max_len == tinymodel.CONTEXT
    text, done, pieces = await run(backend, job(max_tokens=12, ignore_eos=True))
    assert text and len(pieces) > 1
    expected = backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello there!"}], tokenize=True, add_generation_prompt=True
    )
    if not isinstance(expected, list):
        expected = expected["input_ids"]
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (len(expected), 12)
    assert backend.count_tokens([Message("user", "Hello there!")]) == len(expected)
    assert done.finish_reason == "length"
    assert backend.stats() == {"running": 0, "waiting": 0}


async def test_greedy_is_deterministic(backend: TransformersBackend) -> None:
    first = await run(backend, job(max_tokens=16, ignore_eos=True))
    second = await run(backend, job(max_tokens=16, ignore_eos=True, temperature=0))
    assert first[0] == second[0]


async def test_seed_makes_sampling_reproducible(backend: TransformersBackend) -> None:
    params = {"max_tokens": 24, "ignore_eos": True, "temperature": 1.5}
    a = await run(backend, job(seed=7, **params))
    b = await run(backend, job(seed=7, **params))
    c = await run(backend, job(seed=8, **params))
    assert a[0] == b[0]
    assert a[2] == b[2]
    assert c[0] != a[0]


async def test_stop_string_cuts_the_answer(backend: TransformersBackend) -> None:
    full, _, _ = await run(backend, job(max_tokens=30, ignore_eos=True))
    stop = full[10:13]
    cut = full[: full.index(stop)]
    text, done, _ = await run(backend, job(max_tokens=30, ignore_eos=True, stop=(stop, "@@@")))
    assert text == cut
    assert done.finish_reason == "stop"
    assert 0 < done.usage.completion_tokens < 30


async def test_eos_ends_the_answer_unless_ignored(backend: TransformersBackend) -> None:
    eos = backend.tokenizer.eos_token_id

    def favour_eos(module: Any, args: Any, logits: Any) -> Any:
        logits[..., eos] += 1000.0
        return logits

    hook = backend.hf_model.lm_head.register_forward_hook(favour_eos)
    try:
        text, done, _ = await run(backend, job(max_tokens=5))
        assert (text, done.finish_reason, done.usage.completion_tokens) == ("", "stop", 1)
        _, done, _ = await run(backend, job(max_tokens=1))  # EOS as the last allowed token
        assert done.finish_reason == "stop"
        _, done, _ = await run(backend, job(max_tokens=5, ignore_eos=True))
        assert (done.finish_reason, done.usage.completion_tokens) == ("length", 5)
    finally:
        hook.remove()


async def test_max_tokens_is_capped_by_the_context(tiny_model: Path) -> None:
    b = TransformersBackend(Settings(model=str(tiny_model), max_model_len=40), "x")
    await b.start()
    try:
        _, done, _ = await run(b, job(max_tokens=1000, ignore_eos=True))
        assert done.usage.prompt_tokens + done.usage.completion_tokens == 40
        assert done.finish_reason == "length"
        with pytest.raises(BackendError, match="accepts at most 39"):
            await run(b, job("word " * 100))
    finally:
        await b.stop()


async def test_cancel_stops_generation_promptly(backend: TransformersBackend) -> None:
    pieces: list[str] = []
    first = asyncio.Event()

    def emit(text: str) -> None:
        pieces.append(text)
        first.set()

    task = asyncio.create_task(backend.generate(job(ignore_eos=True), emit))  # ~4000 tokens
    await asyncio.wait_for(first.wait(), 10)
    assert backend.stats()["running"] == 1
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
    assert backend.stats() == {"running": 0, "waiting": 0}
    seen = len(pieces)
    await asyncio.sleep(0.05)
    assert len(pieces) == seen  # nothing emitted after the job ended
    _, done, _ = await run(backend, job(max_tokens=5, ignore_eos=True))  # still works
    assert done.usage.completion_tokens == 5


async def test_concurrent_jobs_run_one_after_another(backend: TransformersBackend) -> None:
    alone, _, _ = await run(backend, job(max_tokens=10, ignore_eos=True))
    jobs = [run(backend, job(max_tokens=10, ignore_eos=True)) for _ in range(3)]
    waiting = asyncio.gather(*jobs)
    await asyncio.sleep(0)
    results = await waiting
    assert [r[0] for r in results] == [alone] * 3
    assert all(r[1].usage.completion_tokens == 10 for r in results)


async def test_cancel_while_waiting_for_the_worker(backend: TransformersBackend) -> None:
    long = asyncio.create_task(run(backend, job(max_tokens=60, ignore_eos=True)))
    queued = asyncio.create_task(run(backend, job(max_tokens=5)))
    await asyncio.sleep(0.01)
    assert backend.stats() == {"running": 1, "waiting": 1}
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    _, done, _ = await long
    assert done.usage.completion_tokens == 60


async def test_missing_transformers_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    b = TransformersBackend(Settings(model="m"), "m")
    with pytest.raises(BackendError, match=r"pip install 'kuwa\[transformers\]'"):
        await b.start()


async def test_model_is_required() -> None:
    with pytest.raises(BackendError, match="--model"):
        await TransformersBackend(Settings(), None).start()


async def test_bad_dtype_is_a_clear_error(tiny_model: Path) -> None:
    b = TransformersBackend(Settings(model=str(tiny_model), dtype="float99"), "m")
    with pytest.raises(BackendError, match="unknown dtype 'float99'"):
        await b.start()


# --- end to end -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_stack(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("tiny-stack")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.token = s.create_user()
        extra = ["--backend", "transformers", "--model", str(tiny_model), "--max-concurrency", "2"]
        s.executor("tiny", extra=extra, env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
        s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.mark.slow
def test_openai_stream_through_a_transformers_executor(tiny_stack: Stack, tiny_model: Path) -> None:
    import openai

    with openai.OpenAI(
        base_url=tiny_stack.base_url + "/v1", api_key=tiny_stack.token, max_retries=0, timeout=30
    ) as client:
        stream = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "Hello there!"}],
            max_tokens=9,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 9 and usage.prompt_tokens > 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert f"transformers: loading {tiny_model} on {device}" in tiny_stack.procs[0].text()
