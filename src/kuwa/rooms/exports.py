"""Feedback as training data, over plain data (no database, no web layer).

Callers load ratings as the frozen :class:`FeedbackRecord` below and stream the result: every
builder is a generator of lines, each line ending with its own terminator, so
``"".join(builder(records))`` is the whole file. :func:`preference_jsonl` (Kuwa's preference
format), :func:`openai_chat_jsonl` (OpenAI chat fine-tuning, liked answers),
:func:`dpo_pairs_jsonl` (liked vs disliked answers of different models to one prompt, by one
rater), :func:`feedback_csv` (everything, raw) and :func:`filter_records`. Naive datetimes are
taken as UTC (the database stores naive UTC). The room as a Word document is
``kuwa.rooms.docx_export``.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "CSV_HEADER",
    "FeedbackRecord",
    "dpo_pairs_jsonl",
    "feedback_csv",
    "filter_records",
    "openai_chat_jsonl",
    "preference_jsonl",
    "preference_prompt",
]

CSV_HEADER = (
    "room_id",
    "prompt_id",
    "answer_id",
    "model",
    "user",
    "created",
    "rating",
    "flags",
    "comment",
    "deleted",
    "prompt",
    "answer",
)


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One rating of one answer (one row per rater and answer)."""

    room_id: int
    prompt_id: int
    answer_id: int
    model: str
    history: list[tuple[str, str]]  # (role, content) turns before this prompt, this model's thread
    prompt: str
    answer: str
    rating: int  # 1 liked, -1 disliked, 0 none
    flags: list[str]
    comment: str
    user: str  # email of who rated
    created: dt.datetime
    deleted: bool  # the answer was soft-deleted (still exported, as Kuwa did)


def _utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


_SPEAKER = {"user": "Human", "assistant": "Assistant", "system": "System"}


def _json_line(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode() + "\n"


def preference_prompt(record: FeedbackRecord) -> str:
    """Kuwa's preference prompt text: the thread as ``Speaker: text`` turns.

    Turns are ``Human: <content>`` (user), ``Assistant: <content>`` (assistant) or
    ``System: <content>``; history turns come first, then ``Human: <prompt>`` and a bare
    ``Assistant:``, all joined by a blank line (``"\\n\\n"``). Without history that is
    ``"Human: <prompt>\\n\\nAssistant:"``; with one exchange
    ``"Human: q1\\n\\nAssistant: a1\\n\\nHuman: q2\\n\\nAssistant:"``.
    """
    turns = [f"{_SPEAKER.get(role, role.capitalize())}: {text}" for role, text in record.history]
    turns += [f"Human: {record.prompt}", "Assistant:"]
    return "\n\n".join(turns)


def _messages(record: FeedbackRecord) -> list[dict[str, str]]:
    """OpenAI-style messages of the history and the prompt (roles kept as stored)."""
    messages = [{"role": role, "content": text} for role, text in record.history]
    messages.append({"role": "user", "content": record.prompt})
    return messages


def preference_jsonl(records: Iterable[FeedbackRecord]) -> Iterator[str]:
    """Kuwa's preference format, one JSON object per line (``\\n``-terminated).

    ``{"prompt": preference_prompt(r), "response": answer, "chosen": answer if liked else "",
    "rejected": answer if disliked else ""}``; unrated (rating 0) records are skipped,
    soft-deleted answers are kept.
    """
    for record in records:
        if not record.rating:
            continue
        liked = record.rating > 0
        yield _json_line(
            {
                "prompt": preference_prompt(record),
                "response": record.answer,
                "chosen": record.answer if liked else "",
                "rejected": "" if liked else record.answer,
            }
        )


def openai_chat_jsonl(records: Iterable[FeedbackRecord]) -> Iterator[str]:
    """OpenAI chat fine-tuning lines of liked answers: history, the prompt, the answer.

    ``{"messages": [...history, {"role": "user", ...}, {"role": "assistant", ...}]}``.
    """
    for record in records:
        if record.rating > 0:
            messages = _messages(record)
            messages.append({"role": "assistant", "content": record.answer})
            yield _json_line({"messages": messages})


def dpo_pairs_jsonl(records: Iterable[FeedbackRecord]) -> Iterator[str]:
    """Preference pairs: one rater liked one model's answer and disliked another's.

    Rule: records are grouped by ``(prompt_id, user)``; every liked answer is paired with
    every disliked answer of a *different* model in the group (so a pair is one person's
    comparison, never two raters' opinions stitched together). A pair of the same two
    answers found through several raters is written once. ``prompt`` is the OpenAI-style
    messages list of the chosen answer's thread (its history, then the user prompt); the
    rejected answer's own history may differ when the room was chained. Order follows the
    input (first rating of the group, then the liked record, then the disliked one).
    """
    groups: dict[tuple[int, str], list[FeedbackRecord]] = {}
    for record in records:
        if record.rating:
            groups.setdefault((record.prompt_id, record.user), []).append(record)
    seen: set[tuple[int, int]] = set()
    for group in groups.values():
        for good in (r for r in group if r.rating > 0):
            for bad in (r for r in group if r.rating < 0):
                if good.model == bad.model or (good.answer_id, bad.answer_id) in seen:
                    continue
                seen.add((good.answer_id, bad.answer_id))
                yield _json_line(
                    {
                        "prompt": _messages(good),
                        "chosen": good.answer,
                        "rejected": bad.answer,
                        "chosen_model": good.model,
                        "rejected_model": bad.model,
                    }
                )


class _Line:
    """A csv writer target that hands each formatted row back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _iso(value: dt.datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")


def feedback_csv(records: Iterable[FeedbackRecord]) -> Iterator[str]:
    """All feedback as CSV (RFC 4180 quoting, ``\\r\\n`` rows): the header, then one row each.

    Columns: :data:`CSV_HEADER`. ``created`` is ISO 8601 UTC with a ``Z``; ``flags`` are
    joined by ``;``; ``deleted`` is ``true``/``false``. Cells are written raw (no
    spreadsheet-formula neutralising), since this is a data export.
    """
    writer = csv.writer(_Line())
    yield writer.writerow(CSV_HEADER)
    for r in records:
        yield writer.writerow(
            (
                r.room_id,
                r.prompt_id,
                r.answer_id,
                r.model,
                r.user,
                _iso(r.created),
                r.rating,
                ";".join(r.flags),
                r.comment,
                "true" if r.deleted else "false",
                r.prompt,
                r.answer,
            )
        )


def filter_records(
    records: Iterable[FeedbackRecord],
    *,
    models: set[str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    rating: int | None = None,
    include_deleted: bool = True,
) -> Iterator[FeedbackRecord]:
    """Records matching every given criterion (``None`` = any), in input order.

    ``models``: access codes; ``since`` inclusive, ``until`` exclusive (naive = UTC);
    ``rating``: exactly 1, -1 or 0; ``include_deleted=False`` drops soft-deleted answers.
    """
    start = None if since is None else _utc(since)
    end = None if until is None else _utc(until)
    for record in records:
        if models is not None and record.model not in models:
            continue
        if rating is not None and record.rating != rating:
            continue
        if not include_deleted and record.deleted:
            continue
        created = _utc(record.created)
        if start is not None and created < start:
            continue
        if end is not None and created >= end:
            continue
        yield record
