"""``GET /openapi.json``: the public HTTP API as an OpenAPI 3.1 document, built from code.

One source of truth: the request and response bodies are the structs the gateway decodes and
encodes, every error's status and type comes from :mod:`kuwa.errors`, and the error body
from :func:`kuwa.errors.error_body` (the list of errors: :mod:`.openapi_errors`). Tests check
the document against the OpenAPI 3.1 schema, against the app's routes (both ways), against the
request validator (bounds) and against live responses. Every schema is written by msgspec from
the wire structs of :mod:`kuwa.schemas`; the public API's operations are written out by hand
(:mod:`.openapi_paths`, :mod:`.openapi_embeddings`, :mod:`.openapi_files`), every other
route's from its declaration (:mod:`.openapi_routes`). The examples live in
:mod:`.openapi_schemas`. This module puts the document together and serves it.

Server-sent events have no schema in OpenAPI 3.1, so each ``text/event-stream`` media type
carries an ``x-sse`` extension (like 3.2's ``itemSchema``): ``data`` is the schema of every
JSON ``data:`` payload, ``terminator`` the stream's last event, ``event_ids`` whether events
carry ``id:``, and ``events`` (named events) the schema of each event's data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa import __version__
from kuwa.gateway.endpoint import Endpoint, declared, endpoint
from kuwa.gateway.openapi_embeddings import embedding_paths
from kuwa.gateway.openapi_errors import error_response
from kuwa.gateway.openapi_files import file_paths
from kuwa.gateway.openapi_paths import BEARER, api_paths
from kuwa.gateway.openapi_routes import declared_types, operation, path_of
from kuwa.gateway.openapi_schemas import JSON, STATUS_NAMES, struct_components
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
    operations are written out by hand (and must name what their routes declare), every other
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


__all__ = ["build_document", "openapi_json"]
