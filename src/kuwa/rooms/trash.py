"""The trash: rooms and answers their owner deleted, kept ``days`` days to restore, then gone.

Deleting a room or a message only stamps ``deleted_at``; everything else in Kuwa reads past
such rows. Here the owner of a room lists what is in its trash, restores it, or deletes it
for good; :meth:`Trash.purge_expired` deletes for good whatever was deleted more than
``days`` days ago (the system setting ``trash_days``). An administrator restores a user's
rooms through :meth:`Trash.restore_room` too (``Manage → Users``).

A message in the trash is one deleted inside a room that is itself not deleted (a deleted
room holds its messages). Deleting a prompt for good takes its answers with it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from kuwa.accounts.models import Message as Row
from kuwa.accounts.models import Room, utcnow
from kuwa.accounts.repo import Repo, db_errors
from kuwa.errors import NotFoundError
from kuwa.rooms.shapes import arena_mask, masked, timestamp
from kuwa.rooms.titles import make_title

DEFAULT_DAYS = 30
EXCERPT = 160


def _purge_at(deleted: dt.datetime, days: int) -> float | None:
    return timestamp(deleted + dt.timedelta(days=days))


class Trash(Repo):
    def contents(self, owner_id: int, days: int) -> dict[str, Any]:
        """The owner's deleted rooms and the messages deleted in their other rooms."""
        with db_errors("reading the trash"):
            rooms = self._rows(
                Room.select()
                .where((Room.owner == owner_id) & Room.deleted_at.is_null(False))
                .order_by(Room.deleted_at.desc())
                .limit(500)
            )
            live = Room.select(Room.id).where((Room.owner == owner_id) & Room.deleted_at.is_null())
            messages = self._rows(
                Row.select(Row, Room.title.alias("room_title"), Room.arena, Room.revealed)
                .join(Room, on=(Row.room == Room.id))
                .where(Row.deleted_at.is_null(False) & Row.room.in_(live))
                .order_by(Row.deleted_at.desc())
                .limit(500)
            )
        return {
            "days": days,
            "rooms": [
                {
                    "id": r["id"],
                    "title": r["title"],
                    "models": masked(orjson.loads(r["models"]), arena_mask(r)),
                    "arena": bool(r["arena"]),
                    "deleted": timestamp(r["deleted_at"]),
                    "purge_at": _purge_at(r["deleted_at"], days),
                }
                for r in rooms
            ],
            "messages": [self._message(m, days) for m in messages],
        }

    def _message(self, row: dict[str, Any], days: int) -> dict[str, Any]:
        blinded = row["arena"] and not row["revealed"]
        return {
            "id": row["id"],
            "room": {"id": row["room"], "title": row["room_title"]},
            "role": row["role"],
            "model": None if blinded else row["model"],  # never name a blinded model
            "excerpt": make_title(row["content"])[:EXCERPT] if row["content"] else "",
            "deleted": timestamp(row["deleted_at"]),
            "purge_at": _purge_at(row["deleted_at"], days),
        }

    def _owned_room(self, room_id: int, owner_id: int | None, *, deleted: bool) -> None:
        where = (Room.id == room_id) & Room.deleted_at.is_null(not deleted)
        if owner_id is not None:
            where = where & (Room.owner == owner_id)
        if not self._rows(Room.select(Room.id).where(where)):
            raise NotFoundError(f"There is no room {room_id} in your trash.", param="room")

    def _owned_message(self, message_id: int, owner_id: int) -> int:
        rows = self._rows(
            Row.select(Row.room)
            .join(Room, on=(Row.room == Room.id))
            .where(
                (Row.id == message_id)
                & Row.deleted_at.is_null(False)
                & (Room.owner == owner_id)
                & Room.deleted_at.is_null()
            )
        )
        if not rows:
            raise NotFoundError(f"There is no message {message_id} in your trash.", param="message")
        return int(rows[0]["room"])

    def restore_room(self, room_id: int, owner_id: int | None) -> None:
        """Bring a deleted room back (``owner_id`` None: an administrator, any owner)."""
        with db_errors("restoring a room"):
            self._owned_room(room_id, owner_id, deleted=True)
            self._q(
                Room.update(deleted_at=None, updated_at=utcnow()).where(Room.id == room_id)
            ).execute()

    def purge_room(self, room_id: int, owner_id: int) -> None:
        with db_errors("deleting a room for good"), self._db.atomic():
            self._owned_room(room_id, owner_id, deleted=True)
            self._q(Row.delete().where(Row.room == room_id)).execute()
            self._q(Room.delete().where(Room.id == room_id)).execute()

    def restore_message(self, message_id: int, owner_id: int) -> int:
        """Bring a deleted message back; its room's id."""
        with db_errors("restoring a message"):
            room_id = self._owned_message(message_id, owner_id)
            self._q(Row.update(deleted_at=None).where(Row.id == message_id)).execute()
        return room_id

    def purge_message(self, message_id: int, owner_id: int) -> int:
        with db_errors("deleting a message for good"), self._db.atomic():
            room_id = self._owned_message(message_id, owner_id)
            self._delete_messages([message_id])
        return room_id

    def _delete_messages(self, ids: list[int]) -> None:
        """Delete messages for good; a prompt takes its answers along."""
        if not ids:
            return
        answers = [
            int(i)
            for (i,) in self._q(
                Row.select(Row.id).where(Row.parent.in_(ids) & (Row.role == "assistant")).tuples()
            )
        ]
        self._q(Row.delete().where(Row.id.in_(ids + answers))).execute()

    def deleted_rooms_of(self, owner_id: int, days: int) -> list[dict[str, Any]]:
        """A user's deleted rooms, for an administrator's restore."""
        listed: list[dict[str, Any]] = self.contents(owner_id, days)["rooms"]
        return listed

    def purge_expired(self, days: int, now: dt.datetime | None = None) -> int:
        """Delete for good what was deleted more than ``days`` days ago; how many rows."""
        cutoff = (now or utcnow()) - dt.timedelta(days=days)
        with db_errors("emptying the trash"), self._db.atomic():
            rooms = [
                int(i)
                for (i,) in self._q(Room.select(Room.id).where(Room.deleted_at < cutoff).tuples())
            ]
            removed = 0
            if rooms:
                removed += self._q(Row.delete().where(Row.room.in_(rooms))).execute()
                removed += self._q(Room.delete().where(Room.id.in_(rooms))).execute()
            messages = [
                int(i)
                for (i,) in self._q(Row.select(Row.id).where(Row.deleted_at < cutoff).tuples())
            ]
            before = len(messages)
            self._delete_messages(messages)
            removed += before
        return removed
