"""``GET /openapi.json``: the public HTTP API as an OpenAPI 3.1 document, built from code.

One source of truth: the request and response bodies are the structs the gateway decodes and
encodes, every error's status and type comes from :mod:`kuwa.errors`, and the error body
from :func:`kuwa.errors.error_body`. Tests check
the document against the OpenAPI 3.1 schema, against the app's routes (both ways), against the
request validator (bounds) and against live responses. Every schema is written by msgspec from
the wire structs of :mod:`kuwa.schemas`; the public API's operations are written out here
(and in :mod:`.openapi_files`), every other route's from its declaration
(:mod:`.openapi_routes`). The examples live in :mod:`.openapi_schemas`.

Server-sent events have no schema in OpenAPI 3.1, so each ``text/event-stream`` media type
carries an ``x-sse`` extension (like 3.2's ``itemSchema``): ``data`` is the schema of every
JSON ``data:`` payload, ``terminator`` the stream's last event, ``event_ids`` whether events
carry ``id:``, and ``events`` (named events) the schema of each event's data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa import __version__
from kuwa.errors import (
    AuthenticationError,
    BrokerError,
    ConflictError,
    ContentBlockedError,
    ContextLengthError,
    DocumentError,
    InvalidRequestError,
    JobFailedError,
    KuwaError,
    MethodNotAllowedError,
    ModelNotFoundError,
    ModelUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QueueFullError,
    QuotaExceededError,
    RateLimitError,
    WrongModelTypeError,
    error_body,
)
from kuwa.gateway.endpoint import Endpoint, declared, endpoint
from kuwa.gateway.openapi_embeddings import embedding_paths
from kuwa.gateway.openapi_files import file_paths
from kuwa.gateway.openapi_routes import declared_types, operation, path_of
from kuwa.gateway.openapi_schemas import (
    EXAMPLES,
    JSON,
    SSE,
    STATUS_NAMES,
    errors,
    example_chunks,
    json_body,
    ref,
    sse_body,
    struct_components,
)
from kuwa.schemas import api as wire
from kuwa.schemas.chat import ChatCompletionRequest, KuwaChatRequest

Schema = dict[str, Any]
METHOD_ORDER = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# The components every document has, whichever routes declare them.
COMPONENTS = (
    ChatCompletionRequest,
    KuwaChatRequest,
    wire.ErrorResponse,
    wire.ChatCompletion,
    wire.ChatCompletionChunk,
    wire.KuwaStreamEvent,
    wire.KuwaChatCompletion,
    wire.ModelList,
    wire.Health,
)


@dataclass(frozen=True, slots=True)
class ErrorCase:
    """One error a client of the API can get: status and type come from the error class."""

    error: type[KuwaError]
    code: str
    when: str
    message: str

    @property
    def status(self) -> int:
        return self.error.status

    @property
    def type(self) -> str:
        return self.error.type


ERRORS: tuple[ErrorCase, ...] = (
    ErrorCase(
        InvalidRequestError,
        "invalid_request",
        "empty body, not JSON, not an object, or a field fails validation (`param` names "
        "it); or the model's chat template refuses the messages (`param`: `messages`)",
        "'temperature' must be between 0 and 2.",
    ),
    ErrorCase(
        WrongModelTypeError,
        "wrong_model_type",
        "a chat sent to an embedding model, or embeddings asked of a chat model (`param`: `model`)",
        "This model makes embeddings (POST /v1/embeddings); it cannot chat.",
    ),
    ErrorCase(
        ContentBlockedError,
        "content_blocked",
        "a rule of the model's operator refused the prompt or stopped the answer",
        "This model does not answer questions about that.",
    ),
    ErrorCase(
        ContextLengthError,
        "context_length_exceeded",
        "the prompt does not fit the model's context even with the oldest turns dropped",
        "The prompt is 4100 tokens long; this model accepts at most 4095. Shorten the message.",
    ),
    ErrorCase(
        AuthenticationError,
        "invalid_api_key",
        "no `Authorization: Bearer`, or an unknown or revoked token",
        "Invalid API token.",
    ),
    ErrorCase(
        PermissionDeniedError,
        "api_not_allowed",
        "the user's group lacks `Room_read_access_to_api`",
        "Your account may not use the API (permission Room_read_access_to_api); "
        "ask an administrator.",
    ),
    ErrorCase(
        PermissionDeniedError,
        "model_not_allowed",
        "the user's group lacks `model:ACCESS_CODE` (`param`: `model`)",
        "You may not use the model 'gpt-4o'; ask an administrator for access.",
    ),
    ErrorCase(
        PermissionDeniedError,
        "ip_not_allowed",
        "the client address is outside `KUWA_IP_ALLOWLIST`",
        "Your address may not use this Kuwa server.",
    ),
    ErrorCase(
        PermissionDeniedError,
        "csrf_failed",
        "a POST of the web app's `/app` API without the `x-csrftoken` header matching the "
        "`kuwa_csrf` cookie",
        "This form has expired or came from another site. Go back, reload the page and try again.",
    ),
    ErrorCase(
        ModelNotFoundError,
        "model_not_found",
        "the access code is not in the catalog, or is disabled or deleted (`param`: `model`)",
        "The model 'nope' does not exist; GET /v1/models lists the models you can use.",
    ),
    ErrorCase(
        NotFoundError,
        "not_found",
        "no such path; or no such job of yours (`param`: `job_id`)",
        "There is no /v2/chat here.",
    ),
    ErrorCase(
        MethodNotAllowedError,
        "method_not_allowed",
        "wrong method for the path",
        "GET is not allowed on /v1/chat/completions.",
    ),
    ErrorCase(
        PayloadTooLargeError,
        "payload_too_large",
        "body over `KUWA_MAX_BODY_BYTES`",
        "The request body is larger than the limit of 2097152 bytes.",
    ),
    ErrorCase(
        DocumentError,
        "unreadable_document",
        "an uploaded or attached file Kuwa cannot read: unknown type, damaged, locked by a "
        "password, no text in it (`param`: `file` or `files`)",
        "The PDF is protected by a password; remove the password and upload it again.",
    ),
    ErrorCase(
        PayloadTooLargeError,
        "payload_too_large",
        "a file over `KUWA_FILES_MAX_BYTES` or `KUWA_FILES_MAX_PAGES`, or a zip bomb",
        "The file has 2500 pages; the limit is 2000.",
    ),
    ErrorCase(
        QuotaExceededError,
        "quota_exceeded",
        "the upload would take the user past `KUWA_FILES_USER_QUOTA_BYTES` or `_FILES`",
        "You keep 500 files, the most allowed; delete some first.",
    ),
    ErrorCase(
        ConflictError,
        "file_not_ready",
        "a file attached to a chat is still being indexed (`Retry-After`)",
        "file-5b0c0a8f3d1e4c2b9a7f6e5d is still being indexed (3 of 12 pages read); try "
        "again in a moment.",
    ),
    ErrorCase(
        RateLimitError,
        "user_job_limit",
        "the user already has their group's (or `KUWA_USER_MAX_JOBS`) answers running",
        "You already have 4 answers running; wait for one to finish.",
    ),
    ErrorCase(
        RateLimitError,
        "user_rate_limit",
        "the user sent `KUWA_USER_REQUESTS_PER_MINUTE` requests this minute",
        "You sent more than 60 requests this minute; wait a little and try again.",
    ),
    ErrorCase(
        QueueFullError,
        "queue_full",
        "`KUWA_MAX_QUEUE` jobs already wait for this access code",
        "Too many requests are waiting for 'echo'; try again shortly.",
    ),
    ErrorCase(
        JobFailedError,
        "model_error",
        "the backend failed (message from the backend)",
        "the debug backend was asked to fail (/debug error)",
    ),
    ErrorCase(
        JobFailedError,
        "executor_shutdown",
        "the executor stopped (SIGTERM) before finishing or starting the job",
        "The executor shut down before the answer was complete.",
    ),
    ErrorCase(
        JobFailedError,
        "executor_lost",
        "the executor died mid-answer, or the job was handed out `KUWA_MAX_DELIVERIES` times",
        "The executor running this request stopped answering.",
    ),
    ErrorCase(
        JobFailedError,
        "queue_timeout",
        "the job waited the model's queue timeout or `KUWA_QUEUE_TIMEOUT` without an executor",
        "'echo' was too busy: the request waited 300 s without starting; try again later.",
    ),
    ErrorCase(
        JobFailedError,
        "timeout",
        "no chunk for the model's idle timeout or `KUWA_STREAM_IDLE_TIMEOUT` seconds",
        "The model sent nothing for a long time; the request was stopped.",
    ),
    ErrorCase(
        JobFailedError,
        "stream_gap",
        "part of the answer was lost and not in the transcript",
        "Part of the answer was lost in transit and could not be recovered.",
    ),
    ErrorCase(
        JobFailedError,
        "publish_failed",
        "Redis failed (a restart, a Sentinel failover) while the answer was being written",
        "Redis failed (a restart or a failover) while this answer was being written; please retry.",
    ),
    ErrorCase(
        JobFailedError,
        "broker_restarted",
        "Redis lost the job (it restarted or was flushed) while it was followed",
        "Redis lost this request (it restarted or was flushed); please retry.",
    ),
    ErrorCase(
        KuwaError,
        "database_error",
        "the accounts database failed while checking the token",
        "database error while reading a token: OperationalError: database is locked",
    ),
    ErrorCase(
        KuwaError,
        "internal_error",
        "an unexpected error (logged by the gateway)",
        "Something went wrong inside Kuwa; it has been logged.",
    ),
    ErrorCase(
        ModelUnavailableError,
        "model_starting",
        "the access code's executor is still loading its model; `Retry-After: 5`",
        "The model 'echo' is starting (loading its weights); try again in a moment.",
    ),
    ErrorCase(
        ModelUnavailableError,
        "model_unavailable",
        "the access code is known but no executor is live",
        "The model 'echo' has no running executor right now; try again later or ask an "
        "administrator to start one.",
    ),
    ErrorCase(
        BrokerError,
        "broker_unavailable",
        "Redis cannot be reached",
        "Redis is unreachable: Connection refused.",
    ),
)

RETRY_AFTER = (409, 429, 503)

DESCRIPTION = """\
Kuwa serves two chat APIs over the same jobs and models, plus a small web-app API:

- **OpenAI** (`/v1`): `POST /v1/chat/completions`, `GET /v1/models`, `POST /v1/embeddings`
  and `/v1/files` as the official SDKs expect them, and `GET /v1/jobs/{job_id}/events` to
  follow or resume a job.
- **Kuwa Multi-Chat 1.0** (`/v1.0`): `POST /v1.0/chat/completions`, byte-compatible with the
  original guide and its clients (one character per event, the stream ends with
  `event: close`).

`model` is an **access code**: the name an executor serves. Every `/v1` and `/v1.0` call
needs a personal API token (`Authorization: Bearer …`, from your profile page or
`kuwa-cli user token`). Every error, as a response or inside a stream, has one shape:
`{"error": {"message", "type", "param", "code"}}`. An error found before a stream starts is a
plain HTTP response, also when `stream` is true; after it started it is a `data:` event
followed by the stream's terminator.

Streams are `text/event-stream`; the `x-sse` extension of each describes its events.
Examples for curl, Python, JavaScript and the OpenAI SDKs: `docs/api.md`.
"""


def error_response(status: int) -> Schema:
    """The component response for one status: its error codes, one example each."""
    cases = [c for c in ERRORS if c.status == status]
    if status == 409:
        cases.append(ErrorCase(ConflictError, "conflict", "the change clashes with data", ""))
    lines = "\n".join(f"- `{c.code}` ({c.type}): {c.when}" for c in cases)
    examples = {
        c.code: {"value": error_body(c.message or c.when, c.type, _param(c.code), c.code)}
        for c in cases
    }
    out: Schema = {
        "description": f"Error codes:\n\n{lines}",
        "content": {JSON: {"schema": ref("ErrorResponse"), "examples": examples}},
    }
    if status in RETRY_AFTER:
        out["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return out


def _param(code: str) -> str | None:
    return {
        "invalid_request": "temperature",
        "unreadable_document": "file",
        "quota_exceeded": "file",
        "file_not_ready": "files",
        "model_not_found": "model",
        "model_not_allowed": "model",
        "wrong_model_type": "model",
    }.get(code)


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


TAGS = [
    {"name": "openai", "description": "The OpenAI API, as its official SDKs use it."},
    {"name": "kuwa", "description": "Kuwa Multi-Chat 1.0's API, as its guide has it."},
    {"name": "jobs", "description": "Follow or resume a running job."},
    {"name": "operations", "description": "Health, metrics and this document."},
    {
        "name": "app",
        "description": "The chat web app's own JSON API (session cookie and CSRF header; not "
        "a public contract, see docs/web-app-api.md).",
    },
    {"name": "pages", "description": "The web app's pages (HTML)."},
    {"name": "account", "description": "Signing in and out, sign-up, your profile (HTML)."},
    {"name": "manage", "description": "Administration: users, groups, models, system (HTML)."},
    {"name": "dashboard", "description": "The operations dashboard (HTML and its JSON)."},
]
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "Your personal API token (profile page, or `kuwa-cli user token`).",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`KUWA_METRICS_TOKEN`, when the operator set one.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "kuwa_session",
        "description": "The web app's session (sign in at `/login`).",
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": "x-csrftoken",
        "description": "The value of the `kuwa_csrf` cookie, on every POST (a form sends it "
        "as its `csrftoken` field).",
    },
    "csrfCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "kuwa_csrf",
        "description": "The CSRF cookie a page sets; every POST sends it back beside the same "
        "value in `x-csrftoken` (double submit).",
    },
}


def _check_written(
    path: str, method: str, op: Schema, decl: Endpoint, refs: dict[Any, Schema]
) -> None:
    """A hand-written operation must name the schemas its route declares."""
    where = f"{method.upper()} {path}"
    body = op.get("requestBody", {}).get("content", {})
    for struct, media in ((decl.body, JSON), (decl.form, "multipart/form-data")):
        if struct is not None and body.get(media, {}).get("schema") != refs[struct]:
            raise ValueError(f"{where}: the document's request body is not {struct!r}")
    if decl.answer is not None and not isinstance(decl.answer, dict):
        answer = op["responses"][str(decl.status)]["content"][JSON]["schema"]
        if answer != refs[decl.answer]:
            raise ValueError(f"{where}: the document's answer is not {decl.answer!r}")


def build_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of an app's routes (``kuwa.gateway.app.routes()``).

    Every route must be declared (:func:`kuwa.gateway.endpoint.endpoint`): the public API's
    operations are written out here (and must name what their routes declare), every other
    one is written from its declaration; the schemas are the declared structs'."""
    written = {**api_paths(), **embedding_paths(), **file_paths()}
    found = []
    types: list[Any] = list(COMPONENTS)
    for route in routes:
        if not isinstance(route, Route):
            continue
        decl = declared(route.endpoint)
        if decl is None:
            raise ValueError(f"{route.path}: the route declares nothing (kuwa.gateway.endpoint)")
        found.append((route, decl))
        types += declared_types(decl)
    refs, components = struct_components(types)
    paths: dict[str, Schema] = {}
    taken = {op["operationId"] for item in written.values() for op in item.values()}
    for route, decl in found:
        path = path_of(route)
        for method in sorted((route.methods or set()) - {"HEAD"}, key=METHOD_ORDER.index):
            m = method.lower()
            op = written.get(path, {}).get(m)
            if op is not None:
                _check_written(path, m, op, decl, refs)
            else:
                op = operation(route, m, decl, refs, taken)
            paths.setdefault(path, {})[m] = op
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Kuwa API",
            "version": __version__,
            "summary": "Chat with many LLMs at once; serve them from your own GPUs.",
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": TAGS,
        "security": BEARER,
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": {name: error_response(s) for s, name in STATUS_NAMES.items()},
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


@endpoint("This document", media=JSON)
async def openapi_json(request: Request) -> Response:
    app = request.app
    cached = getattr(app.state, "openapi", None)
    if cached is None:
        cached = app.state.openapi = orjson.dumps(build_document(app.routes))
    return Response(cached, media_type=JSON)


__all__ = ["ERRORS", "ErrorCase", "build_document", "openapi_json"]
