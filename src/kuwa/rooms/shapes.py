"""The JSON shapes of docs/web-app-api.md that ``Rooms`` returns: a message as the chat UI
sees it, and an arena battle's models masked as ``arena:A``/``arena:B`` until the vote."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson


def timestamp(value: dt.datetime | None) -> float | None:
    """A naive UTC datetime from the database as Unix seconds."""
    return None if value is None else value.replace(tzinfo=dt.UTC).timestamp()


ARENA_LABELS = ("arena:A", "arena:B")


def arena_mask(room: dict[str, Any]) -> dict[str, str] | None:
    """Before the vote, an arena room shows its two models as ``arena:A`` and ``arena:B``."""
    if not room.get("arena") or room.get("revealed"):
        return None
    models = orjson.loads(room["models"]) if isinstance(room["models"], str) else room["models"]
    return dict(zip(models, ARENA_LABELS, strict=False))


def masked(models: list[str], mask: dict[str, str] | None) -> list[str]:
    return [mask.get(m, m) for m in models] if mask else models


def message_json(
    row: dict[str, Any], feedback: dict[str, Any] | None, mask: dict[str, str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row["id"],
        "room": row["room"],
        "role": row["role"],
        "parent": row["parent"],
        "content": row["content"],
        "created": timestamp(row["created_at"]),
        "selected": bool(row["selected"]),
    }
    if row["role"] == "user":
        out["author"] = {"id": row["author"], "name": row.get("author_name") or "deleted user"}
        return out
    error = row["error"]
    for code, label in (mask or {}).items():  # an error may name the model: not before the vote
        error = error.replace(code, label) if error else error
    out.update(
        model=(mask or {}).get(row["model"], row["model"]),
        status=row["status"],
        error=error,
        chain=bool(row["chain"]),
        feedback=None
        if feedback is None
        else {
            "rating": feedback["rating"],
            "flags": [f for f in feedback["flags"].split(",") if f],
            "comment": feedback["comment"],
        },
        citations=orjson.loads(row["citations"]) if row.get("citations") else [],
        translation=None
        if row["translation_status"] is None
        else {
            "lang": row["translation_lang"],
            "content": row["translation"] or "",
            "status": row["translation_status"],
        },
    )
    return out
