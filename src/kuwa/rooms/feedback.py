"""Ratings of answers (thumbs up/down, flags, a comment; one per rater and answer) and every
rating as a :class:`~kuwa.rooms.exports.FeedbackRecord` for the training-data exports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from kuwa.accounts.models import Feedback, User, utcnow
from kuwa.accounts.models import Message as Row
from kuwa.accounts.repo import Repo, db_errors
from kuwa.errors import InvalidRequestError
from kuwa.rooms.exports import FeedbackRecord
from kuwa.rooms.service import Rooms

FLAGS = (
    "correct",
    "easy_to_understand",
    "complete",
    "unsafe",
    "incorrect",
    "irrelevant",
    "language",
)


class Feedbacks(Repo):
    def save(
        self,
        message_id: int,
        user_id: int,
        rating: int,
        flags: Iterable[str] | None,
        comment: str | None,
    ) -> None:
        """The user's rating of an answer; flags or comment left None stay as they were."""
        if rating not in (-1, 0, 1):
            raise InvalidRequestError("rating must be 1, -1 or 0", param="rating")
        values: dict[str, Any] = {"rating": rating}
        if flags is not None:
            bad = [f for f in flags if f not in FLAGS]
            if bad:
                raise InvalidRequestError(f"unknown feedback flag {bad[0]!r}", param="flags")
            values["flags"] = ",".join(dict.fromkeys(flags))
        if comment is not None:
            values["comment"] = comment[:4000]
        with db_errors("saving feedback"):
            self._q(
                Feedback.insert(
                    message=message_id, user=user_id, created_at=utcnow(), **values
                ).on_conflict(conflict_target=[Feedback.message, Feedback.user], update=values)
            ).execute()

    def records(self) -> Iterator[FeedbackRecord]:
        """Every rating, oldest first (soft-deleted answers included, as Kuwa exported them)."""
        rooms = Rooms(self._db)
        query = (
            Feedback.select(
                Feedback,
                User.email,
                Row.room,
                Row.parent,
                Row.model,
                Row.content,
                Row.deleted_at,
                Row.chain,
            )
            .join(User, on=(Feedback.user == User.id))
            .switch(Feedback)
            .join(Row, on=(Feedback.message == Row.id))
            .order_by(Feedback.created_at, Feedback.id)
        )
        with db_errors("reading feedback"):
            for fb in self._rows(query):
                answer = self._rows(Row.select().where(Row.id == fb["message"]))[0]
                turns = rooms.history_of(answer)
                yield FeedbackRecord(
                    room_id=int(fb["room"]),
                    prompt_id=int(fb["parent"]),
                    answer_id=int(fb["message"]),
                    model=str(fb["model"]),
                    history=turns[:-1],
                    prompt=turns[-1][1],
                    answer=str(fb["content"]),
                    rating=int(fb["rating"]),
                    flags=[f for f in str(fb["flags"]).split(",") if f],
                    comment=str(fb["comment"]),
                    user=str(fb["email"]),
                    created=fb["created_at"].replace(tzinfo=dt.UTC),
                    deleted=fb["deleted_at"] is not None,
                )
