"""PromptBuilder on a real tokenizer (tests/tinymodel.py's): templates, trimming, refusals.

The same builder feeds the vllm and transformers backends; tests/test_vllm_engine.py checks
what it builds against the real engine's token counts, through the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kuwa.executors.base import BackendError, PromptError, PromptTooLongError
from kuwa.executors.prompt import PromptBuilder
from kuwa.schemas import Message
from tests import tinymodel


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("tokenizer")
    return tinymodel.save_tokenizer(folder)


def text(tokenizer: Any, ids: list[int]) -> str:
    return str(tokenizer.decode(ids))


def test_the_tokenizers_chat_template_with_the_generation_prompt(tokenizer: Any) -> None:
    builder = PromptBuilder(tokenizer, max_len=200)
    messages = [Message("system", "Be kind."), Message("user", "Hello there!")]
    ids = builder.encode(messages)
    assert text(tokenizer, ids) == "<|system|>Be kind.\n<|user|>Hello there!\n<|assistant|>"
    assert builder.count(messages) == len(ids)


def test_long_history_is_trimmed_oldest_first(tokenizer: Any) -> None:
    messages = [
        Message("system", "Be kind."),
        Message("user", "~" * 40),
        Message("assistant", "~" * 40),
        Message("user", "last"),
    ]
    builder = PromptBuilder(tokenizer, max_len=60)
    assert text(tokenizer, builder.encode(messages)) == (
        "<|system|>Be kind.\n<|user|>last\n<|assistant|>"
    )
    roomy = PromptBuilder(tokenizer, max_len=builder.count(messages[:1] + messages[2:]) + 1)
    assert text(tokenizer, roomy.encode(messages)).startswith("<|system|>Be kind.\n<|assistant|>~")


def test_a_prompt_that_cannot_fit_is_a_clear_error(tokenizer: Any) -> None:
    builder = PromptBuilder(tokenizer, max_len=20)
    with pytest.raises(PromptTooLongError, match="accepts at most 19") as raised:
        builder.encode([Message("user", "~" * 50)])
    assert raised.value.code == "context_length_exceeded"
    with pytest.raises(PromptTooLongError):  # a system prompt is never dropped
        builder.encode([Message("system", "~" * 50), Message("user", "hi")])


def test_a_modelfile_template_replaces_the_tokenizers(tokenizer: Any) -> None:
    builder = PromptBuilder(tokenizer, max_len=100)
    template = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    assert text(tokenizer, builder.encode([Message("user", "hi")], template)) == "[hi]"
    assert text(tokenizer, builder.encode([Message("user", "hi")])) == "<|user|>hi\n<|assistant|>"


def test_a_template_that_refuses_the_messages_is_the_requests_fault(tokenizer: Any) -> None:
    template = (
        "{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System messages are not supported.') }}{% endif %}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    builder = PromptBuilder(tokenizer, max_len=100)
    with pytest.raises(PromptError, match="refused the messages: System messages") as raised:
        builder.encode([Message("system", "x"), Message("user", "hi")], template)
    assert raised.value.code == "invalid_request"


def test_a_template_that_is_not_jinja_is_the_models_fault(tokenizer: Any) -> None:
    builder = PromptBuilder(tokenizer, max_len=100)
    with pytest.raises(BackendError, match="TEMPLATE is not a valid Jinja template") as raised:
        builder.encode([Message("user", "hi")], "{{ .System }} {{ .Prompt }}")  # Ollama's
    assert not isinstance(raised.value, PromptError)
    assert raised.value.code == "model_error"
