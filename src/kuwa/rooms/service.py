"""Rooms and their messages: prompts, answer versions, edit branches, answer jobs.

Synchronous like the other database services (callers use a thread pool); returns plain
JSON-ready dicts in the shapes of docs/web-app-api.md. Access is checked here, once, by
:meth:`Rooms.role`: a room that is not yours and not shared with you does not exist (404).
Beside it, on the same database: ``sharing.Sharing`` (members, the read-only link),
``feedback.Feedbacks`` (ratings) and ``transfer.Transfer`` (export and import of a thread).
"""

from __future__ import annotations

from typing import Any

import orjson
import peewee

from kuwa import keys
from kuwa.accounts.models import ArenaBattle, Feedback, Group, Room, RoomMember, User, utcnow
from kuwa.accounts.models import Message as Row
from kuwa.accounts.repo import Repo, db_errors
from kuwa.errors import ConflictError, InvalidRequestError, NotFoundError, PermissionDeniedError
from kuwa.rooms.shapes import arena_mask, masked, message_json, timestamp
from kuwa.rooms.sharing import Sharing
from kuwa.rooms.titles import make_title

RANK = {"viewer": 1, "participant": 2, "owner": 3}
MAX_MODELS = 8
MAX_PROMPT = 100_000


class Rooms(Repo):
    # --- access -------------------------------------------------------------------------
    def role(self, room_id: int, user_id: int, group: str | None) -> str | None:
        """owner, participant, viewer, or None when the user may not see the room."""
        with db_errors("reading a room"):
            rows = self._rows(
                Room.select(Room.owner).where((Room.id == room_id) & Room.deleted_at.is_null())
            )
            if not rows:
                return None
            if rows[0]["owner"] == user_id:
                return "owner"
            where = RoomMember.user == user_id
            if group is not None:
                where = where | (
                    RoomMember.group.in_(
                        Group.select(Group.id).where(
                            (Group.name == group) & Group.deleted_at.is_null()
                        )
                    )
                )
            roles = [
                r
                for (r,) in self._q(
                    RoomMember.select(RoomMember.role)
                    .where((RoomMember.room == room_id) & where)
                    .tuples()
                )
            ]
        return max(roles, key=RANK.__getitem__) if roles else None

    def require(self, room_id: int, user_id: int, group: str | None, at_least: str) -> str:
        role = self.role(room_id, user_id, group)
        if role is None:
            raise NotFoundError(f"There is no room {room_id} of yours.", param="room")
        if RANK[role] < RANK[at_least]:
            raise PermissionDeniedError(
                "Only the room's owner may do that."
                if at_least == "owner"
                else "You may only watch this room.",
                code="room_role",
            )
        return role

    def owner_of(self, room_id: int) -> int:
        with db_errors("reading a room"):
            rows = list(
                self._q(
                    Room.select(Room.owner)
                    .where((Room.id == room_id) & Room.deleted_at.is_null())
                    .tuples()
                )
            )
        if not rows:
            raise NotFoundError(f"There is no room {room_id}.", param="room")
        return int(rows[0][0])

    def room_of(self, message_id: int) -> int:
        with db_errors("reading a message"):
            rows = list(
                self._q(
                    Row.select(Row.room)
                    .where((Row.id == message_id) & Row.deleted_at.is_null())
                    .tuples()
                )
            )
        if not rows:
            raise NotFoundError(f"There is no message {message_id} of yours.", param="message")
        return int(rows[0][0])

    # --- rooms --------------------------------------------------------------------------
    def create(self, owner_id: int, models: list[str], *, chained: bool = True) -> int:
        models = check_models(models)
        with db_errors("creating a room"):
            room_id = self._q(
                Room.insert(
                    owner=owner_id,
                    models=orjson.dumps(models).decode(),
                    chained=chained,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            ).execute()
        return int(room_id)

    def list_rooms(self, user_id: int, group: str | None, search: str = "") -> list[dict[str, Any]]:
        group_ids = Group.select(Group.id).where((Group.name == group) & Group.deleted_at.is_null())
        shared = RoomMember.select(RoomMember.room).where(
            (RoomMember.user == user_id) | RoomMember.group.in_(group_ids)
        )
        query = Room.select().where(
            Room.deleted_at.is_null() & ((Room.owner == user_id) | Room.id.in_(shared))
        )
        if search.strip():
            query = query.where(Room.title.contains(search.strip()))
        with db_errors("listing rooms"):
            rows = self._rows(query.order_by(Room.updated_at.desc()).limit(200))
            out = []
            for row in rows:
                role = "owner" if row["owner"] == user_id else self.role(row["id"], user_id, group)
                out.append(
                    {
                        "id": row["id"],
                        "title": row["title"],
                        "models": masked(orjson.loads(row["models"]), arena_mask(row)),
                        "arena": bool(row["arena"]),
                        "updated": timestamp(row["updated_at"]),
                        "owner": row["owner"] == user_id,
                        "role": role,
                    }
                )
        return out

    def get(self, room_id: int, user_id: int, *, with_messages: bool = True) -> dict[str, Any]:
        with db_errors("reading a room"):
            rows = self._rows(
                Room.select(Room, User.name.alias("owner_name"))
                .join(User, on=(Room.owner == User.id))
                .where(Room.id == room_id)
            )
            if not rows:
                raise NotFoundError(f"There is no room {room_id} of yours.", param="room")
            row = rows[0]
            mask = arena_mask(row)
            room: dict[str, Any] = {
                "id": row["id"],
                "title": row["title"],
                "models": masked(orjson.loads(row["models"]), mask),
                "arena": bool(row["arena"]),
                "revealed": bool(row["revealed"]),
                "vote": self._vote(room_id) if row["arena"] and row["revealed"] else None,
                "chained": bool(row["chained"]),
                # Settings name their models: none shown (or kept) before an arena's vote.
                "model_settings": {} if mask else orjson.loads(row["model_settings"] or "{}"),
                "owner": {"id": row["owner"], "name": row["owner_name"]},
                "members": Sharing(self._db).members(room_id),
                "link": (
                    f"/shared/{row['share_token']}"
                    if row["share_token"] and row["owner"] == user_id
                    else None
                ),
            }
            if with_messages:
                room["messages"] = self.messages(room_id, user_id)
        return room

    def _vote(self, room_id: int) -> str | None:
        """How the owner voted in a revealed arena battle (a, b, tie or bad)."""
        rows = self._rows(
            ArenaBattle.select(ArenaBattle.outcome).where(ArenaBattle.room == room_id)
        )
        return str(rows[0]["outcome"]) if rows else None

    def models_of(self, room_id: int) -> list[str]:
        """The room's models as they really are (never masked): for running answers."""
        rows = self._rows(Room.select(Room.models).where(Room.id == room_id))
        models: list[str] = orjson.loads(rows[0]["models"]) if rows else []
        return models

    def mask_of(self, room_id: int) -> dict[str, str] | None:
        rows = self._rows(
            Room.select(Room.arena, Room.revealed, Room.models).where(Room.id == room_id)
        )
        return arena_mask(rows[0]) if rows else None

    def update(
        self,
        room_id: int,
        *,
        title: str | None = None,
        chained: bool | None = None,
        models: list[str] | None = None,
        model_settings: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """``model_settings``: each model's settings, checked (kuwa.rooms.model_settings);
        a changed model list drops the settings of models no longer in it."""
        changes: dict[str, Any] = {"updated_at": utcnow()}
        if title is not None:
            title = " ".join(title.split())[:200]
            if not title:
                raise InvalidRequestError("A room title cannot be empty.", param="title")
            changes["title"] = title
        if chained is not None:
            changes["chained"] = bool(chained)
        with db_errors("updating a room"):
            if models is not None:
                arena = self._rows(Room.select(Room.arena).where(Room.id == room_id))
                if arena and arena[0]["arena"]:
                    raise ConflictError(
                        "An arena battle keeps the two models it drew; start a new battle "
                        "for another pair.",
                        param="models",
                    )
                changes["models"] = orjson.dumps(check_models(models)).decode()
            if model_settings is not None or models is not None:
                rows = self._rows(
                    Room.select(Room.arena, Room.model_settings).where(Room.id == room_id)
                )
                if model_settings is not None and rows and rows[0]["arena"]:
                    raise ConflictError(
                        "An arena battle has no model settings: they would name its models.",
                        param="model_settings",
                    )
                kept = model_settings
                if kept is None:
                    kept = orjson.loads(rows[0]["model_settings"] or "{}") if rows else {}
                if models is not None:
                    kept = {code: s for code, s in kept.items() if code in models}
                changes["model_settings"] = orjson.dumps(kept).decode()
            self._q(Room.update(**changes).where(Room.id == room_id)).execute()

    def settings_of(self, room_id: int, code: str) -> dict[str, Any]:
        """One model's settings in a room (an empty dict when it has none)."""
        rows = self._rows(Room.select(Room.model_settings).where(Room.id == room_id))
        found: dict[str, Any] = orjson.loads(rows[0]["model_settings"] or "{}") if rows else {}
        settings: dict[str, Any] = found.get(code, {})
        return settings

    def delete(self, room_id: int) -> None:
        with db_errors("deleting a room"):
            self._q(Room.update(deleted_at=utcnow()).where(Room.id == room_id)).execute()

    # --- messages -----------------------------------------------------------------------
    def messages(self, room_id: int, user_id: int) -> list[dict[str, Any]]:
        rows = self._rows(
            Row.select(Row, User.name.alias("author_name"))
            .join(User, peewee.JOIN.LEFT_OUTER, on=(Row.author == User.id))
            .where((Row.room == room_id) & Row.deleted_at.is_null())
            .order_by(Row.id)
        )
        mine = {
            f["message"]: f
            for f in self._rows(
                Feedback.select()
                .join(Row)
                .where((Row.room == room_id) & (Feedback.user == user_id))
            )
        }
        mask = self.mask_of(room_id)
        return [message_json(row, mine.get(row["id"]), mask) for row in rows]

    def message(self, message_id: int, user_id: int) -> dict[str, Any]:
        rows = self._rows(
            Row.select(Row, User.name.alias("author_name"))
            .join(User, peewee.JOIN.LEFT_OUTER, on=(Row.author == User.id))
            .where(Row.id == message_id)
        )
        if not rows:
            raise NotFoundError(f"There is no message {message_id}.", param="message")
        fb = self._rows(
            Feedback.select().where((Feedback.message == message_id) & (Feedback.user == user_id))
        )
        out = message_json(rows[0], fb[0] if fb else None, self.mask_of(int(rows[0]["room"])))
        if rows[0]["deleted_at"] is not None:
            out["deleted"] = True
        return out

    def raw(self, message_id: int) -> dict[str, Any]:
        rows = self._rows(Row.select().where((Row.id == message_id) & Row.deleted_at.is_null()))
        if not rows:
            raise NotFoundError(f"There is no message {message_id}.", param="message")
        return rows[0]

    def raw_or_none(self, message_id: int) -> dict[str, Any] | None:
        rows = self._rows(Row.select().where((Row.id == message_id) & Row.deleted_at.is_null()))
        return rows[0] if rows else None

    def cancel_unstarted(self, room_id: int) -> list[int]:
        """Mark answers that wait to start (no job yet) cancelled; their ids."""
        where = (
            (Row.room == room_id)
            & (Row.status == "running")
            & Row.job_id.is_null()
            & (Row.role == "assistant")
        )
        with db_errors("stopping"):
            ids = [int(i) for (i,) in self._q(Row.select(Row.id).where(where).tuples())]
            if ids:
                self._q(Row.update(status="cancelled").where(Row.id.in_(ids))).execute()
        return ids

    def add_prompt(
        self,
        room_id: int,
        author_id: int,
        content: str,
        models: list[str],
        *,
        parent: int | None = None,
        branch: bool = False,
        citations: dict[str, list[dict[str, Any]]] | None = None,
    ) -> tuple[int, list[int]]:
        """A prompt and one running answer per model. ``branch``: ``parent`` is given (an
        edit makes a sibling of the edited prompt); otherwise the prompt follows the thread.
        ``citations``: per model, the passages of documents its answer is to come from."""
        if not content.strip():
            raise InvalidRequestError("The prompt is empty.", param="content")
        if len(content) > MAX_PROMPT:
            raise InvalidRequestError("The prompt is too long.", param="content")
        with db_errors("sending a prompt"), self._db.atomic():
            room = self._rows(Room.select().where(Room.id == room_id))[0]
            if not branch:
                thread = self.thread(room_id)
                parent = thread[-1]["id"] if thread else None
            self._q(
                Row.update(selected=False).where(
                    (Row.room == room_id)
                    & (Row.role == "user")
                    & (Row.parent.is_null() if parent is None else Row.parent == parent)
                )
            ).execute()
            now = utcnow()
            prompt_id = int(
                self._q(
                    Row.insert(
                        room=room_id,
                        parent=parent,
                        role="user",
                        author=author_id,
                        content=content,
                        status="done",
                        chain=room["chained"],
                        selected=True,
                        created_at=now,
                    )
                ).execute()
            )
            answers = [
                int(
                    self._q(
                        Row.insert(
                            room=room_id,
                            parent=prompt_id,
                            role="assistant",
                            model=code,
                            content="",
                            status="running",
                            chain=room["chained"],
                            selected=True,
                            citations=_citations(citations, code),
                            created_at=now,
                        )
                    ).execute()
                )
                for code in models
            ]
            changes: dict[str, Any] = {"updated_at": now}
            if not room["title"]:
                changes["title"] = make_title(content)
            self._q(Room.update(**changes).where(Room.id == room_id)).execute()
        return prompt_id, answers

    def regenerate(self, answer_id: int) -> int:
        with db_errors("regenerating"), self._db.atomic():
            old = self.raw(answer_id)
            if old["role"] != "assistant":
                raise InvalidRequestError("Only answers can be regenerated.", param="message")
            self._unselect_versions(old)
            return int(
                self._q(
                    Row.insert(
                        room=old["room"],
                        parent=old["parent"],
                        role="assistant",
                        model=old["model"],
                        content="",
                        status="running",
                        chain=old["chain"],
                        selected=True,
                        citations=old["citations"],  # the same passages again
                        created_at=utcnow(),
                    )
                ).execute()
            )

    def select(self, message_id: int) -> None:
        with db_errors("choosing a version"), self._db.atomic():
            row = self.raw(message_id)
            self._unselect_versions(row)
            self._q(Row.update(selected=True).where(Row.id == message_id)).execute()

    def _unselect_versions(self, row: dict[str, Any]) -> None:
        same_parent = Row.parent.is_null() if row["parent"] is None else Row.parent == row["parent"]
        where = (Row.room == row["room"]) & (Row.role == row["role"]) & same_parent
        if row["role"] == "assistant":
            where = where & (Row.model == row["model"])
        self._q(Row.update(selected=False).where(where)).execute()

    def delete_message(self, message_id: int) -> None:
        with db_errors("deleting a message"):
            self._q(Row.update(deleted_at=utcnow()).where(Row.id == message_id)).execute()

    def thread(self, room_id: int) -> list[dict[str, Any]]:
        """The selected prompts, first to last."""
        prompts = self._rows(
            Row.select()
            .where(
                (Row.room == room_id)
                & (Row.role == "user")
                & Row.deleted_at.is_null()
                & (Row.selected == True)  # noqa: E712
            )
            .order_by(Row.id)
        )
        by_parent = {p["parent"]: p for p in prompts}
        out: list[dict[str, Any]] = []
        current = by_parent.get(None)
        while current is not None and len(out) <= len(prompts):
            out.append(current)
            current = by_parent.get(current["id"])
        return out

    def history(self, answer_id: int) -> list[tuple[str, str]]:
        """(role, content) turns an answer's model sees: its own thread when chained."""
        return self.history_of(self.raw(answer_id))

    def history_of(self, answer: dict[str, Any]) -> list[tuple[str, str]]:
        prompt = self._rows(Row.select().where(Row.id == answer["parent"]))[0]
        if not answer["chain"]:
            return [("user", prompt["content"])]
        # The path of prompts leading to this one (whatever is selected elsewhere).
        path = [prompt]
        while path[0]["parent"] is not None and len(path) < 10_000:
            rows = self._rows(Row.select().where(Row.id == path[0]["parent"]))
            if not rows:
                break
            path.insert(0, rows[0])
        turns: list[tuple[str, str]] = []
        for p in path[:-1]:
            if p["deleted_at"] is not None:
                continue
            reply = self._rows(
                Row.select()
                .where(
                    (Row.parent == p["id"])
                    & (Row.role == "assistant")
                    & (Row.model == answer["model"])
                    & (Row.selected == True)  # noqa: E712
                    & Row.deleted_at.is_null()
                    & (Row.status == "done")
                )
                .limit(1)
            )
            turns.append(("user", p["content"]))
            if reply and reply[0]["content"]:
                turns.append(("assistant", reply[0]["content"]))
            else:
                turns.pop()  # a prompt this model never answered is not part of its thread
        turns.append(("user", prompt["content"]))
        return turns

    def set_job(self, message_id: int, job_id: str, *, translation: bool = False) -> None:
        field = "translation_job" if translation else "job_id"
        with db_errors("recording a job"):
            self._q(Row.update(**{field: job_id}).where(Row.id == message_id)).execute()

    def finish(self, message_id: int, content: str, status: str, error: str | None = None) -> None:
        with db_errors("saving an answer"):
            self._q(
                Row.update(content=content, status=status, error=error).where(Row.id == message_id)
            ).execute()

    def start_translation(self, message_id: int, lang: str) -> None:
        with db_errors("translating"):
            self._q(
                Row.update(
                    translation="",
                    translation_lang=lang,
                    translation_status="running",
                    translation_job=None,
                ).where(Row.id == message_id)
            ).execute()

    def finish_translation(self, message_id: int, content: str, status: str) -> None:
        with db_errors("saving a translation"):
            self._q(
                Row.update(translation=content, translation_status=status).where(
                    Row.id == message_id
                )
            ).execute()

    def running(self, room_id: int) -> list[dict[str, Any]]:
        """Answers and translations in flight: id, job, kind."""
        rows = self._rows(
            Row.select(
                Row.id, Row.job_id, Row.status, Row.translation_job, Row.translation_status
            ).where(
                (Row.room == room_id)
                & Row.deleted_at.is_null()
                & ((Row.status == "running") | (Row.translation_status == "running"))
            )
        )
        out = []
        for r in rows:
            if r["status"] == "running" and r["job_id"]:
                out.append({"id": r["id"], "job": r["job_id"], "kind": "answer"})
            if r["translation_status"] == "running" and r["translation_job"]:
                out.append({"id": r["id"], "job": r["translation_job"], "kind": "translation"})
        return out


def _citations(by_model: dict[str, list[dict[str, Any]]] | None, code: str) -> str | None:
    found = (by_model or {}).get(code)
    return orjson.dumps(found).decode() if found else None


def check_models(models: list[str]) -> list[str]:
    codes = list(dict.fromkeys(m for m in models if isinstance(m, str)))
    if not codes:
        raise InvalidRequestError("Choose at least one model.", param="models")
    if len(codes) > MAX_MODELS:
        raise InvalidRequestError(f"A room has at most {MAX_MODELS} models.", param="models")
    if not all(keys.valid_access_code(c) for c in codes):
        raise InvalidRequestError("That is not a model's access code.", param="models")
    return codes
