"""Bots and the store: who may create, see, change, delete; a bot's Modelfile reaches the
executor; .bot files in and out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kuwa.accounts import permissions
from tests.stack import RedisServer, Stack
from tests.test_web_rooms import App
from tests.web import make_user, store_of


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("bots")
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


def app(stack: Stack, email: str, **user: Any) -> App:
    with store_of(stack) as store:
        if store.accounts.find_user(email) is None:
            make_user(stack, email, **user)
    return App(stack, email)


@pytest.fixture(scope="module")
def alice(stack: Stack) -> Iterator[App]:
    a = app(stack, "alice@example.com")
    a.get("/app/models")  # registers the served models
    yield a
    a.close()


@pytest.fixture(scope="module")
def bob(stack: Stack) -> Iterator[App]:
    b = app(stack, "bob@example.com")
    yield b
    b.close()


def make_bot(who: App, **fields: Any) -> dict[str, Any]:
    body = {"name": "Shouter", "base": "echo", "visibility": "private", **fields}
    r = who.post("/app/bots", body)
    assert r.status_code == 201, r.text
    bot: dict[str, Any] = r.json()
    return bot


def visible(who: App) -> list[str]:
    return [b["name"] for b in who.get("/app/bots").json()["bots"]]


def test_a_bots_modelfile_reaches_the_executor_and_counts_use(alice: App) -> None:
    bot = make_bot(alice, name="Polite", modelfile='AFTER-PROMPT ", please"')
    room = alice.room([bot["code"], "echo"])
    sent = alice.send(room["id"], "pass the salt")
    by_model = {a["model"]: alice.settled(room["id"], a["id"]) for a in sent["answers"]}
    assert by_model[bot["code"]]["content"] == "pass the salt, please"
    assert by_model["echo"]["content"] == "pass the salt"
    assert alice.get(f"/app/bots/{bot['id']}").json()["uses"] == 1
    assert bot["code"] in [b["code"] for b in alice.get("/app/models").json()["bots"]]


def test_visibility_and_the_permission_matrix(stack: Stack, alice: App, bob: App) -> None:
    with store_of(stack) as store:  # Users may make private bots only, by default
        store.groups.grant("Users", ["Store_create_community_bot", "Store_create_group_bot"])
    private = make_bot(alice, name="Alice private")
    community = make_bot(alice, name="Alice community", visibility="community")
    group = make_bot(alice, name="Alice group", visibility="group")
    seen = visible(bob)
    assert "Alice private" not in seen
    assert bob.get(f"/app/bots/{private['id']}").status_code == 404
    assert bob.post(f"/app/bots/{private['id']}/delete").status_code == 404
    # Bob sees the community and group bots (same Users group) but may not change them,
    # and without Store_read_any_modelfile he does not see their Modelfile.
    for bot in (community, group):
        got = bob.get(f"/app/bots/{bot['id']}").json()
        assert got["modelfile"] is None and not got["can_edit"]
        assert bob.post(f"/app/bots/{bot['id']}", {"name": "mine now"}).status_code == 403
        assert bob.post(f"/app/bots/{bot['id']}/delete").status_code == 403
        assert bob.post(f"/app/bots/{bot['id']}/clone").status_code == 403
    # The owner edits and deletes; deleted bots are gone for everyone.
    assert alice.post(f"/app/bots/{private['id']}", {"description": "x"}).status_code == 200
    assert alice.post(f"/app/bots/{private['id']}/delete").status_code == 200
    assert alice.get(f"/app/bots/{private['id']}").status_code == 404


def test_create_permissions_per_visibility(stack: Stack) -> None:
    limited = app(
        stack,
        "limited@example.com",
        permissions=["tab_Store", "Store_create_private_bot", "model:echo"],
    )
    try:
        assert (
            limited.post(
                "/app/bots", {"name": "c", "base": "echo", "visibility": "community"}
            ).status_code
            == 403
        )
        assert (
            limited.post(
                "/app/bots", {"name": "s", "base": "echo", "visibility": "system"}
            ).status_code
            == 403
        )
        assert (
            limited.post(
                "/app/bots", {"name": "p", "base": "echo", "visibility": "private"}
            ).status_code
            == 201
        )
        # A base model the user may not use is refused with a clear message.
        r = limited.post("/app/bots", {"name": "u", "base": "upper", "visibility": "private"})
        assert r.status_code == 403 and "upper" in r.json()["error"]["message"]
        r = limited.post("/app/bots", {"name": "n", "base": "nope", "visibility": "private"})
        assert r.status_code == 404
    finally:
        limited.close()


def test_admins_make_system_bots_for_everyone(stack: Stack, bob: App) -> None:
    admin = app(stack, "boss@example.com", admin=True)
    try:
        bot = make_bot(
            admin, name="Company helper", visibility="system", modelfile="SYSTEM You help."
        )
        assert "Company helper" in visible(bob)
        hidden = bob.get(f"/app/bots/{bot['id']}").json()
        assert hidden["modelfile"] is None
        assert admin.get(f"/app/bots/{bot['id']}").json()["modelfile"] == "SYSTEM You help."
    finally:
        admin.close()


def test_a_bad_modelfile_is_refused_with_its_line(alice: App) -> None:
    r = alice.post(
        "/app/bots", {"name": "Broken", "base": "echo", "modelfile": 'SYSTEM ok\nSYSTEM """x'}
    )
    assert r.status_code == 400 and "line 2" in r.json()["error"]["message"]


def test_bot_files_round_trip_through_the_store(alice: App, bob: App) -> None:
    bot = make_bot(
        alice,
        name="翻譯機 Translator 🌐",
        description='Says "hi" \\o/',
        modelfile='SYSTEM You translate.\nBEFORE-PROMPT """Translate:\n"""',
    )
    r = alice.get(f"/app/bots/{bot['id']}/export")
    assert r.status_code == 200 and b"KUWABOT" in r.content
    imported = bob.b.http.post(
        "/app/bots/import", content=r.content, headers={"x-csrftoken": bob.csrf}
    )
    assert imported.status_code == 201, imported.text
    copy = imported.json()
    assert (copy["name"], copy["description"], copy["base"], copy["modelfile"]) == (
        bot["name"],
        bot["description"],
        bot["base"],
        bot["modelfile"],
    )
    assert copy["visibility"] == "private" and copy["mine"]
    missing = r.content.replace(b'base "echo"', b'base "no-such-model"')
    refused = bob.b.http.post(
        "/app/bots/import", content=missing, headers={"x-csrftoken": bob.csrf}
    )
    assert refused.status_code == 404 and "no-such-model" in refused.json()["error"]["message"]
    assert permissions.is_known("Store_read_any_modelfile")


def test_bot_files_from_the_command_line(stack: Stack, alice: App, tmp_path: Any) -> None:
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "kuwa", "bot", *args],
            env=stack.env,
            capture_output=True,
            timeout=60,
            check=False,
        )

    make_bot(alice, name="CLI 機器人", modelfile="SYSTEM Be brief.")
    out = tmp_path / "b.bot"
    assert cli("export", "CLI 機器人", "-o", str(out)).returncode == 0
    done = cli("import", str(out), "--owner", "bob@example.com")
    assert done.returncode == 0 and b"imported private bot" in done.stderr
    assert cli("import", str(out)).returncode == 0  # no owner: a system bot
    broken = tmp_path / "missing.bot"
    broken.write_bytes(out.read_bytes().replace(b'base "echo"', b'base "gone"'))
    refused = cli("import", str(broken))
    assert refused.returncode == 1 and b"'gone' is not in the model catalog" in refused.stderr
    assert cli("export", "no such bot").returncode == 1
