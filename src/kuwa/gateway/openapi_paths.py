"""The public API's operations in the OpenAPI document (see :mod:`.openapi`), written out by
hand: the chat completions of both APIs, models, following a job, health, metrics and the
document itself (``/v1/embeddings`` and ``/v1/files`` have modules of their own). Their
schemas are references to the wire structs' components; :func:`.openapi.build_document`
checks that each names what its route declares."""

from __future__ import annotations

from typing import Any

from kuwa.gateway.openapi_schemas import (
    EXAMPLES,
    JSON,
    SSE,
    errors,
    example_chunks,
    json_body,
    ref,
    sse_body,
)

Schema = dict[str, Any]
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
UPSTREAM_KEY = {
    "name": "X-Kuwa-Upstream-Key",
    "in": "header",
    "required": False,
    "description": "Your own provider key for a model served through the `openai` backend. It "
    "travels only inside the queued job, is never logged or stored; without it the key saved "
    "on your profile is used.",
    "schema": {"type": "string"},
}
CHAT_ERRORS = errors(400, 401, 403, 404, 413, 429, 500, 503)


def api_paths() -> dict[str, Schema]:
    chunk_examples = example_chunks()
    return {
        "/v1/chat/completions": {
            "post": {
                "tags": ["openai"],
                "operationId": "createChatCompletion",
                "summary": "Chat with one model (OpenAI chat completions)",
                "description": "`stream` defaults to false. A streamed answer is "
                "`chat.completion.chunk` events: the role with empty content, content deltas "
                "(one may hold several tokens), an empty delta with `finish_reason`, with "
                "`stream_options.include_usage` one more chunk with `choices: []` and the "
                "usage, then `data: [DONE]`. Each chunk's events are preceded by `id: N` (the "
                "chunk's number; the SDKs ignore it): a client whose gateway went away resumes "
                "with `Last-Event-ID: N` on `GET /v1/jobs/{job_id}/events`, where `job_id` is "
                "the chunks' `id`. Closing the connection cancels the job.",
                "security": BEARER,
                "parameters": [UPSTREAM_KEY],
                "requestBody": json_body("ChatCompletionRequest", "openai"),
                "responses": {
                    "200": {
                        "description": "The answer: JSON, or an event stream with "
                        '`"stream": true`.',
                        "content": {
                            JSON: {
                                "schema": ref("ChatCompletion"),
                                "example": _example("ChatCompletion"),
                            },
                            SSE: sse_body(
                                {"oneOf": [ref("ChatCompletionChunk"), ref("ErrorResponse")]},
                                "data: [DONE]",
                                chunk_examples,
                                event_ids=True,
                            ),
                        },
                    },
                    **CHAT_ERRORS,
                },
            }
        },
        "/v1/models": {
            "get": {
                "tags": ["openai"],
                "operationId": "listModels",
                "summary": "The models you may use now",
                "description": "The enabled access codes with at least one live, non-draining "
                "executor that you may use, in catalog order. `created` is the time of the "
                "last heartbeat seen for the code.",
                "security": BEARER,
                "responses": {
                    "200": {
                        "description": "The models.",
                        "content": {
                            JSON: {"schema": ref("ModelList"), "example": _example("ModelList")}
                        },
                    },
                    **errors(401, 403, 500, 503),
                },
            }
        },
        "/v1/jobs/{job_id}/events": {
            "get": {
                "tags": ["jobs"],
                "operationId": "followJob",
                "summary": "Follow or resume one of your jobs",
                "description": "Replays the answer so far from the job's transcript, then "
                "continues live, as `/v1` chunk events each preceded by `id: N` (the chunk's "
                "number), ending with `data: [DONE]`. Following never cancels the job. "
                "Unknown, expired and other users' jobs are all 404.",
                "security": BEARER,
                "parameters": [
                    {
                        "name": "job_id",
                        "in": "path",
                        "required": True,
                        "description": "The job's id: the `id` of its chunks.",
                        "schema": {"type": "string", "pattern": "^chatcmpl-[0-9a-f]+$"},
                        "example": "chatcmpl-8fbd3a3c2b4e4f0e9d1c0b7a6e5d4c3b",
                    },
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "Resume after this chunk (browsers' EventSource sends "
                        "it on reconnect).",
                        "schema": {"type": "integer", "minimum": -1},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "Resume after this chunk (when no Last-Event-ID).",
                        "schema": {"type": "integer", "minimum": -1},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The job's events.",
                        "content": {
                            SSE: sse_body(
                                {"oneOf": [ref("ChatCompletionChunk"), ref("ErrorResponse")]},
                                "data: [DONE]",
                                chunk_examples,
                                event_ids=True,
                            )
                        },
                    },
                    **errors(400, 401, 403, 404, 503),
                },
            }
        },
        "/v1.0/chat/completions": {
            "post": {
                "tags": ["kuwa"],
                "operationId": "createKuwaChatCompletion",
                "summary": "Chat with one model (Kuwa Multi-Chat 1.0)",
                "description": "`stream` defaults to **true**: one character per event, JSON "
                "ASCII-escaped, `usage` always `[]`, no finish event, and the stream ends "
                'with `event: close`. With `"stream": false` one JSON object.',
                "security": BEARER,
                "parameters": [UPSTREAM_KEY],
                "requestBody": json_body("KuwaChatRequest", "kuwa"),
                "responses": {
                    "200": {
                        "description": "The answer: an event stream, or JSON with "
                        '`"stream": false`.',
                        "content": {
                            SSE: sse_body(
                                {"oneOf": [ref("KuwaStreamEvent"), ref("ErrorResponse")]},
                                "event: close",
                                [_example("KuwaStreamEvent")],
                            ),
                            JSON: {
                                "schema": ref("KuwaChatCompletion"),
                                "example": _example("KuwaChatCompletion"),
                            },
                        },
                    },
                    **CHAT_ERRORS,
                },
            }
        },
        "/healthz": {
            "get": {
                "tags": ["operations"],
                "operationId": "health",
                "summary": "Is this gateway up (and does Redis answer)?",
                "description": "No token. Does not check the database or executors.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Redis answered PING.",
                        "content": {
                            JSON: {
                                "schema": ref("Health"),
                                "example": {"status": "ok", "streams": 3},
                            }
                        },
                    },
                    **errors(503),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "operationId": "metrics",
                "summary": "Prometheus metrics for the whole deployment",
                "description": "Queues, executors, latency and throughput per access code, "
                "read from Redis at scrape time. Open unless `KUWA_METRICS_TOKEN` is set.",
                "security": [{}, {"metricsToken": []}],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {
                            "text/plain": {
                                "schema": {"type": "string"},
                                "example": 'kuwa_queue_depth{model="echo"} 0.0\n',
                            }
                        },
                    },
                    **errors(401, 503),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["operations"],
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document of the API.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def _example(name: str) -> Any:
    return EXAMPLES[name]
