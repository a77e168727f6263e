"""The blinded arena: no byte the browser gets before the vote names a model; the vote
reveals them; answers that name their model are not ranked; the leaderboard."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator

import pytest
from httpx_sse import connect_sse

from tests.stack import RedisServer, Stack, wait_until
from tests.test_web_rooms import App
from tests.web import store_of

SECRET_NAMES = ("echo", "upper", "Echo Model", "Upper Model")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("arena")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.executor("echo")
        s.executor("upper", transform="upper")
        s.base_url = s.gateway()
        with store_of(s) as store:
            store.catalog.create("echo", "Echo Model")
            store.catalog.create("upper", "Upper Model")
            store.system.update(arena_pool="echo:1, upper:1")
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture(scope="module")
def voter(stack: Stack) -> Iterator[App]:
    app = App(stack, "voter@example.com")
    yield app
    app.close()


def assert_blind(data: bytes | str) -> None:
    text = data if isinstance(data, str) else data.decode()
    for name in SECRET_NAMES:
        assert name.lower() not in text.lower(), f"{name!r} leaked: {text[:400]}"


def test_nothing_names_the_models_before_the_vote(stack: Stack, voter: App) -> None:
    r = voter.post("/app/arena")
    assert r.status_code == 201, r.text
    assert_blind(r.content)
    room = r.json()
    assert room["arena"] and room["models"] == ["arena:A", "arena:B"]
    seen: list[str] = []

    def watch() -> None:
        with connect_sse(voter.b.http, "GET", f"/app/rooms/{room['id']}/events", timeout=30) as es:
            for event in es.iter_sse():
                seen.append(f"{event.event} {event.data}")
                if event.event == "message" and '"status":"done"' in event.data.replace(" ", ""):
                    done = [s for s in seen if '"status":"done"' in s.replace(" ", "")]
                    if len(done) >= 2:
                        return

    watcher = threading.Thread(target=watch)
    watcher.start()
    wait_until(lambda: bool(seen), 10, "the room's stream")
    sent = voter.post(f"/app/rooms/{room['id']}/messages", {"content": "hi there friend"})
    assert sent.status_code == 201
    assert_blind(sent.content)
    watcher.join(20)
    assert_blind("\n".join(seen))
    for path in (f"/app/rooms/{room['id']}", "/app/rooms"):
        assert_blind(voter.get(path).content)
    assert voter.get(f"/app/rooms/{room['id']}/export").status_code == 409
    assert voter.post(f"/app/rooms/{room['id']}/link", {"enabled": True}).status_code == 409
    page = voter.b.http.get(f"/rooms/{room['id']}", headers={"accept": "text/html"})
    assert_blind(page.text)

    # The vote reveals who was who.
    wait_until(
        lambda: all(
            m["status"] == "done" for m in voter.messages(room["id"]) if m["role"] == "assistant"
        ),
        10,
        "both answers",
    )
    stranger = App(stack, "stranger@example.com")
    try:
        assert stranger.post(f"/app/rooms/{room['id']}/vote", {"outcome": "b"}).status_code == 404
    finally:
        stranger.close()
    voted = voter.post(f"/app/rooms/{room['id']}/vote", {"outcome": "a"})
    assert voted.status_code == 200, voted.text
    revealed = voted.json()
    assert revealed["revealed"] and sorted(revealed["models"]) == ["echo", "upper"]
    assert voter.post(f"/app/rooms/{room['id']}/vote", {"outcome": "b"}).status_code == 409


def test_sides_are_shuffled_and_the_leaderboard_ranks(voter: App) -> None:
    firsts = set()
    for _ in range(12):
        room = voter.post("/app/arena").json()
        sent = voter.send(room["id"], "hi there")
        for a in sent["answers"]:
            voter.settled(room["id"], a["id"])
        revealed = voter.post(f"/app/rooms/{room['id']}/vote", {"outcome": "a"}).json()
        firsts.add(revealed["models"][0])
    assert firsts == {"echo", "upper"}  # both have been side A
    board = voter.get("/app/arena/leaderboard").json()
    assert board["battles"] >= 12
    assert {r["model"] for r in board["leaderboard"]} == {"echo", "upper"}
    assert all(r["low"] <= r["score"] <= r["high"] for r in board["leaderboard"])


def test_an_answer_naming_its_model_is_not_ranked(stack: Stack, voter: App) -> None:
    before = voter.get("/app/arena/leaderboard").json()["battles"]
    room = voter.post("/app/arena").json()
    sent = voter.send(room["id"], "I am echo")  # echo repeats it: it names itself
    for a in sent["answers"]:
        voter.settled(room["id"], a["id"])
    assert voter.post(f"/app/rooms/{room['id']}/vote", {"outcome": "tie"}).status_code == 200
    assert voter.get("/app/arena/leaderboard").json()["battles"] == before
    with store_of(stack) as store:
        flagged = store.db.execute_sql(  # db.param: ? on SQLite, %s on PostgreSQL
            "SELECT flagged FROM arena_battles WHERE room_id = ?".replace("?", store.db.param),
            (room["id"],),
        ).fetchone()
    assert flagged == (1,)
    json.dumps(flagged)


def drawn_pair(stack: Stack, room_id: int) -> list[str]:
    """The two models a round drew (from the database: the browser is not told)."""
    with store_of(stack) as store:
        row = store.db.execute_sql(
            "SELECT models FROM rooms WHERE id = ?".replace("?", store.db.param), (room_id,)
        ).fetchone()
    pair: list[str] = json.loads(row[0])
    return pair


def test_without_a_pool_the_arena_draws_from_every_model_one_may_use(stack: Stack) -> None:
    """A fresh install has no arena pool: the arena works at once with the models served."""
    from kuwa.accounts.permissions import model_permission
    from tests.web import make_user

    with store_of(stack) as store:
        users = set(store.groups.get("Users").permissions)
    make_user(stack, "nopool@example.com")
    make_user(stack, "echo-only@example.com", permissions=users - {model_permission("upper")})
    player = App(stack, "nopool@example.com")
    narrow = App(stack, "echo-only@example.com")
    try:
        with store_of(stack) as store:
            store.system.update(arena_pool="")
        r = player.post("/app/arena")
        assert r.status_code == 201, r.text
        assert r.json()["models"] == ["arena:A", "arena:B"]
        assert sorted(drawn_pair(stack, r.json()["id"])) == ["echo", "upper"]
        alone = narrow.post("/app/arena")  # one model to use is not a battle
        assert alone.status_code == 400 and alone.json()["error"]["code"] == "arena_pool"
        assert "two models" in alone.json()["error"]["message"]
        # An admin's pool refines the draw: only its models that are served and usable count.
        with store_of(stack) as store:
            store.system.update(arena_pool="echo:1, ghost:5")
        refined = player.post("/app/arena")
        assert refined.status_code == 400, refined.text
        assert "arena pool" in refined.json()["error"]["message"]
    finally:
        with store_of(stack) as store:
            store.system.update(arena_pool="echo:1, upper:1")
        player.close()
        narrow.close()


def battle(app: App, prompt: str, outcome: str = "a") -> dict[str, object]:
    """Start a round, send ``prompt``, wait for both answers, vote; the revealed room."""
    room = app.post("/app/arena").json()
    sent = app.send(room["id"], prompt)
    for a in sent["answers"]:
        app.settled(room["id"], a["id"])
    r = app.post(f"/app/rooms/{room['id']}/vote", {"outcome": outcome})
    assert r.status_code == 200, r.text
    revealed: dict[str, object] = r.json()
    return revealed


def test_the_room_keeps_its_pair_and_shows_the_vote(voter: App) -> None:
    room = voter.post("/app/arena").json()
    r = voter.post(f"/app/rooms/{room['id']}", {"models": ["echo"]})
    assert r.status_code == 409 and "new battle" in r.json()["error"]["message"]
    assert voter.get(f"/app/rooms/{room['id']}").json()["vote"] is None
    revealed = battle(voter, "Where is the best beef noodle soup in Taipei?", "tie")
    assert revealed["vote"] == "tie"


def test_the_leaderboard_filters_by_language_and_date(stack: Stack, voter: App) -> None:
    fan = App(stack, "polyglot@example.com")
    try:
        for _ in range(2):
            battle(fan, "請用三句話介紹台灣的夜市文化", "a")
        battle(fan, "Explain how a bicycle stays upright while it moves", "b")
        battle(fan, "ok", "tie")  # too short to tell
    finally:
        fan.close()
    board = voter.get("/app/arena/leaderboard").json()
    assert board["languages"]["zh"] >= 2 and board["languages"]["en"] >= 1
    assert board["languages"]["und"] >= 1
    chinese = voter.get("/app/arena/leaderboard?language=zh").json()
    assert chinese["battles"] == board["languages"]["zh"]
    assert chinese["filters"]["language"] == "zh"
    today = voter.get("/app/arena/leaderboard").json()["battles"]
    day = dt.datetime.now(dt.UTC).date()
    assert voter.get(f"/app/arena/leaderboard?since={day}&until={day}").json()["battles"] == today
    later = voter.get(f"/app/arena/leaderboard?since={day + dt.timedelta(days=1)}").json()
    assert later["battles"] == 0 and later["leaderboard"] == []
    earlier = voter.get(f"/app/arena/leaderboard?until={day - dt.timedelta(days=1)}").json()
    assert earlier["battles"] == 0
    bad = voter.get("/app/arena/leaderboard?since=yesterday")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"
    backwards = voter.get(f"/app/arena/leaderboard?since={day}&until={day - dt.timedelta(days=2)}")
    assert backwards.status_code == 400


def test_blind_mode_makes_every_new_chat_a_battle(stack: Stack) -> None:
    from tests.web import make_user

    with store_of(stack) as store:
        store.groups.create("Blind testers", permissions=store.groups.get("Users").permissions)
    make_user(stack, "blind@example.com", group="Blind testers")
    admin_email = "arena-admin@example.com"
    make_user(stack, admin_email, admin=True)
    admin = App(stack, admin_email)
    blind = App(stack, "blind@example.com")
    try:
        page = admin.b.get("/manage/system", headers={"accept": "text/html"})
        assert 'name="blind_groups" value="Blind testers"' in page.text
        form = {
            "registration": "open",
            "allowed_domains": "",
            "announcement": "",
            "terms": "",
            "arena_pool": "echo:1, upper:1",
            "blind_groups": "Blind testers",
        }
        saved = admin.b.post("/manage/system", form, follow_redirects=False)
        assert saved.status_code == 303, saved.text
        with store_of(stack) as store:
            assert store.system.load().blind_groups == ("Blind testers",)
        shell = blind.b.http.get("/", headers={"accept": "text/html"})
        assert '"blind": true' in shell.text
        refused = blind.post("/app/rooms", {"models": ["echo"]})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "blind_mode"
        room = blind.post("/app/arena")
        assert room.status_code == 201 and room.json()["models"] == ["arena:A", "arena:B"]
        # Everyone else chats as before.
        assert admin.post("/app/rooms", {"models": ["echo"]}).status_code == 201
    finally:
        with store_of(stack) as store:
            store.system.update(blind_groups=[])
        admin.close()
        blind.close()
