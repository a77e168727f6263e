"""The bot store in the chat app (/store) and bots in the model picker, in a real browser.

One gateway with the debug executors echo and upper; a user builds a bot on echo whose
Modelfile adds ", please" after each prompt, chats with it from the store and from the picker
(next to upper), exports it, and a second user does not see the private bot. Screenshots of
the store land in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser import DESKTOP, PHONE, UI, shot
from tests.stack import RedisServer, Stack
from tests.test_ui_chat import (
    api_get,
    body_text,
    room_id_of,
    send,
    sign_in,
    wait_done,
)
from tests.web import PASSWORD, store_of

OWNER = "bea@example.com"
OTHER = "otto@example.com"
NAMES = {OWNER: "Bea Builder", OTHER: "Otto Other"}
BOT_NAME = "Salt Bot"
# A 1x1 PNG for the avatar upload.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("ui-store")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        with store_of(s) as store:
            for email, name in NAMES.items():
                store.accounts.create_user(email, name, PASSWORD)
            for order, (code, name) in enumerate([("echo", "Echo"), ("upper", "Upper")]):
                store.catalog.create(code, name, order=order)
        s.executor("echo")
        s.executor("upper", transform="upper")
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


def open_store(page: Page) -> None:
    page.get_by_test_id("open-store").click()
    page.wait_for_url(re.compile(r"/store$"))
    expect(page.get_by_test_id("store-list")).to_be_visible()


def test_build_a_bot_and_chat_with_it(ui: UI) -> None:
    page = ui.page()
    sign_in(page, OWNER)
    open_store(page)
    expect(page.get_by_test_id("store-list")).to_contain_text("No bots yet")

    # The editor: a """ block left open is named by line as you type (no save needed)…
    page.get_by_test_id("new-bot").click()
    editor = page.get_by_test_id("bot-editor")
    expect(editor).to_be_visible()
    page.get_by_test_id("bot-name").fill(BOT_NAME)
    page.get_by_test_id("bot-description").fill("Adds manners to every request.")
    page.get_by_test_id("bot-base").select_option("echo")
    options = page.get_by_test_id("bot-visibility").locator("option")
    expect(options).to_have_count(1)  # a plain user may make private bots only
    page.get_by_test_id("bot-avatar").set_input_files(
        {"name": "a.png", "mimeType": "image/png", "buffer": PNG}
    )
    expect(editor.locator(".avatar-preview img")).to_have_attribute("src", re.compile("^data:"))
    modelfile = page.get_by_test_id("bot-modelfile")
    error = page.get_by_test_id("bot-error")
    modelfile.fill('# manners\nSYSTEM """be kind\n')
    expect(error).to_contain_text("line 2")
    # …and what only the server can tell comes back from the save, under the Modelfile.
    modelfile.fill('# manners\nPLEASE ", please"')
    expect(error).to_be_hidden()
    page.get_by_test_id("bot-save").click()
    expect(error).to_contain_text(re.compile(r"line 2", re.I))
    expect(editor).to_be_visible()
    modelfile.fill('AFTER-PROMPT ", please"')
    page.get_by_test_id("bot-save").click()
    expect(editor).to_be_hidden()

    bot = next(b for b in api_get(page, "/app/bots")["bots"] if b["name"] == BOT_NAME)
    assert bot["visibility"] == "private" and bot["base"] == "echo"
    assert bot["avatar"].startswith("data:image/png;base64,")
    card = page.get_by_test_id(f"store-bot-{bot['id']}")
    expect(card).to_contain_text(BOT_NAME)
    expect(card).to_contain_text("by Bea Builder")
    expect(card).to_contain_text("Private")
    expect(page.get_by_test_id("store-section-mine")).to_contain_text(BOT_NAME)
    shot(page, "store-desktop.png")

    # Export: a .bot download.
    with page.expect_download() as info:
        page.get_by_test_id(f"bot-export-{bot['id']}").click()
    path = info.value.path()
    assert path is not None
    text = path.read_bytes().decode("utf-8", "replace")
    assert "KUWABOT" in text and "AFTER-PROMPT" in text

    # A reload of /store opens the store again.
    page.reload()
    expect(page.get_by_test_id(f"store-bot-{bot['id']}")).to_be_visible()

    # "Chat" starts a room with the bot; its column carries the bot's name.
    code = f"bot:{bot['id']}"
    page.get_by_test_id(f"bot-chat-{bot['id']}").click()
    room = room_id_of(page)
    column = page.get_by_test_id(f"column-{code}")
    expect(column.locator(".col-name")).to_have_text(BOT_NAME)
    expect(column.locator(".col-head .avatar img")).to_be_visible()
    turn = send(page, room, "pass the salt")
    wait_done(page, *turn.answers.values())
    assert body_text(page, turn.answers[code]) == "pass the salt, please"
    expect(column.get_by_test_id(f"answer-{turn.answers[code]['id']}")).to_be_visible()

    # The picker lists the bot next to the models; a room with the bot and upper works.
    page.get_by_test_id("new-chat").click()
    bot_card = page.get_by_test_id(f"bot-card-{bot['id']}")
    expect(bot_card).to_contain_text(BOT_NAME)
    expect(bot_card).to_contain_text("Private")
    bot_card.click()
    page.get_by_test_id("model-card-upper").click()
    shot(page, "picker-bots-desktop.png")
    page.get_by_test_id("start-chat").click()
    room = room_id_of(page)
    assert api_get(page, f"/app/rooms/{room}")["models"] == ["upper", code]
    expect(page.get_by_test_id(f"column-{code}").locator(".col-name")).to_have_text(BOT_NAME)
    turn = send(page, room, "salt")
    wait_done(page, *turn.answers.values())
    assert body_text(page, turn.answers[code]) == "salt, please"
    assert body_text(page, turn.answers["upper"]) == "SALT"
    shot(page, "room-bot-desktop.png")
    # The room list shows the bot's avatar, not its initials.
    listed = page.locator(f'.room-link[href="/rooms/{room}"] .room-models .avatar')
    expect(listed.nth(1).locator("img")).to_have_attribute("src", re.compile("^data:image/png"))

    # The phone layout of the store, and the editor open on it.
    phone = ui.page(PHONE, mobile=True)
    sign_in(phone, OWNER)
    phone.goto("/store")
    expect(phone.get_by_test_id(f"store-bot-{bot['id']}")).to_be_visible()
    shot(phone, "store-phone.png")
    phone.get_by_test_id(f"bot-edit-{bot['id']}").click()
    expect(phone.get_by_test_id("bot-modelfile")).to_have_value('AFTER-PROMPT ", please"')
    shot(phone, "store-editor-phone.png")

    # Another account does not see the private bot, neither in the store nor in the picker.
    other = ui.page(DESKTOP)
    sign_in(other, OTHER)
    expect(other.get_by_test_id("model-card-echo")).to_be_visible()
    expect(other.get_by_test_id(f"bot-card-{bot['id']}")).to_have_count(0)
    assert api_get(other, "/app/models")["bots"] == []
    open_store(other)
    expect(other.get_by_test_id("store-list")).to_contain_text("No bots yet")
    assert other.request.get(f"/app/bots/{bot['id']}").status == 404
    ui.assert_clean()


def test_a_modelfile_error_saved_within_the_debounce_stays(ui: UI) -> None:
    """Typing a bad Modelfile and saving at once: the server's error showed, then the quick
    check (run 350 ms after the last key) wiped it. The page's clock is driven by hand."""
    page = ui.page()
    page.clock.install()
    sign_in(page, OTHER)
    open_store(page)
    page.get_by_test_id("new-bot").click()
    page.get_by_test_id("bot-name").fill("Hasty Bot")
    page.get_by_test_id("bot-base").select_option("echo")
    page.get_by_test_id("bot-modelfile").fill('PLEASE ", please"')
    page.get_by_test_id("bot-save").click()
    error = page.get_by_test_id("bot-error")
    expect(error).to_contain_text(re.compile(r"line 1", re.I))
    page.clock.run_for(2000)  # past the quick check's 350 ms
    expect(error).to_contain_text(re.compile(r"line 1", re.I))
    expect(error).to_be_visible()
    expect(page.get_by_test_id("bot-editor")).to_be_visible()
    ui.assert_clean()
