"""Who else may see a room: members (users and groups, as viewer or participant) and the
room's read-only link. Who may *do* what is decided by ``Rooms.role``/``Rooms.require``;
callers check the owner before changing anything here."""

from __future__ import annotations

import secrets
from typing import Any

from kuwa.accounts.models import Group, Room, RoomMember, User
from kuwa.accounts.repo import Repo, db_errors
from kuwa.errors import InvalidRequestError

ROLES = ("viewer", "participant")


class Sharing(Repo):
    def members(self, room_id: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for r in self._rows(
            RoomMember.select(RoomMember.role, User.id, User.name, User.email)
            .join(User, on=(RoomMember.user == User.id))
            .where(RoomMember.room == room_id)
        ):
            out.append(
                {
                    "kind": "user",
                    "id": r["id"],
                    "name": r["name"],
                    "email": r["email"],
                    "role": r["role"],
                }
            )
        for r in self._rows(
            RoomMember.select(RoomMember.role, Group.id, Group.name)
            .join(Group, on=(RoomMember.group == Group.id))
            .where(RoomMember.room == room_id)
        ):
            out.append({"kind": "group", "id": r["id"], "name": r["name"], "role": r["role"]})
        return out

    def share(self, room_id: int, *, user_id: int | None, group_id: int | None, role: str) -> None:
        """Share with a user or a group as ``role``; role "none" takes the share back."""
        if role not in (*ROLES, "none"):
            raise InvalidRequestError("role must be viewer, participant or none", param="role")
        where = (RoomMember.room == room_id) & (
            (RoomMember.user == user_id) if user_id is not None else (RoomMember.group == group_id)
        )
        with db_errors("sharing a room"), self._db.atomic():
            self._q(RoomMember.delete().where(where)).execute()
            if role != "none":
                self._q(
                    RoomMember.insert(room=room_id, user=user_id, group=group_id, role=role)
                ).execute()

    def set_link(self, room_id: int, enabled: bool) -> str | None:
        """Turn the room's read-only link on (a new secret each time) or off."""
        token = secrets.token_urlsafe(18) if enabled else None
        with db_errors("changing the room's link"):
            self._q(Room.update(share_token=token).where(Room.id == room_id)).execute()
        return token

    def by_link(self, token: str) -> int | None:
        """The live room a read-only link opens, or None."""
        if not token or len(token) > 64:
            return None
        with db_errors("opening a link"):
            rows = list(
                self._q(
                    Room.select(Room.id)
                    .where((Room.share_token == token) & Room.deleted_at.is_null())
                    .tuples()
                )
            )
        return int(rows[0][0]) if rows else None
