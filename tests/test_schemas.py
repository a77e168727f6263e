from __future__ import annotations

from typing import Any

import pytest

from kuwa.executors.debug import tokenize
from kuwa.schemas import (
    Chunk,
    GenerationParams,
    Job,
    JobStatus,
    Message,
    SchemaError,
    Usage,
    parse_chat_request,
)
from kuwa.schemas.chat import decode_chat_request

USER = [{"role": "user", "content": "hi"}]


def test_minimal_requests_per_dialect() -> None:
    openai = parse_chat_request({"model": "m", "messages": USER}, "openai")
    kuwa = parse_chat_request({"model": "m", "messages": USER}, "kuwa")
    assert openai.stream is False
    assert kuwa.stream is True
    assert openai.messages == (Message("user", "hi"),)


def test_parameters_are_parsed_and_unknown_fields_ignored() -> None:
    req = parse_chat_request(
        {
            "model": "m",
            "messages": USER,
            "temperature": 0.5,
            "top_p": 1,
            "max_tokens": 5,
            "stop": "x",
            "seed": 7,
            "n": 1,
            "logit_bias": {},
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        "openai",
    )
    assert req.params == GenerationParams(0.5, 1.0, 5, ("x",), 7)
    assert req.include_usage


def test_max_completion_tokens_wins() -> None:
    req = parse_chat_request(
        {"model": "m", "messages": USER, "max_tokens": 5, "max_completion_tokens": 3}, "openai"
    )
    assert req.params.max_tokens == 3


def test_whole_numbers_written_as_floats_are_integers() -> None:
    """JSON Schema (and pydantic, behind vLLM's own server) counts ``5.0`` as an integer:
    found by schemathesis, which sends such numbers. ``5.5`` is still refused, naming the
    field; the strict pass stays the only one for a good body."""
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5.0}'
    assert decode_chat_request(raw, "openai").params.max_tokens == 5
    with pytest.raises(SchemaError) as caught:
        decode_chat_request(raw.replace(b"5.0", b"5.5"), "openai")
    assert caught.value.param == "max_tokens"
    with pytest.raises(SchemaError) as caught:  # another field's error is the one named
        decode_chat_request(raw.replace(b'"hi"', b"2.0"), "openai")
    assert caught.value.param == "messages[0].content"


def test_developer_role_and_text_parts_on_openai() -> None:
    req = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
        },
        "openai",
    )
    assert req.messages == (Message("system", "be brief"), Message("user", "ab"))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": USER}, "model"),
        ({"model": 3, "messages": USER}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": USER, "temperature": 3}, "temperature"),
        ({"model": "m", "messages": USER, "temperature": "hot"}, "temperature"),
        ({"model": "m", "messages": USER, "top_p": True}, "top_p"),
        ({"model": "m", "messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": USER, "max_tokens": 1.5}, "max_tokens"),
        ({"model": "m", "messages": USER, "stop": ["a"] * 5}, "stop"),
        ({"model": "m", "messages": USER, "stop": 3}, "stop"),
        ({"model": "m", "messages": USER, "seed": "x"}, "seed"),
        ({"model": "m", "messages": USER, "n": 2}, "n"),
        ({"model": "m", "messages": USER, "stream": "yes"}, "stream"),
    ],
)
def test_invalid_requests_name_the_field(body: Any, param: str | None) -> None:
    with pytest.raises(SchemaError) as info:
        parse_chat_request(body, "openai")
    assert info.value.param == param
    assert info.value.message[0].isupper() or info.value.message[0] == "'"


def test_seed_takes_64_bits_signed_or_not_from_the_raw_bytes() -> None:
    """msgspec decodes integers of any size; Job.encode (orjson) takes 64 bits: beyond is a
    400 naming the field, never a 500."""
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":%d}'
    for seed in (2**64 - 1, -(2**63)):
        request = decode_chat_request(body % seed, "openai")
        assert Job("j", "m", request.messages, request.params).encode()
    for seed in (2**64, -(2**63) - 1, 10**40):
        with pytest.raises(SchemaError, match="'seed' must be an integer") as info:
            decode_chat_request(body % seed, "openai")
        assert info.value.param == "seed"


def test_kuwa_dialect_requires_string_content() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}],
    }
    with pytest.raises(SchemaError):
        parse_chat_request(body, "kuwa")


def test_job_round_trip() -> None:
    job = Job(
        "chatcmpl-1",
        "m",
        (Message("user", "你好 🌍"),),
        GenerationParams(max_tokens=3, stop=("x",)),
        user_id=4,
        created=1.5,
    )
    assert Job.decode(job.encode()) == job


@pytest.mark.parametrize(
    "chunk",
    [
        Chunk(0, "abc"),
        Chunk(3, "", "stop", Usage(1, 2)),
        Chunk(5, "x", "error", None, {"message": "boom", "code": "model_error"}),
    ],
)
def test_chunk_round_trip(chunk: Chunk) -> None:
    assert Chunk.decode(chunk.encode()) == chunk


def test_job_status_values_are_lowercase_strings() -> None:
    assert [s.value for s in JobStatus] == ["queued", "running", "done", "failed", "cancelled"]
    assert JobStatus("done").finished and not JobStatus.RUNNING.finished


def test_debug_tokenizer_round_trips_text() -> None:
    text = "Hello, world!  你好🌍 it's\n ok"
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert tokens[:3] == ["Hello", ",", " world"]


def test_extended_sampling_parameters() -> None:
    req = parse_chat_request(
        {
            "model": "m",
            "messages": USER,
            "top_k": 40,
            "presence_penalty": 0.5,
            "frequency_penalty": -1,
            "repetition_penalty": 1.1,
        },
        "openai",
    )
    assert (req.params.top_k, req.params.presence_penalty) == (40, 0.5)
    assert (req.params.frequency_penalty, req.params.repetition_penalty) == (-1.0, 1.1)
    assert GenerationParams.from_dict(req.params.to_dict()) == req.params
    assert (
        parse_chat_request({"model": "m", "messages": USER, "top_k": -1}, "openai").params.top_k
        is None
    )
    for bad in ({"top_k": 0}, {"presence_penalty": 3}, {"repetition_penalty": 0}):
        with pytest.raises(SchemaError):
            parse_chat_request({"model": "m", "messages": USER} | bad, "openai")


def test_upstream_key_travels_with_the_job_but_is_not_shown() -> None:
    job = Job("chatcmpl-1", "m", (Message("user", "x"),), upstream_key="sk-secret")
    assert Job.decode(job.encode()).upstream_key == "sk-secret"
    assert "sk-secret" not in repr(job)
