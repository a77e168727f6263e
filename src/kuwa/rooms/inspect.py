"""What the dashboard's Inspect and Feedback pages read: stored messages and ratings, searched
across every room (for holders of ``Dashboard_read_inspect`` / ``Dashboard_read_feedbacks``).

Synchronous like the other database services (callers use a thread pool). A message's user is
its author for a prompt, and the author of the prompt it answers for an answer. Pages are
newest first, ``limit`` rows from ``offset``; each call returns one more row than asked when a
further page exists, so callers can tell without counting.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import peewee

from kuwa.accounts.models import Feedback, User
from kuwa.accounts.models import Message as Row
from kuwa.accounts.repo import Repo, aware, db_errors

MAX_QUERY = 200  # characters of a search text


@dataclass(frozen=True, slots=True)
class FoundMessage:
    id: int
    room_id: int
    role: str
    model: str | None
    user: str  # email of whose message it is ("" when the account is gone)
    content: str
    status: str
    created: dt.datetime
    deleted: bool


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    id: int
    created: dt.datetime
    rater: str  # email
    model: str
    rating: int
    flags: list[str]
    comment: str
    answer_id: int
    answer: str
    prompt: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class MessageQuery:
    text: str = ""
    user_id: int | None = None
    model: str = ""
    role: str = ""  # "user", "assistant" or "" for both
    since: dt.datetime | None = None
    until: dt.datetime | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class FeedbackQuery:
    model: str = ""
    rating: int | None = None
    rater_id: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    commented: bool = False  # only ratings with a comment


def _naive(at: dt.datetime) -> dt.datetime:
    """The database keeps naive UTC times."""
    return at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo else at


class Inspect(Repo):
    def messages(self, q: MessageQuery, *, limit: int = 50, offset: int = 0) -> list[FoundMessage]:
        prompt = Row.alias("prompt")
        owner = User.alias("owner")
        who = peewee.fn.COALESCE(Row.author, prompt.author)
        query = (
            Row.select(
                Row.id,
                Row.room,
                Row.role,
                Row.model,
                Row.content,
                Row.status,
                Row.created_at,
                Row.deleted_at,
                owner.email.alias("email"),
            )
            .join(prompt, peewee.JOIN.LEFT_OUTER, on=(Row.parent == prompt.id))
            .switch(Row)
            .join(owner, peewee.JOIN.LEFT_OUTER, on=(owner.id == who))
        )
        if q.text:
            query = query.where(Row.content.contains(q.text[:MAX_QUERY]))
        if q.user_id is not None:
            query = query.where(who == q.user_id)
        if q.model:
            query = query.where(Row.model == q.model)
        if q.role:
            query = query.where(Row.role == q.role)
        if q.since is not None:
            query = query.where(Row.created_at >= _naive(q.since))
        if q.until is not None:
            query = query.where(Row.created_at < _naive(q.until))
        query = query.order_by(Row.created_at.desc(), Row.id.desc()).limit(limit + 1)
        with db_errors("searching messages"):
            rows = self._rows(query.offset(offset))
        return [_found(row) for row in rows]

    def feedback(self, q: FeedbackQuery, *, limit: int = 50, offset: int = 0) -> list[FeedbackRow]:
        prompt = Row.alias("prompt")
        query = (
            Feedback.select(
                Feedback.id,
                Feedback.created_at,
                Feedback.rating,
                Feedback.flags,
                Feedback.comment,
                User.email,
                Row.id.alias("answer_id"),
                Row.model,
                Row.content,
                Row.deleted_at,
                prompt.content.alias("prompt"),
            )
            .join(User, on=(Feedback.user == User.id))
            .switch(Feedback)
            .join(Row, on=(Feedback.message == Row.id))
            .join(prompt, peewee.JOIN.LEFT_OUTER, on=(Row.parent == prompt.id))
        )
        if q.model:
            query = query.where(Row.model == q.model)
        if q.rating is not None:
            query = query.where(Feedback.rating == q.rating)
        if q.rater_id is not None:
            query = query.where(Feedback.user == q.rater_id)
        if q.since is not None:
            query = query.where(Feedback.created_at >= _naive(q.since))
        if q.until is not None:
            query = query.where(Feedback.created_at < _naive(q.until))
        if q.commented:
            query = query.where(Feedback.comment != "")
        query = query.order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit + 1)
        with db_errors("reading feedback"):
            rows = self._rows(query.offset(offset))
        return [_feedback(row) for row in rows]

    def emails(self, user_ids: set[int]) -> dict[int, str]:
        """Email addresses of these users (those still there)."""
        if not user_ids:
            return {}
        query = User.select(User.id, User.email).where(User.id.in_(sorted(user_ids))).tuples()
        with db_errors("looking up users"):
            return {int(i): str(e) for i, e in self._q(query)}

    def feedback_models(self) -> list[str]:
        """Access codes of the models that have been rated."""
        query = (
            Row.select(Row.model)
            .join(Feedback, on=(Feedback.message == Row.id))
            .where(Row.model.is_null(False))
            .distinct()
            .tuples()
        )
        with db_errors("reading feedback"):
            return sorted(str(m) for (m,) in self._q(query))


def _found(row: dict[str, Any]) -> FoundMessage:
    return FoundMessage(
        id=int(row["id"]),
        room_id=int(row["room"]),
        role=str(row["role"]),
        model=row["model"],
        user=str(row["email"] or ""),
        content=str(row["content"]),
        status=str(row["status"]),
        created=aware(row["created_at"]),
        deleted=row["deleted_at"] is not None,
    )


def _feedback(row: dict[str, Any]) -> FeedbackRow:
    return FeedbackRow(
        id=int(row["id"]),
        created=aware(row["created_at"]),
        rater=str(row["email"]),
        model=str(row["model"] or ""),
        rating=int(row["rating"]),
        flags=[f for f in str(row["flags"]).split(",") if f],
        comment=str(row["comment"]),
        answer_id=int(row["answer_id"]),
        answer=str(row["content"]),
        prompt=str(row["prompt"] or ""),
        deleted=row["deleted_at"] is not None,
    )
