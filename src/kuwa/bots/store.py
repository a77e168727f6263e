"""Bots and the bot store: who may create, see, change and delete a bot (Kuwa's ``Store_*``
permissions), and how a bot becomes a job (its base model plus its Modelfile).

Visibility: ``system`` (made by administrators, for everyone allowed to discover system bots),
``community`` (everyone allowed to discover community bots), ``group`` (the members of the
owner's group), ``private`` (the owner only). A bot nobody may see does not exist (404).
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import peewee

from kuwa.accounts import UserInfo
from kuwa.accounts.models import Bot, Group, User, utcnow
from kuwa.accounts.repo import Repo, db_errors
from kuwa.errors import InvalidRequestError, NotFoundError, PermissionDeniedError

VISIBILITIES = ("system", "community", "group", "private")
CREATE = {
    "system": "tab_Manage",
    "community": "Store_create_community_bot",
    "group": "Store_create_group_bot",
    "private": "Store_create_private_bot",
}
DISCOVER = {v: f"Store_read_discover_{v}_bots" for v in VISIBILITIES}
MODIFY = "Store_update_modify_bot"
DELETE = "Store_delete_delete_bot"
READ_ANY_MODELFILE = "Store_read_any_modelfile"
BOT_PREFIX = "bot:"
MAX_AVATAR_CHARS = 700_000


def avatar_url(data: bytes | None, kind: str | None) -> str:
    """An avatar image as the data: URL a bot keeps ("" for none)."""
    if not data or not kind:
        return ""
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def avatar_bytes(url: str) -> tuple[bytes | None, str | None]:
    """(image bytes, content type) of a bot's data: URL avatar, or (None, None)."""
    if not url.startswith("data:image/") or ";base64," not in url:
        return None, None
    head, _, payload = url.partition(";base64,")
    return base64.b64decode(payload), head[len("data:") :]


def bot_code(bot_id: int) -> str:
    """How a room names a bot among its models."""
    return f"{BOT_PREFIX}{bot_id}"


def bot_id_of(code: str) -> int | None:
    if code.startswith(BOT_PREFIX) and code[len(BOT_PREFIX) :].isdigit():
        return int(code[len(BOT_PREFIX) :])
    return None


class Bots(Repo):
    def visible(self, user: UserInfo, search: str = "") -> list[dict[str, Any]]:
        """The bots ``user`` may discover, most used first."""
        query = (
            Bot.select(Bot, User.name.alias("owner_name"), Group.name.alias("group_name"))
            .join(User, peewee.JOIN.LEFT_OUTER, on=(Bot.owner == User.id))
            .switch(Bot)
            .join(Group, peewee.JOIN.LEFT_OUTER, on=(Bot.group == Group.id))
            .where(Bot.deleted_at.is_null())
        )
        if search.strip():
            needle = search.strip()
            query = query.where(Bot.name.contains(needle) | Bot.description.contains(needle))
        with db_errors("listing bots"):
            rows = self._rows(query.order_by(Bot.uses.desc(), Bot.id.desc()))
        return [self._public(r, user) for r in rows if _may_see(r, user)]

    def get(self, bot_id: int, user: UserInfo) -> dict[str, Any]:
        row = self._row(bot_id)
        if row is None or not _may_see(row, user):
            raise NotFoundError(f"There is no bot {bot_id} you may see.", param="bot")
        return self._public(row, user)

    def for_job(self, bot_id: int, user: UserInfo) -> tuple[str, str]:
        """(base access code, Modelfile) to run the bot for ``user``; 404 when hidden."""
        row = self._row(bot_id)
        if row is None or not _may_see(row, user):
            raise NotFoundError(f"There is no bot {bot_id} you may use.", param="model")
        return str(row["base"]), str(row["modelfile"])

    def create(self, user: UserInfo, **fields: Any) -> int:
        visibility = str(fields.get("visibility") or "private")
        if visibility not in VISIBILITIES:
            raise InvalidRequestError(
                f"visibility must be one of {', '.join(VISIBILITIES)}", param="visibility"
            )
        if not user.can(CREATE[visibility]):
            raise PermissionDeniedError(
                f"Your account may not create {visibility} bots.", code="bot_create"
            )
        values = _check(fields, creating=True)
        group_id = None
        if visibility == "group":
            if user.group is None:
                raise InvalidRequestError("You are in no group to share a bot with.")
            found = list(self._q(Group.select(Group.id).where(Group.name == user.group).tuples()))
            group_id = int(found[0][0]) if found else None
        now = utcnow()
        with db_errors("creating a bot"):
            return int(
                self._q(
                    Bot.insert(
                        owner=user.id,
                        group=group_id,
                        visibility=visibility,
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                ).execute()
            )

    def update(self, bot_id: int, user: UserInfo, **fields: Any) -> None:
        row = self._editable(bot_id, user, MODIFY)
        values = _check(fields, creating=False)
        if "visibility" in fields and fields["visibility"] != row["visibility"]:
            visibility = str(fields["visibility"])
            if visibility not in VISIBILITIES or not user.can(CREATE[visibility]):
                raise PermissionDeniedError(f"Your account may not make {visibility} bots.")
            values["visibility"] = visibility
        values["updated_at"] = utcnow()
        with db_errors("changing a bot"):
            self._q(Bot.update(**values).where(Bot.id == bot_id)).execute()

    def delete(self, bot_id: int, user: UserInfo) -> None:
        self._editable(bot_id, user, DELETE)
        with db_errors("deleting a bot"):
            self._q(Bot.update(deleted_at=utcnow()).where(Bot.id == bot_id)).execute()

    def count_use(self, bot_id: int) -> None:
        with db_errors("counting a bot's use"):
            self._q(Bot.update(uses=Bot.uses + 1).where(Bot.id == bot_id)).execute()

    def find_by_name(self, name: str) -> int | None:
        with db_errors("finding a bot"):
            rows = list(
                self._q(
                    Bot.select(Bot.id)
                    .where((Bot.name == name) & Bot.deleted_at.is_null())
                    .order_by(Bot.id.desc())
                    .tuples()
                )
            )
        return int(rows[0][0]) if rows else None

    def check_editable(self, bot_id: int, user: UserInfo) -> None:
        """404 for a bot the user may not see, 403 when they may not change it."""
        self._editable(bot_id, user, MODIFY)

    def raw(self, bot_id: int) -> dict[str, Any]:
        row = self._row(bot_id)
        if row is None:
            raise NotFoundError(f"There is no bot {bot_id}.", param="bot")
        return row

    # --- helpers ------------------------------------------------------------------------
    def _row(self, bot_id: int) -> dict[str, Any] | None:
        with db_errors("reading a bot"):
            rows = self._rows(
                Bot.select(Bot, User.name.alias("owner_name"), Group.name.alias("group_name"))
                .join(User, peewee.JOIN.LEFT_OUTER, on=(Bot.owner == User.id))
                .switch(Bot)
                .join(Group, peewee.JOIN.LEFT_OUTER, on=(Bot.group == Group.id))
                .where((Bot.id == bot_id) & Bot.deleted_at.is_null())
            )
        return rows[0] if rows else None

    def _editable(self, bot_id: int, user: UserInfo, permission: str) -> dict[str, Any]:
        row = self._row(bot_id)
        if row is None or not _may_see(row, user):
            raise NotFoundError(f"There is no bot {bot_id} you may see.", param="bot")
        if user.is_admin:
            return row
        if row["owner"] != user.id or not user.can(permission):
            raise PermissionDeniedError("Only the bot's owner may do that.", code="bot_owner")
        return row

    def _public(self, row: dict[str, Any], user: UserInfo) -> dict[str, Any]:
        mine = row["owner"] == user.id
        return {
            "id": row["id"],
            "code": bot_code(row["id"]),
            "name": row["name"],
            "description": row["description"],
            "base": row["base"],
            "avatar": row["avatar"],
            "react_buttons": [b for b in str(row["react_buttons"]).split(",") if b],
            "visibility": row["visibility"],
            "group": row.get("group_name"),
            "owner": row.get("owner_name"),
            "mine": mine,
            "uses": row["uses"],
            "created": _ts(row["created_at"]),
            # The Modelfile is the owner's work: others need Store_read_any_modelfile.
            "modelfile": row["modelfile"] if mine or user.can(READ_ANY_MODELFILE) else None,
            "can_edit": user.is_admin or (mine and user.can(MODIFY)),
            "can_delete": user.is_admin or (mine and user.can(DELETE)),
        }


def _may_see(row: dict[str, Any], user: UserInfo) -> bool:
    visibility = str(row["visibility"])
    if row["owner"] == user.id or user.is_admin:
        return True
    if not user.can(DISCOVER.get(visibility, "")):
        return False
    if visibility == "group":
        return row.get("group_name") is not None and row.get("group_name") == user.group
    return visibility in ("system", "community")


def _check(fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in ("name", "description", "base", "modelfile", "avatar", "react_buttons"):
        if key in fields and fields[key] is not None:
            values[key] = fields[key]
    if creating or "name" in values:
        name = " ".join(str(values.get("name", "")).split())
        if not name or len(name) > 200:
            raise InvalidRequestError("A bot needs a name of 1 to 200 characters.", param="name")
        values["name"] = name
    if creating and not str(values.get("base", "")).strip():
        raise InvalidRequestError("Choose the model the bot is built on.", param="base")
    if "avatar" in values:
        avatar = str(values["avatar"])
        if avatar and (not avatar.startswith("data:image/") or len(avatar) > MAX_AVATAR_CHARS):
            raise InvalidRequestError("The avatar must be a small image.", param="avatar")
    if "react_buttons" in values and isinstance(values["react_buttons"], list):
        values["react_buttons"] = ",".join(str(b) for b in values["react_buttons"])
    if values.get("modelfile"):
        from kuwa.executors.modelfile import Modelfile  # pure Python, no engine

        Modelfile.parse(str(values["modelfile"]))  # ModelfileError names the line
    return values


def _ts(value: dt.datetime | None) -> float | None:
    return None if value is None else value.replace(tzinfo=dt.UTC).timestamp()
