"""The OpenAPI operations of the routes the document does not describe by hand: each one
written from the route's own declaration (:func:`kuwa.gateway.endpoint.endpoint`) and from who
may use it (:func:`kuwa.web.core.page`). See :mod:`.openapi`.

The web app's pages and forms and its ``/app`` JSON API (docs/web-app-api.md; the UI's own,
not a public contract): signed in with the session cookie, every POST with the
``x-csrftoken`` header.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.convertors import Convertor
from starlette.routing import Route

from kuwa.gateway.endpoint import (
    ACCESS_ATTR,
    FORM,
    HTML,
    JSON,
    MULTIPART,
    PUBLIC,
    SIGNED_IN,
    SSE,
    Endpoint,
)
from kuwa.gateway.openapi_schemas import errors, sse_event

Schema = dict[str, Any]
Security = list[dict[str, list[str]]]
BEARER: Security = [{"bearerAuth": []}]
SESSION: Security = [{"session": []}]
SESSION_CSRF: Security = [{"session": [], "csrf": [], "csrfCookie": []}]
CSRF: Security = [{"csrf": [], "csrfCookie": []}]
TAGS = {
    "app": "app",
    "manage": "manage",
    "dashboard": "dashboard",
    "profile": "account",
    "login": "account",
    "logout": "account",
    "signup": "account",
    "verify": "account",
    "forgot": "account",
    "reset": "account",
    "password": "account",
    "terms": "account",
    "auth": "account",
}
ERROR_PAGE: Schema = {
    "description": "An error page; Kuwa's JSON error to a client that does not ask for "
    "`text/html` (the router's own 404 and 405).",
    "content": {
        HTML: {"schema": {"type": "string"}},
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}},
    },
}


def path_of(route: Route) -> str:
    """The route's path as OpenAPI writes it: ``{room_id:id}`` -> ``{room_id}``."""
    return re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)


def declared_types(decl: Endpoint) -> list[Any]:
    """The types whose JSON Schema the operation refers to."""
    found = [decl.body, decl.form, decl.query, *decl.events.values()]
    if decl.answer is not None and not isinstance(decl.answer, dict):
        found.append(decl.answer)
    return [t for t in found if t is not None]


def operation_id(route: Route, taken: set[str]) -> str:
    name = getattr(route.endpoint, "__name__", "endpoint")
    words = name.strip("_").split("_")
    op = words[0] + "".join(w.title() for w in words[1:])
    if op in taken:
        module = str(getattr(route.endpoint, "__module__", "")).rpartition(".")[2]
        op = module + op[:1].upper() + op[1:]
    taken.add(op)
    return op


def _parameters(route: Route, decl: Endpoint, schemas: dict[Any, Schema]) -> list[Schema]:
    out: list[Schema] = []
    for name, convertor in route.param_convertors.items():
        out.append(
            {"name": name, "in": "path", "required": True, "schema": {"type": _kind(convertor)}}
        )
    if decl.query is not None:
        component = schemas[decl.query]
        for name, schema in component.get("properties", {}).items():
            required = name in component.get("required", ())
            param: Schema = {"name": name, "in": "query", "required": required}
            if "description" in schema:
                param["description"] = schema["description"]
            param["schema"] = {k: v for k, v in schema.items() if k != "description"}
            out.append(param)
    return out


def _kind(convertor: Convertor[Any]) -> str:
    """The JSON type of a path parameter: what its convertor makes of one (int, float, str)."""
    try:
        value = convertor.convert("1")
    except (ValueError, TypeError, AssertionError):
        return "string"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "string"
    return "integer" if isinstance(value, int) else "number"


def _has_bytes(struct: Any) -> bool:
    return isinstance(struct, type) and any(f.type is bytes for f in msgspec.structs.fields(struct))


def _request_body(decl: Endpoint, refs: dict[Any, Schema]) -> Schema | None:
    content: Schema = {}
    if decl.body is not None:
        content[JSON] = {"schema": refs[decl.body]}
    if decl.form is not None:
        content[MULTIPART if _has_bytes(decl.form) else FORM] = {"schema": refs[decl.form]}
    for media in decl.upload:  # a file as the body; a JSON one is an object or a list
        kind: Schema = {"type": ["object", "array"]} if media == JSON else {"type": "string"}
        content[media] = {"schema": {**kind, "contentMediaType": media}}
    if not content:
        return None
    # A form whose every field may be left out (its CSRF token may come in a header) may be
    # sent without a body.
    optional = decl.form is not None and not any(
        f.required for f in msgspec.structs.fields(decl.form)
    )
    return {"required": not optional, "content": content}


def _responses(decl: Endpoint, refs: dict[Any, Schema], api: bool, ids: bool) -> Schema:
    out: Schema = {}
    status = str(decl.status)
    if decl.answer is not None:
        schema = decl.answer if isinstance(decl.answer, dict) else refs[decl.answer]
        out[status] = {"description": "OK.", "content": {JSON: {"schema": schema}}}
    elif decl.media == SSE:
        events = {name: refs[t] for name, t in decl.events.items()}
        out[status] = {
            "description": "Named events (`event: NAME` and `data: JSON`); a `: keep-alive` "
            "comment every 15 s.",
            "content": {
                SSE: {
                    "schema": sse_event(events),
                    "x-sse": {"events": events, "terminator": None},
                }
            },
        }
    elif not decl.redirect:
        content = {
            m.strip(): {"schema": {"type": "object" if m.strip() == JSON else "string"}}
            for m in decl.media.split(",")
        }
        what = "A page." if decl.media == HTML else "The file."
        out[status] = {"description": what, "content": content}
    if decl.redirect:
        out[str(decl.redirect)] = {"description": "A redirect: where to go next."}
        if decl.form is not None:
            out["200"] = {
                "description": "The form again, with why it was refused.",
                "content": {HTML: {"schema": {"type": "string"}}},
            }
    if api:  # the JSON API answers errors in Kuwa's one shape
        more = {*((404,) if ids else ()), *((400,) if decl.query is not None else ())}
        out.update(errors(*sorted({401, 403, *decl.errors, *more})))
    else:
        out["4XX"] = ERROR_PAGE
    return out


def operation(
    route: Route, method: str, decl: Endpoint, refs: dict[Any, Schema], taken: set[str]
) -> Schema:
    """The operation of one method of a declared route."""
    path = path_of(route)
    access = getattr(route.endpoint, ACCESS_ATTR, None)
    post = method != "get"
    api = path.startswith("/app/")
    if access == PUBLIC:
        security = CSRF if post else []
    elif access is None:
        security = BEARER
    else:
        security = SESSION_CSRF if post else SESSION
    doc = (route.endpoint.__doc__ or "").strip()
    name = str(getattr(route.endpoint, "__name__", "")).replace("_", " ").strip()
    summary = decl.summary or (name[:1].upper() + name[1:])
    op: Schema = {
        "tags": [TAGS.get(path.strip("/").split("/")[0], "pages")],
        "operationId": operation_id(route, taken),
        "summary": summary,
    }
    rest = "\n".join(doc.splitlines()[1:]).strip() if doc else ""
    notes = [rest] if rest else []
    if access not in (None, PUBLIC, SIGNED_IN):
        notes.append(f"Needs the permission `{access}`.")
        op["x-permission"] = access
    if notes:
        op["description"] = "\n\n".join(notes)
    op["security"] = security
    parameters = _parameters(route, decl, refs)
    if parameters:
        op["parameters"] = parameters
    body = _request_body(decl, refs)
    if body is not None:
        op["requestBody"] = body
    responses = _responses(decl, refs, api, bool(route.param_convertors))
    if access not in (None, PUBLIC) and not api:
        # A page sends a visitor without a session to sign in: it is open to anyone, and
        # answers 303 without one.
        op["security"] = [*security, CSRF[0] if post else {}]
        responses["303"] = {"description": "Not signed in: to /login?next=… (or a detour)."}
    elif access == PUBLIC and not post and decl.media == HTML:
        responses.setdefault("303", {"description": "Sent on (e.g. already signed in)."})
    op["responses"] = responses
    return op
