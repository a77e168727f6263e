"""The OpenAPI document's building blocks (see :mod:`.openapi`): component schemas written
by msgspec from the wire structs (:mod:`kuwa.schemas`), references to them and to the error
responses, and the examples of the chat APIs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import msgspec
import orjson

from kuwa.schemas.api import JOB_ID

Schema = dict[str, Any]
JSON = "application/json"
SSE = "text/event-stream"
CREATED = 1795671826


STATUS_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "ServerError",
    503: "ServiceUnavailable",
}


def errors(*statuses: int) -> dict[str, Schema]:
    """References to the error responses of these statuses."""
    return {str(s): {"$ref": f"#/components/responses/{STATUS_NAMES[s]}"} for s in statuses}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def struct_components(types: Iterable[Any]) -> tuple[dict[Any, Schema], dict[str, Schema]]:
    """The JSON Schema of each type (``#/components/schemas/…`` refs for structs) and the
    components they refer to, written by msgspec from the structs themselves."""
    found = list(dict.fromkeys(types))
    shown, components = msgspec.json.schema_components(
        found, ref_template="#/components/schemas/{name}"
    )
    for component in components.values():
        component.pop("title", None)
    return dict(zip(found, shown, strict=True)), components


def _chunk(delta: Schema, finish: str | None = None, **extra: Any) -> Schema:
    return {
        "id": JOB_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "echo",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def example_chunks() -> list[Schema]:
    usage = {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    last = _chunk({}, usage=usage)
    last["choices"] = []
    return [
        _chunk({"role": "assistant", "content": ""}, usage=None),
        _chunk({"content": "hi there"}, usage=None),
        _chunk({}, "stop", usage=None),
        last,
    ]


EXAMPLES: dict[str, Any] = {
    "ChatCompletion": {
        "id": JOB_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": "echo",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi there", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    },
    "KuwaStreamEvent": {
        "choices": [{"delta": {"content": "你", "role": "assistant"}}],
        "created": CREATED,
        "id": JOB_ID,
        "model": "echo",
        "object": "chat.completion",
        "usage": [],
    },
    "KuwaChatCompletion": {
        "choices": [
            {"index": 0, "message": {"content": "hi", "role": "assistant"}, "finish_reason": "stop"}
        ],
        "created": CREATED,
        "id": JOB_ID,
        "model": "echo",
        "object": "chat.completion",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    },
    "ModelList": {
        "object": "list",
        "data": [
            {
                "id": "echo",
                "object": "model",
                "created": CREATED,
                "owned_by": "kuwa",
                "name": "Echo",
            }
        ],
    },
}


def json_body(schema: str, dialect: str) -> Schema:
    """A chat request body with its named examples."""
    hello = [{"role": "user", "content": "Hello!"}]
    examples: dict[str, Schema] = {
        "simple": {"summary": "One prompt", "value": {"model": "echo", "messages": hello}},
        "history": {
            "summary": "A conversation (history first)",
            "value": {
                "model": "echo",
                "messages": [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "你好"},
                    {"role": "assistant", "content": "你好\uff0c我是一個機器人"},
                    {"role": "user", "content": "嗨"},
                ],
            },
        },
        "parameters": {
            "summary": "Generation parameters",
            "value": {
                "model": "echo",
                "messages": hello,
                "temperature": 0.2,
                "max_tokens": 256,
                "stop": ["\n\n"],
            },
        },
    }
    if dialect == "openai":
        examples["stream"] = {
            "summary": "Streamed, with usage",
            "value": {
                "model": "echo",
                "messages": hello,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        }
    else:
        examples["json"] = {
            "summary": "One JSON answer",
            "value": {"model": "echo", "messages": hello, "stream": False},
        }
    return {"required": True, "content": {JSON: {"schema": ref(schema), "examples": examples}}}


def sse_body(
    data: Schema, terminator: str, examples: list[Any], *, event_ids: bool = False
) -> Schema:
    """A ``text/event-stream`` media type: raw text, with its events in ``x-sse``."""
    ascii_json = terminator == "event: close"  # v1.0 escapes like the original PHP server
    events = []
    for seq, payload in enumerate(examples):
        raw = json.dumps(payload, separators=(",", ":")) if ascii_json else orjson.dumps(payload)
        text = raw if isinstance(raw, str) else raw.decode()
        chunk_id = event_ids and 0 < seq < len(examples) - 1  # not the role nor usage event
        events.append((f"id: {seq - 1}\n" if chunk_id else "") + f"data: {text}\n\n")
    last = terminator.partition(": ")
    names = ["message", last[2]] if last[0] == "event" else ["message"]
    done = last[2] if last[0] == "data" else None
    return {
        "schema": sse_event(names, data, done=done),
        "x-sse": {
            "data": data,
            "terminator": terminator,
            "event_ids": event_ids,
            "examples": examples,
            "text": "".join(events) + terminator + "\n\n",
        },
    }


def sse_event(
    names: Iterable[str], data: Schema | None = None, *, done: str | None = None
) -> Schema:
    """One event of a ``text/event-stream``, as a client's SSE parser hands it over (what
    OpenAPI 3.2 calls ``itemSchema``; in 3.1 tools read a stream's ``schema`` so): its name
    (``message`` when the stream names none), its ``data`` (JSON matching ``data``, or the
    ``done`` marker), the last ``id:`` seen and the ``retry:`` hint."""
    text: Schema = {"type": "string"}
    if data is not None:
        text = {"type": "string", "contentMediaType": JSON, "contentSchema": data}
    if done is not None:
        text = {"anyOf": [{"const": done}, text]}
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"enum": list(dict.fromkeys(names))},
            "data": text,
            "id": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
        },
    }
