"""Feedback and training-data exports, one place for the web endpoint and the CLI."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator

from kuwa.errors import InvalidRequestError
from kuwa.rooms import exports
from kuwa.rooms.feedback import Feedbacks
from kuwa.rooms.service import Rooms

FORMATS: dict[str, tuple[Callable[[Iterable[exports.FeedbackRecord]], Iterator[str]], str, str]] = {
    "preference": (exports.preference_jsonl, "application/x-ndjson", "jsonl"),
    "openai": (exports.openai_chat_jsonl, "application/x-ndjson", "jsonl"),
    "dpo": (exports.dpo_pairs_jsonl, "application/x-ndjson", "jsonl"),
    "csv": (exports.feedback_csv, "text/csv; charset=utf-8", "csv"),
}


def parse_date(value: str | None, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(
            f"{name} must be a date like 2026-11-26 or 2026-11-26T10:00", param=name
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def export_feedback(
    rooms: Rooms,
    kind: str,
    *,
    models: set[str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    rating: int | None = None,
) -> Iterator[str]:
    """The lines of one export format (streamed from the database)."""
    if kind not in FORMATS:
        raise InvalidRequestError(f"format must be one of {', '.join(FORMATS)}", param="format")
    if rating not in (None, -1, 0, 1):
        raise InvalidRequestError("rating must be 1, -1 or 0", param="rating")
    build = FORMATS[kind][0]
    records = exports.filter_records(
        Feedbacks(rooms.db).records(), models=models, since=since, until=until, rating=rating
    )
    return build(records)
