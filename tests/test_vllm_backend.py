"""The vllm backend's own code paths, against a stand-in for vLLM's AsyncLLM API.

vLLM itself needs a GPU; bench/gpu/ runs the real engine. Here a small module with the same
names as vLLM's (AsyncEngineArgs, AsyncLLM, SamplingParams, RequestOutputKind) is put in
``sys.modules`` so start(), prompt building, sampling mapping, streaming, usage, stats and
cancellation run exactly as they do on the GPU host.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from kuwa.executors import load_backend
from kuwa.executors.base import BackendError
from kuwa.executors.prompt import PromptBuilder
from kuwa.executors.vllm_backend import VLLMBackend, engine_options, sampling_kwargs
from kuwa.schemas import GenerationParams, Job, Message
from kuwa.settings import Settings

pytestmark = pytest.mark.anyio


class CharTokenizer:
    """One token per character; a chat template like a real one (role tags)."""

    chat_template = "tags"

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> list[int]:
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"
        return [ord(c) for c in text]

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]


@dataclass
class Piece:
    text: str
    token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class Output:
    outputs: list[Piece]
    finished: bool


@dataclass
class FakeEngine:
    max_len: int = 64
    requests: list[tuple[list[int], Any, str]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    running: int = 0

    def __post_init__(self) -> None:
        self.model_config = types.SimpleNamespace(max_model_len=self.max_len)
        self.output_processor = types.SimpleNamespace(
            get_num_unfinished_requests=lambda: self.running
        )

    def get_tokenizer(self) -> CharTokenizer:
        return CharTokenizer()

    def shutdown(self) -> None:
        pass

    async def generate(
        self, prompt: dict[str, list[int]], params: Any, request_id: str
    ) -> AsyncIterator[Output]:
        self.requests.append((prompt["prompt_token_ids"], params, request_id))
        self.running += 1
        try:
            n = params.kwargs["max_tokens"]
            for i in range(n):
                await asyncio.sleep(0.001)
                last = i == n - 1
                yield Output([Piece("ab"[i % 2], [i], "length" if last else None)], last)
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted.append(request_id)
            raise
        finally:
            self.running -= 1


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    made: dict[str, Any] = {}

    class AsyncEngineArgs:
        def __init__(self, **kwargs: Any) -> None:
            made["engine_args"] = kwargs

    class AsyncLLM:
        @staticmethod
        def from_engine_args(args: Any, usage_context: Any) -> FakeEngine:
            made["engine"] = FakeEngine(max_len=made["engine_args"].get("max_model_len", 64))
            return made["engine"]

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    modules = {
        "vllm": types.ModuleType("vllm"),
        "vllm.engine": types.ModuleType("vllm.engine"),
        "vllm.engine.arg_utils": types.SimpleNamespace(AsyncEngineArgs=AsyncEngineArgs),
        "vllm.platforms": types.SimpleNamespace(
            current_platform=types.SimpleNamespace(is_cpu=lambda: False)
        ),
        "vllm.usage": types.ModuleType("vllm.usage"),
        "vllm.usage.usage_lib": types.SimpleNamespace(
            UsageContext=types.SimpleNamespace(ENGINE_CONTEXT="engine")
        ),
        "vllm.v1": types.ModuleType("vllm.v1"),
        "vllm.v1.engine": types.ModuleType("vllm.v1.engine"),
        "vllm.v1.engine.async_llm": types.SimpleNamespace(AsyncLLM=AsyncLLM),
        "vllm.sampling_params": types.SimpleNamespace(
            SamplingParams=SamplingParams, RequestOutputKind=types.SimpleNamespace(DELTA="delta")
        ),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    yield made


def job(*messages: Message, **params: Any) -> Job:
    return Job("chatcmpl-1", "tiny", messages, GenerationParams(**params))


def test_registered_as_an_entry_point() -> None:
    assert load_backend("vllm") is VLLMBackend


def test_engine_options_pass_through() -> None:
    s = Settings(
        model="org/model",
        max_concurrency=64,
        gpu_memory_utilization=0.5,
        tensor_parallel_size=2,
        max_model_len=4096,
        dtype="bfloat16",
        load_format="dummy",
        enforce_eager=True,
        trust_remote_code=True,
    )
    assert engine_options(s) == {
        "model": "org/model",
        "tokenizer": "org/model",
        "trust_remote_code": True,
        "max_num_seqs": 64,
        "enforce_eager": True,
        "gpu_memory_utilization": 0.5,
        "tensor_parallel_size": 2,
        "max_model_len": 4096,
        "dtype": "bfloat16",
        "load_format": "dummy",
    }


def test_cpu_defaults_reserve_a_kv_cache_and_run_eagerly() -> None:
    on_cpu = engine_options(Settings(model="m"), on_cpu=True)
    assert on_cpu["enforce_eager"] is True
    assert 0 < on_cpu["kv_cache_memory_bytes"] <= 4 << 30
    assert "gpu_memory_utilization" not in on_cpu
    on_gpu = engine_options(Settings(model="m"))
    assert on_gpu["enforce_eager"] is False
    assert "kv_cache_memory_bytes" not in on_gpu
    chosen = engine_options(
        Settings(model="m", kv_cache_gib=0.25, enforce_eager=False), on_cpu=True
    )
    assert chosen["kv_cache_memory_bytes"] == 1 << 28
    assert chosen["enforce_eager"] is False
    share = engine_options(Settings(model="m", gpu_memory_utilization=0.3), on_cpu=True)
    assert share["gpu_memory_utilization"] == 0.3
    assert "kv_cache_memory_bytes" not in share


def test_sampling_always_sets_max_tokens() -> None:
    assert sampling_kwargs(job(Message("user", "x")), room=100) == {"max_tokens": 100}
    kw = sampling_kwargs(
        job(
            Message("user", "x"),
            temperature=0.2,
            top_p=0.9,
            max_tokens=500,
            stop=("END",),
            seed=3,
            ignore_eos=True,
        ),
        room=100,
    )
    assert kw == {
        "max_tokens": 100,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 3,
        "stop": ["END"],
        "ignore_eos": True,
    }


def test_top_p_zero_is_greedy() -> None:
    """vLLM refuses ``top_p: 0`` (the API allows it): only the likeliest token, greedy."""
    kw = sampling_kwargs(job(Message("user", "x"), temperature=0.8, top_p=0.0), room=10)
    assert kw == {"max_tokens": 10, "temperature": 0.0}


def test_long_history_is_trimmed_oldest_first() -> None:
    builder = PromptBuilder(CharTokenizer(), max_len=60)
    messages = [
        Message("system", "be kind"),
        Message("user", "x" * 20),
        Message("assistant", "y" * 20),
        Message("user", "last"),
    ]
    ids = builder.encode(messages)
    text = "".join(map(chr, ids))
    assert text == "<system>be kind<user>last<assistant>"


def test_prompt_that_cannot_fit_is_a_clear_error() -> None:
    builder = PromptBuilder(CharTokenizer(), max_len=20)
    with pytest.raises(BackendError, match="accepts at most 19"):
        builder.encode([Message("user", "z" * 50)])


async def test_streams_through_the_engine(fake_vllm: dict[str, Any]) -> None:
    backend = VLLMBackend(Settings(model="/models/tiny", max_model_len=64), "/models/tiny")
    await backend.start()
    pieces: list[str] = []
    done = await backend.generate(job(Message("user", "hi"), max_tokens=5), pieces.append)
    assert "".join(pieces) == "ababa"
    assert done.finish_reason == "length"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (
        len("<user>hi<assistant>"),
        5,
    )
    prompt, params, request_id = fake_vllm["engine"].requests[0]
    assert "".join(map(chr, prompt)) == "<user>hi<assistant>"
    assert params.kwargs["output_kind"] == "delta" and request_id == "chatcmpl-1"
    assert fake_vllm["engine_args"]["max_num_seqs"] == 16
    await backend.stop()


async def test_cancel_aborts_the_engine_request(fake_vllm: dict[str, Any]) -> None:
    backend = VLLMBackend(Settings(model="/models/tiny", max_model_len=4096), "/models/tiny")
    await backend.start()
    task = asyncio.create_task(backend.generate(job(Message("user", "hi")), lambda _: None))
    await asyncio.sleep(0.02)
    assert backend.stats() == {"running": 1}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake_vllm["engine"].aborted == ["chatcmpl-1"]
    assert backend.stats() == {"running": 0}


async def test_missing_vllm_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm.engine.arg_utils", None)
    backend = VLLMBackend(Settings(model="m"), "m")
    with pytest.raises(BackendError, match=r"pip install 'kuwa\[vllm\]'"):
        await backend.start()


async def test_model_is_required() -> None:
    with pytest.raises(BackendError, match="--model"):
        await VLLMBackend(Settings(), None).start()


def test_extra_sampling_parameters_are_mapped() -> None:
    kw = sampling_kwargs(
        job(
            Message("user", "x"),
            top_k=20,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            repetition_penalty=1.05,
        ),
        room=10,
    )
    assert kw == {
        "max_tokens": 10,
        "top_k": 20,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "repetition_penalty": 1.05,
    }


class TemplateTokenizer(CharTokenizer):
    def apply_chat_template(  # type: ignore[override]
        self,
        messages: list[dict[str, str]],
        tokenize: bool,
        add_generation_prompt: bool,
        chat_template: str | None = None,
    ) -> list[int]:
        if chat_template is None:
            return super().apply_chat_template(messages, tokenize, add_generation_prompt)
        return [ord(c) for c in chat_template + messages[-1]["content"]]


def test_a_modelfile_template_replaces_the_tokenizers() -> None:
    builder = PromptBuilder(TemplateTokenizer(), max_len=100)
    assert "".join(map(chr, builder.encode([Message("user", "hi")], "T:"))) == "T:hi"
    assert "".join(map(chr, builder.encode([Message("user", "hi")]))) == "<user>hi<assistant>"
