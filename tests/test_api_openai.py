"""The OpenAI-style ``/v1`` API through the official ``openai`` SDK against real processes.

Only the debug backend's behaviour is observable, so parameters are shown to reach the
executor through their effects: ``max_tokens`` truncates, ``stop`` cuts the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from kuwa.executors.debug import tokenize
from tests.stack import Stack, wait_until

PROMPT = "Hello there, Kuwa! 你好 🌍"
FULLWIDTH_COMMA = "\uff0c"


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=stack.base_url + "/v1", api_key=stack.token, max_retries=0, timeout=15
    ) as c:
        yield c


@pytest.fixture
async def aclient(stack: Stack) -> Any:
    async with openai.AsyncOpenAI(
        base_url=stack.base_url + "/v1", api_key=stack.token, max_retries=0, timeout=15
    ) as c:
        yield c


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def expected_usage(messages: list[dict[str, str]], answer: str) -> tuple[int, int]:
    return sum(len(tokenize(m["content"])) for m in messages), len(tokenize(answer))


def check_chunks(chunks: list[Any], answer: str, finish: str = "stop") -> None:
    """Role chunk first, content deltas join to ``answer``, one finish chunk at the end."""
    assert chunks, "no chunks"
    ids = {c.id for c in chunks}
    assert len(ids) == 1
    assert next(iter(ids)).startswith("chatcmpl-")
    for c in chunks:
        assert c.object == "chat.completion.chunk"
        assert c.model == chunks[0].model
    first = chunks[0].choices[0]
    assert first.delta.role == "assistant"
    assert first.delta.content in ("", None)
    assert first.finish_reason is None
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[-1].choices[0].finish_reason == finish
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == answer


def test_sync_non_stream(client: openai.OpenAI) -> None:
    messages = user(PROMPT)
    r = client.chat.completions.create(model="echo", messages=messages)  # type: ignore[arg-type]
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == "echo"
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == PROMPT
    assert choice.finish_reason == "stop"
    assert r.usage is not None
    prompt_tokens, completion_tokens = expected_usage(messages, PROMPT)
    assert r.usage.prompt_tokens == prompt_tokens
    assert r.usage.completion_tokens == completion_tokens
    assert r.usage.total_tokens == prompt_tokens + completion_tokens


def test_sync_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo",
        messages=user(PROMPT),  # type: ignore[arg-type]
        stream=True,
    )
    chunks = list(stream)
    check_chunks(chunks, PROMPT)
    assert all(c.usage is None for c in chunks)


def test_stream_include_usage(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You are a parrot."},
        {"role": "user", "content": PROMPT},
    ]
    stream = client.chat.completions.create(
        model="echo",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    prompt_tokens, completion_tokens = expected_usage(messages, PROMPT)
    assert last.usage.prompt_tokens == prompt_tokens
    assert last.usage.completion_tokens == completion_tokens
    assert last.usage.total_tokens == prompt_tokens + completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    check_chunks(chunks, PROMPT)


@pytest.mark.anyio
async def test_async_non_stream(aclient: openai.AsyncOpenAI) -> None:
    r = await aclient.chat.completions.create(
        model="reverse",
        messages=user(PROMPT),  # type: ignore[arg-type]
    )
    assert r.choices[0].message.content == PROMPT[::-1]
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "reverse"


@pytest.mark.anyio
async def test_async_stream(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="echo",
        messages=user("async 你好"),  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    check_chunks(chunks, "async 你好")
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(tokenize("async 你好"))


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("stream", [False, True])
def test_token_limit_gives_length(client: openai.OpenAI, field: str, stream: bool) -> None:
    prompt = "one two three four five"
    kwargs: dict[str, Any] = {field: 2}
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="echo",
                messages=user(prompt),  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                **kwargs,
            )
        )
        check_chunks(chunks, "one two", finish="length")
        usage = chunks[-1].usage
    else:
        r = client.chat.completions.create(
            model="echo",
            messages=user(prompt),  # type: ignore[arg-type]
            **kwargs,
        )
        assert r.choices[0].message.content == "one two"
        assert r.choices[0].finish_reason == "length"
        usage = r.usage
    assert usage is not None
    assert usage.completion_tokens == 2
    assert usage.prompt_tokens == 5


def test_max_completion_tokens_wins_over_max_tokens(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="echo",
        messages=user("a b c d e"),  # type: ignore[arg-type]
        max_tokens=4,
        max_completion_tokens=1,
    )
    assert r.choices[0].message.content == "a"
    assert r.choices[0].finish_reason == "length"


def test_limit_at_answer_length_is_stop(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="echo",
        messages=user("a b c"),  # type: ignore[arg-type]
        max_tokens=3,
    )
    assert r.choices[0].message.content == "a b c"
    assert r.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("stop", "answer"),
    [
        ([" three"], "one two"),
        (["five", "three", "four"], "one two "),
        (["five", " two three"], "one"),
        (["ee f"], "one two thr"),
        ("one", ""),
        ([FULLWIDTH_COMMA], "你好"),
    ],
)
def test_stop_truncates(client: openai.OpenAI, stop: Any, answer: str) -> None:
    prompt = "one two three four"
    if FULLWIDTH_COMMA in stop:
        prompt = f"你好{FULLWIDTH_COMMA}{prompt}"
    r = client.chat.completions.create(
        model="echo",
        messages=user(prompt),  # type: ignore[arg-type]
        stop=stop,
    )
    assert r.choices[0].message.content == answer
    assert r.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(
            model="echo",
            messages=user(prompt),  # type: ignore[arg-type]
            stop=stop,
            stream=True,
        )
    )
    check_chunks(chunks, answer)


def test_sampling_params_accepted(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="echo",
        messages=user(PROMPT),  # type: ignore[arg-type]
        temperature=0.7,
        top_p=0.9,
        seed=42,
        n=1,
        user="someone",
        presence_penalty=0.5,
        frequency_penalty=0.1,
    )
    assert r.choices[0].message.content == PROMPT


def test_unknown_fields_ignored(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="echo",
        messages=user(PROMPT),  # type: ignore[arg-type]
        extra_body={"no_such_field": {"nested": [1, 2]}, "top_k": 5, "repetition_penalty": 1.1},
    )
    assert r.choices[0].message.content == PROMPT


def test_multi_round_history(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
    ]
    r = client.chat.completions.create(model="echo", messages=messages)  # type: ignore[arg-type]
    # The debug backend answers the last *user* message, whatever follows it.
    assert r.choices[0].message.content == "second question"
    assert r.usage is not None
    assert r.usage.prompt_tokens == sum(len(tokenize(m["content"])) for m in messages)


def test_content_parts_and_developer_role(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="echo",
        messages=[  # type: ignore[list-item]
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "part one, "},
                    {"type": "text", "text": "two"},
                ],
            },
        ],
    )
    assert r.choices[0].message.content == "part one, two"


def test_models_list_shows_live_executors_only(stack: Stack, client: openai.OpenAI) -> None:
    gone = stack.executor("gone-soon", concurrency=1)
    ids = {m.id for m in client.models.list()}
    assert {"echo", "slow", "reverse", "gone-soon"} <= ids
    for m in client.models.list():
        assert m.object == "model"
        assert m.owned_by == "kuwa"
        assert isinstance(m.created, int)
        assert m.created > 0
    assert gone.stop() == 0

    def gone_from_list() -> bool:
        return "gone-soon" not in {m.id for m in client.models.list()}

    wait_until(gone_from_list, 5, "the stopped executor's model to leave /v1/models")
    ids = {m.id for m in client.models.list()}
    assert {"echo", "slow", "reverse"} <= ids
    assert "gone-soon" not in ids
