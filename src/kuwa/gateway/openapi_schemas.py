"""The OpenAPI document's schemas and examples for the chat APIs (see :mod:`.openapi`).

Field names come from the code where the code has them: the generation parameters from
:class:`kuwa.schemas.GenerationParams` (a new parameter without a documented schema here fails
at build time), roles, aliases and the stop limit from :mod:`kuwa.schemas.chat`, usage from
:class:`kuwa.schemas.Usage`, the error body from :func:`kuwa.errors.error_body`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson

from kuwa.errors import error_body
from kuwa.schemas import GenerationParams, Usage
from kuwa.schemas.chat import MAX_FILES, MAX_STOP, ROLE_ALIASES, ROLES

Schema = dict[str, Any]
JSON = "application/json"
SSE = "text/event-stream"
NULL: Schema = {"type": "null"}
FINISH_REASONS = ("stop", "length", "cancelled")
JOB_ID = "chatcmpl-8fbd3a3c2b4e4f0e9d1c0b7a6e5d4c3b"
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


def obj(
    props: dict[str, Schema],
    required: list[str] | None = None,
    *,
    extra: bool = False,
    description: str | None = None,
) -> Schema:
    """An object schema; every property required unless ``required`` says otherwise, and
    no other properties unless ``extra``."""
    out: Schema = {"type": "object", "properties": props}
    out["required"] = list(props) if required is None else required
    if not extra:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, NULL]}


def _number(lo: float, hi: float, doc: str) -> Schema:
    return {"type": ["number", "null"], "minimum": lo, "maximum": hi, "description": doc}


def _count(doc: str) -> Schema:
    return {"type": ["integer", "null"], "minimum": 1, "description": doc}


# One schema per GenerationParams field (the request's name for it), plus the request fields
# that are read but are not parameters of the generation.
PARAMETERS: dict[str, Schema] = {
    "temperature": _number(0, 2, "Sampling temperature, passed to the backend."),
    "top_p": _number(0, 1, "Nucleus sampling, passed to the backend."),
    "max_tokens": _count(
        "Most tokens to generate (`max_completion_tokens` wins); the answer then ends with "
        '`finish_reason: "length"`.'
    ),
    "stop": {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": MAX_STOP},
            NULL,
        ],
        "description": "The answer stops before the first match.",
    },
    "seed": {"type": ["integer", "null"], "description": "Passed to the backend."},
    "ignore_eos": {
        "type": "boolean",
        "description": "vLLM extension: keep generating past end-of-sequence (benchmarks).",
    },
    "top_k": {
        "anyOf": [{"type": "integer", "minimum": 1}, {"const": -1}, NULL],
        "description": "vLLM and transformers backends; -1: no limit.",
    },
    "presence_penalty": _number(-2, 2, "vLLM and openai backends."),
    "frequency_penalty": _number(-2, 2, "vLLM and openai backends."),
    "repetition_penalty": _number(0.01, 10, "vLLM and transformers backends."),
}
REQUEST_FIELDS: dict[str, Schema] = {
    "max_completion_tokens": _count("Most tokens to generate; wins over `max_tokens`."),
    "n": {"enum": [1, None], "description": "Only 1 is supported."},
    "user": {"type": ["string", "null"], "description": "Accepted, not used yet."},
}


CITATIONS: Schema = {
    "type": "array",
    "items": {"$ref": "#/components/schemas/Citation"},
    "description": "With files: the passages the model was given, numbered as it cites them.",
}


def _parameters() -> dict[str, Schema]:
    """Every generation parameter, in the dataclass's order (KeyError: one is undocumented)."""
    return {f.name: PARAMETERS[f.name] for f in dataclasses.fields(GenerationParams)}


def chat_request(dialect: str) -> Schema:
    openai = dialect == "openai"
    content: Schema = {"type": "string"}
    if openai:
        content = {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"anyOf": [ref("TextPart"), ref("FilePart")]}},
            ],
            "description": "A string, or text parts (joined) and file parts (documents to "
            "answer from).",
        }
    roles = sorted(ROLES | ROLE_ALIASES.keys())
    aliases = ", ".join(f"`{a}` is read as `{r}`" for a, r in ROLE_ALIASES.items())
    message = obj(
        {"role": {"enum": roles, "description": aliases}, "content": content},
        extra=True,
        description="A message of the conversation, oldest first.",
    )
    props: dict[str, Schema] = {
        "model": {"type": "string", "minLength": 1, "description": "The model's access code."},
        "messages": {"type": "array", "minItems": 1, "items": message},
        "stream": {
            "type": ["boolean", "null"],
            "default": not openai,
            "description": "Answer as server-sent events.",
        },
    }
    props["files"] = {
        "type": ["array", "null"],
        "items": {"type": "string", "minLength": 1},
        "maxItems": MAX_FILES,
        "description": "Kuwa: ids of files (POST /v1/files) to answer from; their best "
        "passages for the last user message go into the prompt.",
    }
    if openai:
        props["stream_options"] = {
            "type": ["object", "null"],
            "properties": {
                "include_usage": {
                    "type": "boolean",
                    "description": "One more chunk with `choices: []` and the usage.",
                }
            },
        }
    return obj(
        {**props, **_parameters(), **REQUEST_FIELDS},
        ["model", "messages"],
        extra=True,
        description="Unknown fields (`tools`, `response_format`, …) are ignored.",
    )


def schemas() -> dict[str, Schema]:
    usage: dict[str, Schema] = {
        name: {"type": "integer", "minimum": 0} for name in Usage().to_openai()
    }
    error: dict[str, Schema] = {name: {"type": "string"} for name in error_body("")["error"]}
    error["param"] = {
        "type": ["string", "null"],
        "description": 'The field at fault, e.g. "messages[2].content".',
    }
    error["code"] = {"type": ["string", "null"], "description": "See the error codes below."}
    common = {
        "id": ref("JobId"),
        "created": {"type": "integer", "description": "Unix time the job was created."},
        "model": {"type": "string", "description": "The access code."},
    }
    return {
        "JobId": {"type": "string", "pattern": "^chatcmpl-[0-9a-f]+$", "example": JOB_ID},
        "FinishReason": {"enum": list(FINISH_REASONS)},
        "TextPart": obj({"type": {"const": "text"}, "text": {"type": "string"}}, extra=True),
        "FilePart": obj(
            {
                "type": {"const": "file"},
                "file": obj({"file_id": {"type": "string", "minLength": 1}}, extra=True),
            },
            extra=True,
            description="A document to answer from (an id from POST /v1/files).",
        ),
        "ChatCompletionRequest": chat_request("openai"),
        "KuwaChatRequest": chat_request("kuwa"),
        "Usage": obj(usage),
        "ErrorResponse": obj(
            {"error": obj(error)}, description="Kuwa's one error shape (kuwa.errors.error_body)."
        ),
        "ChatCompletion": obj(
            {
                **common,
                "object": {"const": "chat.completion"},
                "choices": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": obj(
                        {
                            "index": {"const": 0},
                            "message": obj(
                                {
                                    "role": {"const": "assistant"},
                                    "content": {"type": "string"},
                                    "refusal": NULL,
                                }
                            ),
                            "logprobs": NULL,
                            "finish_reason": ref("FinishReason"),
                        }
                    ),
                },
                "usage": ref("Usage"),
                "citations": CITATIONS,
            },
            ["id", "object", "created", "model", "choices", "usage"],
        ),
        "ChatCompletionChunk": obj(
            {
                **common,
                "object": {"const": "chat.completion.chunk"},
                "choices": {
                    "type": "array",
                    "maxItems": 1,
                    "description": "Empty only in the usage chunk.",
                    "items": obj(
                        {
                            "index": {"const": 0},
                            "delta": obj(
                                {"role": {"const": "assistant"}, "content": {"type": "string"}},
                                [],
                            ),
                            "logprobs": NULL,
                            "finish_reason": nullable(ref("FinishReason")),
                        }
                    ),
                },
                "usage": {
                    **nullable(ref("Usage")),
                    "description": "Only with `stream_options.include_usage`: null on every "
                    "chunk but the last.",
                },
                "citations": {**CITATIONS, "description": "On the first chunk only."},
            },
            ["id", "object", "created", "model", "choices"],
        ),
        "KuwaStreamEvent": obj(
            {
                "choices": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": obj(
                        {
                            "delta": obj(
                                {
                                    "content": {
                                        "type": "string",
                                        "minLength": 1,
                                        "maxLength": 1,
                                        "description": "Exactly one character.",
                                    },
                                    "role": {"const": "assistant"},
                                }
                            )
                        }
                    ),
                },
                **common,
                "object": {"const": "chat.completion"},
                "usage": {"type": "array", "maxItems": 0, "description": "Always `[]`."},
                "citations": {
                    **CITATIONS,
                    "description": "With files: on the first event only (Kuwa's addition; "
                    "the guide's clients never send files, and their events are unchanged).",
                },
            },
            ["choices", "created", "id", "model", "object", "usage"],
            description="One event of a v1.0 stream, as the Multi-Chat 1.0 guide shows it.",
        ),
        "KuwaChatCompletion": obj(
            {
                "choices": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": obj(
                        {
                            "index": {"const": 0},
                            "message": obj(
                                {"content": {"type": "string"}, "role": {"const": "assistant"}}
                            ),
                            "finish_reason": ref("FinishReason"),
                        }
                    ),
                },
                **common,
                "object": {"const": "chat.completion"},
                "usage": ref("Usage"),
                "citations": CITATIONS,
            },
            ["choices", "created", "id", "model", "object", "usage"],
        ),
        "Model": obj(
            {
                "id": {"type": "string", "description": "The access code: use it as `model`."},
                "object": {"const": "model"},
                "created": {"type": "integer", "description": "The last heartbeat seen."},
                "owned_by": {"const": "kuwa"},
                "name": {"type": "string", "description": "The catalog's name for it."},
            }
        ),
        "ModelList": obj(
            {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}}
        ),
        "Health": obj(
            {
                "status": {"const": "ok"},
                "streams": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Open job streams in this gateway process.",
                },
            }
        ),
    }


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
    return {
        "schema": {"type": "string", "description": "Server-sent events; see x-sse."},
        "example": "".join(events) + terminator + "\n\n",
        "x-sse": {
            "data": data,
            "terminator": terminator,
            "event_ids": event_ids,
            "examples": examples,
        },
    }
