"""The vllm backend's pure functions: engine options and sampling parameters.

Everything that needs vLLM itself runs on the real engine (the CPU build, a tiny model with
dummy weights) in tests/test_vllm_engine.py.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from kuwa.executors import load_backend
from kuwa.executors.base import BackendError
from kuwa.executors.vllm_backend import VLLMBackend, engine_options, sampling_kwargs
from kuwa.schemas import GenerationParams, Job, Message
from kuwa.settings import Settings

pytestmark = pytest.mark.anyio


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


async def test_missing_vllm_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm.engine.arg_utils", None)  # as if not installed
    backend = VLLMBackend(Settings(model="m"), "m")
    with pytest.raises(BackendError, match=r"pip install 'kuwa\[vllm\]'"):
        await backend.start()


async def test_model_is_required() -> None:
    with pytest.raises(BackendError, match="--model"):
        await VLLMBackend(Settings(), None).start()
