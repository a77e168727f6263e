"""The blinded arena: a battle room shows two models as A and B until its owner votes.

A round draws two different models, in a random order, from the models the user may use
that are being served: all of them with equal weights, or, when an administrator set the
arena pool, those of the pool with its weights. The room's answers stream as usual but every
response the browser gets names the models ``arena:A`` / ``arena:B`` (``shapes.arena_mask``).
The vote (A better, B better, tie, both bad) is stored as a battle and reveals the names. An
answer that names its own model or the model's display name is flagged and left out of the
ranking, as LMSYS does.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from peewee import fn

from kuwa.accounts.models import ArenaBattle, Room, utcnow
from kuwa.accounts.models import Message as Row
from kuwa.accounts.repo import Repo, db_errors
from kuwa.arena import Battle
from kuwa.arena.language import UNDETERMINED, detect_language
from kuwa.errors import ConflictError, InvalidRequestError, RateLimitError

OUTCOMES = ("a", "b", "tie", "bad")
VOTES_PER_DAY = 200


def round_pool(
    configured: Sequence[tuple[str, float]], usable: Sequence[str]
) -> list[tuple[str, float]]:
    """What a round draws from: every model in ``usable`` (those the user may use, served now)
    with equal weights, or, when the administrator set a pool (``configured``), the pool's
    models among them with the pool's weights. Fewer than two: a clear 400."""
    allowed = set(usable)
    if configured:
        pool = [(code, weight) for code, weight in configured if code in allowed]
        if len(pool) < 2:
            raise InvalidRequestError(
                "The arena needs two models of its pool that are running and that you may use; "
                "ask an administrator to widen the arena pool (Manage → System).",
                code="arena_pool",
            )
        return pool
    if len(allowed) < 2:
        raise InvalidRequestError(
            "The arena needs two models that are running and that you may use; start another "
            "executor, or ask an administrator for access to more models.",
            code="arena_pool",
        )
    return [(code, 1.0) for code in dict.fromkeys(usable)]


def draw_pair(pool: Sequence[tuple[str, float]], rng: random.Random) -> list[str]:
    """Two different models, weighted, in random order (side A first)."""
    if len({code for code, _ in pool}) < 2:
        raise InvalidRequestError(
            "The arena needs at least two models you may use; ask an administrator to set "
            "the arena pool.",
            code="arena_pool",
        )
    first = rng.choices([c for c, _ in pool], weights=[w for _, w in pool])[0]
    rest = [(c, w) for c, w in pool if c != first]
    second = rng.choices([c for c, _ in rest], weights=[w for _, w in rest])[0]
    pair = [first, second]
    rng.shuffle(pair)
    return pair


class Arena(Repo):
    def start(self, owner_id: int, pair: list[str]) -> int:
        now = utcnow()
        with db_errors("starting an arena round"):
            return int(
                self._q(
                    Room.insert(
                        owner=owner_id,
                        models=orjson.dumps(pair).decode(),
                        chained=True,
                        arena=True,
                        created_at=now,
                        updated_at=now,
                    )
                ).execute()
            )

    def vote(self, room_id: int, user_id: int, outcome: str, names: dict[str, str]) -> None:
        """Record the vote and reveal the room. ``names``: access code -> display name, for
        the leak check."""
        if outcome not in OUTCOMES:
            raise InvalidRequestError("outcome must be a, b, tie or bad", param="outcome")
        with db_errors("voting"), self._db.atomic():
            room = self._rows(Room.select().where(Room.id == room_id))[0]
            if not room["arena"]:
                raise InvalidRequestError("This room is not an arena battle.")
            if room["revealed"]:
                raise ConflictError("This battle has been voted on already.")
            today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
            votes = self._q(
                ArenaBattle.select().where(
                    (ArenaBattle.user == user_id) & (ArenaBattle.created_at >= today)
                )
            ).count()
            if votes >= VOTES_PER_DAY:
                raise RateLimitError(f"You voted {VOTES_PER_DAY} times today; thank you!")
            a, b = orjson.loads(room["models"])
            answers = self._rows(
                Row.select(Row.model, Row.content).where(
                    (Row.room == room_id) & (Row.role == "assistant")
                )
            )
            if not answers:
                raise InvalidRequestError("Send a prompt and read both answers first.")
            flagged = any(_names_itself(r["content"], r["model"], names) for r in answers)
            prompts = self._rows(
                Row.select(Row.content)
                .where((Row.room == room_id) & (Row.role == "user"))
                .order_by(Row.id)
            )
            language = detect_language("\n".join(r["content"] for r in prompts))
            self._q(
                ArenaBattle.insert(
                    room=room_id,
                    user=user_id,
                    model_a=a,
                    model_b=b,
                    outcome=outcome,
                    flagged=flagged,
                    language=language,
                    created_at=utcnow(),
                )
            ).execute()
            self._q(Room.update(revealed=True).where(Room.id == room_id)).execute()

    def battles(
        self,
        *,
        include_flagged: bool = False,
        since: dt.date | None = None,
        until: dt.date | None = None,
        language: str | None = None,
    ) -> list[Battle]:
        """The battles to rank: unflagged, voted on ``since`` … ``until`` (whole UTC days,
        both included), in ``language`` when given."""
        query = ArenaBattle.select().where(_between(since, until)).order_by(ArenaBattle.id)
        if not include_flagged:
            query = query.where(ArenaBattle.flagged == False)  # noqa: E712
        if language:
            query = query.where(ArenaBattle.language == language)
        with db_errors("reading battles"):
            return [Battle(r["model_a"], r["model_b"], r["outcome"]) for r in self._rows(query)]

    def languages(
        self, since: dt.date | None = None, until: dt.date | None = None
    ) -> dict[str, int]:
        """Ranked battles per language in the period, most first (for the filter)."""
        query = (
            ArenaBattle.select(ArenaBattle.language, fn.COUNT(ArenaBattle.id).alias("n"))
            .where(_between(since, until) & (ArenaBattle.flagged == False))  # noqa: E712
            .group_by(ArenaBattle.language)
            .order_by(fn.COUNT(ArenaBattle.id).desc(), ArenaBattle.language)
        )
        with db_errors("reading battles"):
            return {r["language"] or UNDETERMINED: int(r["n"]) for r in self._rows(query)}

    def export_jsonl(self) -> Iterator[str]:
        with db_errors("reading battles"):
            for r in self._rows(ArenaBattle.select().order_by(ArenaBattle.id)):
                yield (
                    orjson.dumps(
                        {
                            "room": r["room"],
                            "model_a": r["model_a"],
                            "model_b": r["model_b"],
                            "winner": r["outcome"],
                            "flagged": bool(r["flagged"]),
                            "time": r["created_at"].isoformat() + "Z",
                        }
                    ).decode()
                    + "\n"
                )


def _between(since: dt.date | None, until: dt.date | None) -> Any:
    where: Any = ArenaBattle.id.is_null(False)
    if since is not None:
        where &= ArenaBattle.created_at >= dt.datetime.combine(since, dt.time())
    if until is not None:
        where &= ArenaBattle.created_at < dt.datetime.combine(
            until + dt.timedelta(days=1), dt.time()
        )
    return where


def _names_itself(content: str, code: str, names: dict[str, Any]) -> bool:
    text = content.lower()
    candidates = {code.lower(), str(names.get(code, "")).lower()}
    return any(len(c) >= 3 and c in text for c in candidates if c)
