from __future__ import annotations

import pytest

from kuwa import keys
from kuwa.executors import access_code_for, default_backend, load_backend
from kuwa.executors.openai_backend import OpenAIBackend


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b-instruct"),
        ("/models/Llama 3 8B/", "llama-3-8b"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("///", "model"),
    ],
)
def test_access_code_is_derived_from_the_model(model: str, code: str) -> None:
    assert access_code_for(model) == code
    assert keys.valid_access_code(access_code_for(model))


def test_default_backend_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_backend(None) == ("debug", "no --model given: using the debug backend")
    name, reason = default_backend("org/model")
    assert name in {"vllm", "transformers"}
    assert reason.endswith(f"using the {name} backend")


def test_openai_backend_is_an_entry_point() -> None:
    assert load_backend("openai") is OpenAIBackend
