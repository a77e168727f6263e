"""The trash through the chat UI's JSON API, against a real gateway and database: deleted
rooms and answers are listed, restored or deleted for good by their owner only; what is older
than the system's ``trash_days`` is purged; exports leave deleted messages out; an
administrator restores a user's room from Manage → Users."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import Iterator

import pytest

from kuwa.accounts.models import Message, Room
from kuwa.rooms import Trash
from tests.stack import RedisServer, Stack
from tests.test_web_rooms import App
from tests.web import Browser, make_user, store_of


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("trash")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.executor("echo")
        s.executor("upper", transform="upper")
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture(scope="module")
def owner(stack: Stack) -> Iterator[App]:
    app = App(stack, "tina@example.com")
    yield app
    app.close()


@pytest.fixture(scope="module")
def other(stack: Stack) -> Iterator[App]:
    app = App(stack, "oscar@example.com")
    yield app
    app.close()


def answered(app: App, models: list[str], *prompts: str) -> tuple[int, list[dict[str, object]]]:
    room = app.room(models)
    sent = []
    for prompt in prompts:
        turn = app.send(room["id"], prompt)
        for answer in turn["answers"]:
            app.settled(room["id"], answer["id"])
        sent.append(turn)
    return room["id"], sent


def test_the_trash_is_the_owners_alone(owner: App, other: App) -> None:
    room, _ = answered(owner, ["echo"], "private")
    assert owner.post(f"/app/rooms/{room}/delete").status_code == 200
    assert owner.get(f"/app/rooms/{room}").status_code == 404  # gone from the rooms
    listed = owner.get("/app/trash").json()
    assert [r["id"] for r in listed["rooms"]] == [room]
    assert other.get("/app/trash").json()["rooms"] == []
    kept, turns = answered(owner, ["echo"], "keep me")
    answer = turns[0]["answers"][0]["id"]  # type: ignore[index]
    assert owner.post(f"/app/messages/{answer}/delete").status_code == 200
    # IDOR: another user can neither restore nor purge what is in the owner's trash.
    for path in (
        f"/app/trash/rooms/{room}/restore",
        f"/app/trash/rooms/{room}/purge",
        f"/app/trash/messages/{answer}/restore",
        f"/app/trash/messages/{answer}/purge",
    ):
        r = other.post(path)
        assert r.status_code == 404, (path, r.status_code)
    assert [r["id"] for r in owner.get("/app/trash").json()["rooms"]] == [room]
    # Not in the trash (a live room) is 404 too.
    assert owner.post(f"/app/trash/rooms/{kept}/purge").status_code == 404
    assert owner.post(f"/app/trash/rooms/{room}/restore").status_code == 200
    assert owner.get(f"/app/rooms/{room}").status_code == 200


def test_restore_and_delete_for_good(stack: Stack, owner: App) -> None:
    room, turns = answered(owner, ["echo", "upper"], "first", "second")
    upper = next(a for a in turns[1]["answers"] if a["model"] == "upper")  # type: ignore[union-attr]
    assert owner.post(f"/app/messages/{upper['id']}/delete").status_code == 200
    trash = owner.get("/app/trash").json()
    item = next(m for m in trash["messages"] if m["id"] == upper["id"])
    assert item["room"] == {"id": room, "title": "first"}
    assert item["model"] == "upper" and item["excerpt"] == "SECOND"
    assert item["purge_at"] - item["deleted"] == pytest.approx(trash["days"] * 86400)
    assert all(m["id"] != upper["id"] for m in owner.messages(room))
    assert owner.post(f"/app/trash/messages/{upper['id']}/restore").json() == {"room": room}
    assert any(m["id"] == upper["id"] for m in owner.messages(room))

    assert owner.post(f"/app/messages/{upper['id']}/delete").status_code == 200
    assert owner.post(f"/app/trash/messages/{upper['id']}/purge").status_code == 200
    assert all(m["id"] != upper["id"] for m in owner.get("/app/trash").json()["messages"])
    assert owner.post(f"/app/rooms/{room}/delete").status_code == 200
    assert owner.post(f"/app/trash/rooms/{room}/purge").status_code == 200
    assert all(r["id"] != room for r in owner.get("/app/trash").json()["rooms"])
    with store_of(stack) as store:
        assert Room.select().where(Room.id == room).bind(store.db).count() == 0
        assert Message.select().where(Message.room == room).bind(store.db).count() == 0


def test_the_trash_empties_itself_after_its_days(stack: Stack, owner: App) -> None:
    old, _ = answered(owner, ["echo"], "old news")
    fresh, _ = answered(owner, ["echo"], "fresh news")
    for room in (old, fresh):
        owner.post(f"/app/rooms/{room}/delete")
    with store_of(stack) as store:
        store.system.update(trash_days=7)
        long_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=8)
        Room.update(deleted_at=long_ago).where(Room.id == old).bind(store.db).execute()
    listed = owner.get("/app/trash").json()
    assert listed["days"] == 7
    ids = [r["id"] for r in listed["rooms"]]
    assert fresh in ids and old not in ids
    with store_of(stack) as store:
        assert Room.select().where(Room.id == old).bind(store.db).count() == 0
        assert Trash(store.db).purge_expired(7) == 0  # nothing left to purge
        store.system.update(trash_days=30)


def test_exports_leave_deleted_messages_out(owner: App) -> None:
    room, turns = answered(owner, ["echo", "upper"], "alpha", "beta", "gamma")
    beta_prompt = turns[1]["prompt"]["id"]  # type: ignore[index]
    upper_alpha = next(a for a in turns[0]["answers"] if a["model"] == "upper")  # type: ignore[union-attr]
    owner.post(f"/app/messages/{beta_prompt}/delete")
    owner.post(f"/app/messages/{upper_alpha['id']}/delete")
    tsv = owner.get(f"/app/rooms/{room}/export?format=tsv").text
    assert "beta" not in tsv.lower() and "ALPHA" not in tsv
    assert "alpha" in tsv and "gamma" in tsv and "GAMMA" in tsv  # the thread goes on
    data = json.loads(owner.get(f"/app/rooms/{room}/export?format=json").text)
    contents = json.dumps(data)
    assert "beta" not in contents.lower() and "ALPHA" not in contents and "gamma" in contents
    docx = owner.get(f"/app/rooms/{room}/export?format=docx")
    with zipfile.ZipFile(io.BytesIO(docx.content)) as word:
        body = word.read("word/document.xml").decode()
    assert "gamma" in body and "beta" not in body.lower() and "ALPHA" not in body


def test_an_administrator_restores_a_users_room(stack: Stack, owner: App) -> None:
    room, _ = answered(owner, ["echo"], "please restore me")
    owner.post(f"/app/rooms/{room}/delete")
    make_user(stack, "boss@example.com", admin=True)
    with store_of(stack) as store:
        user = store.accounts.find_user("tina@example.com")
        assert user is not None
    with Browser(stack.base_url) as admin:
        assert admin.login("boss@example.com").status_code == 303
        page = admin.get(f"/manage/users/{user.id}").text
        assert f'action="/manage/users/{user.id}/rooms/{room}/restore"' in page
        r = admin.post(f"/manage/users/{user.id}/rooms/{room}/restore")
        assert r.status_code == 303
        assert admin.get(r.headers["location"]).status_code == 200
        assert admin.post(f"/manage/users/{user.id}/rooms/{room}/restore").status_code == 404
    assert owner.get(f"/app/rooms/{room}").status_code == 200
