"""A room's conversation in and out: the thread to export (JSON, TSV, Word) and imported rows
appended to it (``kuwa.rooms.formats`` reads and writes the files themselves)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import peewee

from kuwa.accounts.models import Message as Row
from kuwa.accounts.models import Room, User, utcnow
from kuwa.accounts.repo import Repo, db_errors
from kuwa.errors import InvalidRequestError
from kuwa.rooms.service import Rooms
from kuwa.rooms.titles import make_title


class Transfer(Repo):
    def export_thread(self, room_id: int) -> list[dict[str, Any]]:
        """The conversation to export: the selected path of prompts, each followed by every
        model's selected answer. Deleted messages (in the trash) are left out; the thread
        goes on past a deleted prompt."""
        rows = self._rows(
            Row.select(Row, User.name.alias("author_name"))
            .join(User, peewee.JOIN.LEFT_OUTER, on=(Row.author == User.id))
            .where(Row.room == room_id)
            .order_by(Row.id)
        )
        prompts = {r["parent"]: r for r in rows if r["role"] == "user" and r["selected"]}
        answers: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            if r["role"] == "assistant" and r["selected"]:
                answers.setdefault(int(r["parent"]), []).append(r)
        out: list[dict[str, Any]] = []
        current = prompts.get(None)
        seen = 0
        while current is not None and seen <= len(rows):
            seen += 1
            if current["deleted_at"] is None:
                out.append(current)
                out.extend(
                    a for a in answers.get(int(current["id"]), []) if a["deleted_at"] is None
                )
            current = prompts.get(current["id"])
        return out

    def import_rows(
        self,
        room_id: int,
        author_id: int,
        rows: Iterable[Any],
        models: list[str],
        chained: bool,
        pending: list[tuple[int, str]],
    ) -> None:
        """Append imported rows to the room's thread. Assistant rows with content are kept as
        given (attributed to their model); a prompt with no answer after it gets a pending
        answer for every model of the room; those (answer id, model) go into ``pending``, in
        order. Rows are written as they come: an error part-way (a bad line) is raised after
        the prompt before it was closed, so nothing before the error is lost."""
        thread = Rooms(self._db).thread(room_id)
        state: dict[str, Any] = {
            "parent": thread[-1]["id"] if thread else None,
            "prompt": None,
            "answered": set(),
            "chain": chained,
        }

        def close_prompt() -> None:
            if state["prompt"] is None or state["answered"]:
                return
            for code in models:
                answer_id = int(
                    self._q(
                        Row.insert(
                            room=room_id,
                            parent=state["prompt"],
                            role="assistant",
                            model=code,
                            content="",
                            status="running",
                            chain=state["chain"],
                            selected=True,
                            created_at=utcnow(),
                        )
                    ).execute()
                )
                pending.append((answer_id, code))
            state["answered"] = {"(pending)"}

        with db_errors("importing"):
            try:
                for row in rows:
                    if row.role == "user":
                        with self._db.atomic():
                            close_prompt()
                            self._import_prompt(room_id, author_id, row, chained, state)
                    else:
                        self._import_answer(row, state)
            finally:
                with self._db.atomic():
                    close_prompt()
                    self._q(Room.update(updated_at=utcnow()).where(Room.id == room_id)).execute()

    def _import_prompt(
        self, room_id: int, author_id: int, row: Any, chained: bool, state: dict[str, Any]
    ) -> None:
        parent = state["parent"]
        chain = chained if row.chain is None else bool(row.chain)
        self._q(
            Row.update(selected=False).where(
                (Row.room == room_id)
                & (Row.role == "user")
                & (Row.parent.is_null() if parent is None else Row.parent == parent)
            )
        ).execute()
        prompt = int(
            self._q(
                Row.insert(
                    room=room_id,
                    parent=parent,
                    role="user",
                    author=author_id,
                    content=row.content,
                    status="done",
                    chain=chain,
                    selected=True,
                    created_at=utcnow(),
                )
            ).execute()
        )
        state.update(parent=prompt, prompt=prompt, answered=set(), chain=chain)
        room = self._rows(Room.select(Room.title).where(Room.id == room_id))
        if room and not room[0]["title"]:
            self._q(Room.update(title=make_title(row.content)).where(Room.id == room_id)).execute()

    def _import_answer(self, row: Any, state: dict[str, Any]) -> None:
        prompt = state["prompt"]
        if prompt is None:
            raise InvalidRequestError(
                f"line {row.line}: an answer must come after a prompt", param="file"
            )
        code = row.model or ""
        self._q(
            Row.update(selected=False).where((Row.parent == prompt) & (Row.model == code))
        ).execute()
        self._q(
            Row.insert(
                room=self._rows(Row.select(Row.room).where(Row.id == prompt))[0]["room"],
                parent=prompt,
                role="assistant",
                model=code,
                content=row.content,
                status="done",
                chain=state["chain"] if row.chain is None else bool(row.chain),
                selected=True,
                created_at=utcnow(),
            )
        ).execute()
        state["answered"].add(code)


def room_docx_bytes(room: dict[str, Any], thread: list[dict[str, Any]]) -> bytes:
    """A room's :meth:`Transfer.export_thread` as a Word document
    (``kuwa.rooms.docx_export.room_docx``)."""
    import datetime as dt

    from kuwa.rooms import docx_export

    def when(row: dict[str, Any]) -> dt.datetime:
        created: dt.datetime = row["created_at"]
        return created.replace(tzinfo=dt.UTC)

    people = sorted({str(m["author_name"]) for m in thread if m["role"] == "user"})
    models = list(dict.fromkeys(str(m["model"]) for m in thread if m["role"] == "assistant"))
    messages = [
        docx_export.DocMessage(
            role=m["role"],
            author=str(m["author_name"] or "deleted user")
            if m["role"] == "user"
            else str(m["model"]),
            model=m["model"],
            content=m["content"],
            created=when(m),
        )
        for m in thread
    ]
    return docx_export.room_docx(
        room["title"] or "Kuwa chat", dt.datetime.now(dt.UTC), people + models, messages
    )
