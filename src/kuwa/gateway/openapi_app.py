"""The web app's main ``/app`` JSON endpoints in the OpenAPI document (see :mod:`.openapi`).

The UI's own API, not a public contract (docs/web-app-api.md has all of it): signed in with
the session cookie, every POST with the ``x-csrftoken`` header. Objects allow fields beyond
the ones listed.
"""

from __future__ import annotations

from typing import Any

from kuwa.gateway.openapi_schemas import JSON, NULL, SSE, errors, nullable, obj, ref

Schema = dict[str, Any]
Security = list[dict[str, list[str]]]
SESSION: Security = [{"session": []}]
SESSION_CSRF: Security = [{"session": [], "csrf": []}]
ROLES = ("owner", "participant", "viewer")
TIME: Schema = {"type": "number", "description": "Unix time (seconds)."}


def _person() -> Schema:
    return obj({"id": {"type": "integer"}, "name": {"type": "string"}}, extra=True)


def app_schemas() -> dict[str, Schema]:
    message = {"type": "integer"}
    return {
        "AppModel": obj(
            {
                "code": {"type": "string", "description": "The access code."},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "image": {"type": "string"},
                "order": {"type": "integer"},
                "react_buttons": {"type": "array", "items": {"type": "string"}},
                "live": {"type": "boolean", "description": "An executor serves it now."},
            },
            extra=True,
        ),
        "AppBot": obj(
            {
                "id": {"type": "integer"},
                "code": {"type": "string", "description": "`bot:ID`: use it as a room's model."},
                "name": {"type": "string"},
                "base": {"type": "string", "description": "The model it is built on."},
                "live": {"type": "boolean"},
            },
            extra=True,
        ),
        "RoomSummary": obj(
            {
                "id": {"type": "integer"},
                "title": {"type": "string"},
                "models": {"type": "array", "items": {"type": "string"}},
                "updated": TIME,
                "owner": {"type": "boolean", "description": "You own the room."},
                "role": {"enum": list(ROLES)},
            },
            extra=True,
        ),
        "Room": obj(
            {
                "id": {"type": "integer"},
                "title": {"type": "string"},
                "models": {"type": "array", "items": {"type": "string"}},
                "chained": {"type": "boolean"},
                "role": {"enum": list(ROLES)},
                "owner": _person(),
                "members": {"type": "array", "items": {"type": "object"}},
                "link": {"type": ["string", "null"]},
                "messages": {
                    "type": "array",
                    "items": ref("AppMessage"),
                    "description": "Every live message, oldest first (not in the `room` event).",
                },
                "me": _person(),
            },
            ["id", "title", "models", "chained", "role", "owner", "members", "me"],
            extra=True,
        ),
        "AppMessage": obj(
            {
                "id": message,
                "room": {"type": "integer"},
                "role": {"enum": ["user", "assistant"]},
                "parent": nullable(message),
                "content": {"type": "string"},
                "created": TIME,
                "selected": {"type": "boolean"},
                "author": _person(),
                "model": {"type": "string"},
                "status": {"enum": ["running", "done", "failed", "cancelled"]},
                "error": {"type": ["string", "null"]},
                "feedback": {"anyOf": [{"type": "object"}, NULL]},
                "translation": {"anyOf": [{"type": "object"}, NULL]},
            },
            ["id", "room", "role", "parent", "content", "created", "selected"],
            extra=True,
            description="A prompt (`role: user`, with `author`) or an answer (with `model`, "
            "`status`, `error`, `feedback`, `translation`).",
        ),
    }


def _json(schema: Schema, description: str = "OK.") -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _room_id() -> Schema:
    return {"name": "room_id", "in": "path", "required": True, "schema": {"type": "integer"}}


def _op(
    summary: str,
    operation_id: str,
    responses: dict[str, Schema],
    *,
    post: bool = False,
    body: Schema | None = None,
    room: bool = False,
    statuses: tuple[int, ...] = (401, 403, 404),
) -> Schema:
    op: Schema = {
        "tags": ["app"],
        "operationId": operation_id,
        "summary": summary,
        "security": SESSION_CSRF if post else SESSION,
        "responses": {**responses, **errors(*statuses)},
    }
    if room:
        op["parameters"] = [_room_id()]
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return op


def app_paths() -> dict[str, Schema]:
    room = _json(ref("Room"))
    models = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    events = {
        "hello": obj({"room": ref("Room")}, extra=True),
        "message": ref("AppMessage"),
        "delta": obj(
            {"id": {"type": "integer"}, "text": {"type": "string"}, "seq": {"type": "integer"}}
        ),
        "translation": obj(
            {"id": {"type": "integer"}, "text": {"type": "string"}, "seq": {"type": "integer"}}
        ),
        "presence": obj({"users": {"type": "array", "items": _person()}}),
        "room": ref("Room"),
        "gone": obj({"reason": {"type": "string"}}),
    }
    return {
        "/app/models": {
            "get": _op(
                "The models and bots you may chat with",
                "appModels",
                {
                    "200": _json(
                        obj(
                            {
                                "models": {"type": "array", "items": ref("AppModel")},
                                "bots": {"type": "array", "items": ref("AppBot")},
                            }
                        )
                    )
                },
                statuses=(401, 403),
            )
        },
        "/app/rooms": {
            "get": {
                **_op(
                    "Your rooms (owned and shared), newest first",
                    "appListRooms",
                    {"200": _json(obj({"rooms": {"type": "array", "items": ref("RoomSummary")}}))},
                    statuses=(401, 403),
                ),
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "required": False,
                        "description": "Search in titles.",
                        "schema": {"type": "string"},
                    }
                ],
            },
            "post": _op(
                "Create a room",
                "appCreateRoom",
                {"201": _json(ref("Room"), "The new room.")},
                post=True,
                body=obj(
                    {"models": models, "chained": {"type": "boolean", "default": True}}, ["models"]
                ),
                statuses=(400, 401, 403, 404),
            ),
        },
        "/app/rooms/{room_id}": {
            "get": _op("A room with its messages", "appRoom", {"200": room}, room=True),
            "post": _op(
                "Change a room (owner)",
                "appUpdateRoom",
                {"200": room},
                post=True,
                room=True,
                body=obj(
                    {
                        "title": {"type": "string"},
                        "chained": {"type": "boolean"},
                        "models": {"type": "array", "items": {"type": "string"}},
                    },
                    [],
                    extra=True,
                ),
                statuses=(400, 401, 403, 404),
            ),
        },
        "/app/rooms/{room_id}/delete": {
            "post": _op(
                "Delete a room (owner; soft delete)",
                "appDeleteRoom",
                {"200": _json(obj({}))},
                post=True,
                room=True,
            )
        },
        "/app/rooms/{room_id}/messages": {
            "post": _op(
                "Send a prompt to the room's models",
                "appSend",
                {
                    "201": _json(
                        obj(
                            {
                                "prompt": ref("AppMessage"),
                                "answers": {"type": "array", "items": ref("AppMessage")},
                            }
                        ),
                        "The prompt and one running answer per model.",
                    )
                },
                post=True,
                room=True,
                body=obj(
                    {
                        "content": {"type": "string"},
                        "models": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Send to these models of the room only.",
                        },
                        "parent": {
                            "type": ["integer", "null"],
                            "description": "Branch after this prompt (an edit sends the edited "
                            "prompt's parent).",
                        },
                    },
                    ["content"],
                    extra=True,
                ),
                statuses=(400, 401, 403, 404, 429, 503),
            )
        },
        "/app/rooms/{room_id}/stop": {
            "post": _op(
                "Stop every running answer of the room",
                "appStop",
                {"200": _json(obj({"stopped": {"type": "integer", "minimum": 0}}))},
                post=True,
                room=True,
            )
        },
        "/app/rooms/{room_id}/events": {
            "get": _op(
                "The room's live events",
                "appRoomEvents",
                {
                    "200": {
                        "description": "Named events (`event: NAME` and `data: JSON`); a "
                        "`: keep-alive` comment every 15 s.",
                        "content": {
                            SSE: {
                                "schema": {"type": "string"},
                                "x-sse": {"events": events, "terminator": None},
                            }
                        },
                    }
                },
                room=True,
            )
        },
    }
