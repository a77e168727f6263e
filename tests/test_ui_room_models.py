"""Rooms with several models in a real browser (Chromium through Playwright): how a prompt
asked of every model reads, plain-text room titles, labelled code blocks, and each model's
settings in a room (system prompt, temperature, top-p, max tokens) within its group's bounds.

Screenshots land in ``test-artifacts/screenshots/room-models-*.png``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from kuwa.accounts import Bounds
from tests.browser import DESKTOP, PHONE, UI, shot
from tests.stack import RedisServer, Stack
from tests.test_ui_chat import (
    OWNER,
    answer_el,
    api_get,
    body_text,
    create_room,
    send,
    sign_in,
    wait_done,
)
from tests.web import PASSWORD, store_of

expect.set_options(timeout=15_000)

ADMIN = "ada@example.com"
TUNER = "tim@example.com"  # in a group whose bounds are temperature 1, 50 tokens
# A 2x2 red PNG: the image an admin gives a model.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGO4o6EBRAwQCgAjrgSxn17XlQAAAABJRU5ErkJggg=="
)
TABLE_PROMPT = "| fruit | price |\n|---|---|\n| **apple** | 3 |"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("ui-room-models")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        with store_of(s) as store:
            store.accounts.create_user(OWNER, "Olive Owner", PASSWORD)
            store.accounts.create_user(ADMIN, "Ada Admin", PASSWORD, group="Admins", is_admin=True)
            for order, (code, name) in enumerate(
                [("echo", "Echo"), ("upper", "Upper"), ("hist", "Hist")]
            ):
                store.catalog.create(code, name, order=order, react_buttons=["copy"])
            users = store.groups.get("Users")
            bounded = store.groups.create("Bounded", permissions=users.permissions)
            store.groups.update(bounded.id, bounds=Bounds(temperature=1.0, max_tokens=50))
            tuner = store.accounts.create_user(TUNER, "Tim Tuner", PASSWORD, group="Bounded")
            s.token = store.accounts.ensure_token(tuner.id)
        s.executor("echo")
        s.executor("upper", transform="upper")
        s.executor("hist", transform="history")
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture
def page(ui: UI) -> Page:
    return ui.page()


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_a_prompt_spans_every_column_and_titles_are_plain_text(
    ui: UI, page: Page, theme: str
) -> None:
    """The prompt bubble sat over the first column only, as if only that model was asked; the
    room was titled ``| fruit | price | |---|``; code blocks did not say their language."""
    page.add_init_script(f"localStorage.setItem('kuwa.theme', '{theme}')")
    sign_in(page)
    room = create_room(page, "echo", "upper")
    turn = send(page, room, TABLE_PROMPT)
    wait_done(page, *turn.answers.values())

    prompt = f'[data-testid="prompt-{turn.prompt["id"]}"]'
    first, last = (
        box(page, '[data-testid="column-echo"]'),
        box(page, '[data-testid="column-upper"]'),
    )
    bubble = box(page, prompt)
    assert bubble["x"] <= first["x"] + 2, (bubble, first)
    assert bubble["x"] + bubble["width"] >= last["x"] + last["width"] - 2, (bubble, last)
    asked = page.locator(prompt).get_by_test_id("prompt-asked")
    expect(asked.locator(".prompt-asked-text")).to_have_text("To 2 models")
    expect(asked).to_have_attribute("aria-label", "Sent to Echo, Upper")
    expect(asked.locator(".avatar")).to_have_count(2)

    # The title is the prompt's text, without markdown.
    expect(page.locator("#room-title")).to_have_text("fruit price apple 3")
    expect(page.get_by_test_id(f"room-{room}").locator(".room-title")).to_have_text(
        "fruit price apple 3"
    )

    code = send(page, room, "```python\nprint('hi')\n```\n\n```\nplain\n```")
    wait_done(page, *code.answers.values())
    echo = answer_el(page, code.answers["echo"])
    expect(echo.locator(".code-lang")).to_have_text(["python", "text"])
    expect(echo.locator(".code-block").first.locator(".code-copy")).to_be_visible()
    upper = answer_el(page, code.answers["upper"])
    expect(upper.locator(".code-lang").first).to_have_text("python")  # PYTHON → lower case
    shot(page, f"room-models-prompt-{theme}.png")
    ui.assert_clean()


def test_the_prompt_and_code_labels_in_chinese(ui: UI) -> None:
    page = ui.page(DESKTOP)
    page.context.add_cookies([{"name": "kuwa_lang", "value": "zh-TW", "url": ui.base_url}])
    sign_in(page)
    room = create_room(page, "echo", "upper")
    turn = send(page, room, "```\nx = 1\n```")
    wait_done(page, *turn.answers.values())
    asked = page.get_by_test_id(f"prompt-{turn.prompt['id']}").get_by_test_id("prompt-asked")
    expect(asked.locator(".prompt-asked-text")).to_have_text("發給 2 個模型")
    expect(answer_el(page, turn.answers["echo"]).locator(".code-lang")).to_have_text("文字")
    shot(page, "room-models-prompt-zh.png")
    ui.assert_clean()


def test_an_admin_gives_a_model_an_image_seen_in_the_picker_and_columns(ui: UI) -> None:
    """Models showed by their initials only: Manage → Models takes an image per model."""
    admin = ui.page(DESKTOP)
    sign_in(admin, ADMIN)
    admin.goto("/manage/models/edit/upper")
    admin.locator('input[name="image_file"]').set_input_files(
        {"name": "upper.png", "mimeType": "image/png", "buffer": PNG}
    )
    admin.locator('form[action="/manage/models/edit/upper"] button[type="submit"]').click()
    admin.wait_for_url(re.compile(r"/manage/models$"))
    row = admin.locator("tr", has=admin.locator('a[href="/manage/models/edit/upper"]'))
    expect(row.locator("img")).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))

    page = ui.page(DESKTOP)
    sign_in(page)
    card = page.get_by_test_id("model-card-upper")
    expect(card.locator(".avatar img")).to_have_attribute("src", re.compile(r"^data:image/png"))
    expect(page.get_by_test_id("model-card-echo").locator(".avatar img")).to_have_count(0)
    room = create_room(page, "echo", "upper")
    head = page.get_by_test_id("column-upper").locator(".col-head .avatar img")
    expect(head).to_have_attribute("src", re.compile(r"^data:image/png"))
    turn = send(page, room, "hello")
    wait_done(page, *turn.answers.values())
    asked = page.get_by_test_id(f"prompt-{turn.prompt['id']}").get_by_test_id("prompt-asked")
    expect(asked.locator(".avatar img")).to_have_count(1)
    expect(page.get_by_test_id(f"room-{room}").locator(".avatar img")).to_have_count(1)
    shot(page, "room-models-image.png")
    ui.assert_clean()


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_the_trash_restores_a_room_and_an_answer(ui: UI, lang: str) -> None:
    """Deleting said "This cannot be undone" while the database kept the room, and nothing
    restored it."""
    page = ui.page(DESKTOP)
    page.context.add_cookies([{"name": "kuwa_lang", "value": lang, "url": ui.base_url}])
    sign_in(page)
    room = create_room(page, "echo", "upper")
    turn = send(page, room, f"trash me {lang}")
    wait_done(page, *turn.answers.values())
    upper = answer_el(page, turn.answers["upper"])
    upper.hover()
    upper.get_by_test_id("react-delete").click()
    page.get_by_test_id("confirm-ok").click()
    expect(upper).to_have_count(0)

    item = page.get_by_test_id(f"room-{room}")
    item.hover()
    item.get_by_test_id("delete-room").click()
    dialog = page.locator("dialog.confirm")
    expect(dialog).to_contain_text("30")  # the days it is kept
    expect(dialog).to_contain_text("垃圾桶" if lang == "zh-TW" else "trash")
    page.get_by_test_id("confirm-ok").click()
    expect(item).to_have_count(0)

    page.get_by_test_id("open-trash").click()
    page.wait_for_url(re.compile(r"/trash$"))
    entry = page.get_by_test_id(f"trash-room-{room}")
    expect(entry).to_contain_text(f"trash me {lang}")
    expect(page.get_by_test_id("trash-intro")).to_contain_text("30")
    shot(page, f"trash-{lang}.png")
    entry.get_by_test_id("trash-restore").click()
    expect(entry).to_have_count(0)
    expect(page.get_by_test_id(f"room-{room}")).to_be_visible()  # back in the sidebar

    answer = page.get_by_test_id(f"trash-message-{turn.answers['upper']['id']}")
    expect(answer).to_contain_text(f"TRASH ME {lang.upper()}")
    answer.get_by_test_id("trash-restore").click()
    expect(answer).to_have_count(0)
    expect(page.get_by_test_id("trash-list")).to_contain_text(
        "垃圾桶是空的" if lang == "zh-TW" else "The trash is empty"
    )
    page.get_by_test_id(f"room-{room}").click()
    expect(answer_el(page, turn.answers["upper"])).to_be_visible()

    # Deleting for good asks first, then the room is gone from the trash too.
    page.get_by_test_id(f"room-{room}").hover()
    page.get_by_test_id(f"room-{room}").get_by_test_id("delete-room").click()
    page.get_by_test_id("confirm-ok").click()
    page.get_by_test_id("open-trash").click()
    entry = page.get_by_test_id(f"trash-room-{room}")
    entry.get_by_test_id("trash-purge").click()
    page.get_by_test_id("confirm-ok").click()
    expect(entry).to_have_count(0)
    ui.assert_clean()


def test_each_model_has_its_settings_in_a_room_within_the_groups_bounds(ui: UI) -> None:
    """A system prompt, temperature, top-p and max tokens per model in a room, as Open WebUI
    has them: kept within the group's bounds, stored with the room and in its JSON export,
    applied to the model's answers there (the history model repeats what it was sent)."""
    page = ui.page(DESKTOP)
    sign_in(page, TUNER)
    room = create_room(page, "hist", "echo")
    assert api_get(page, f"/app/rooms/{room}")["bounds"] == {
        "temperature": 1.0,
        "top_p": None,
        "max_tokens": 50,
    }
    gear = page.get_by_test_id("settings-hist")
    expect(gear).to_have_attribute("aria-pressed", "false")
    gear.click()
    dialog = page.get_by_test_id("model-settings")
    expect(dialog).to_contain_text("Hist in this room")
    expect(dialog).to_contain_text("Your group allows up to 50.")
    page.get_by_test_id("ms-system").fill("Answer like a pirate.")
    page.get_by_test_id("ms-temperature").fill("1.5")
    page.get_by_test_id("ms-top_p").fill("0.9")
    page.get_by_test_id("ms-max_tokens").fill("6")
    page.get_by_test_id("ms-save").click()
    error = page.get_by_test_id("ms-error")
    expect(error).to_have_text("Your group allows temperature up to 1, not 1.5.")
    page.get_by_test_id("ms-temperature").fill("0.4")
    page.get_by_test_id("ms-max_tokens").fill("500")
    page.get_by_test_id("ms-save").click()
    expect(error).to_have_text("Your group allows at most 50 tokens, not 500.")
    page.get_by_test_id("ms-max_tokens").fill("6")
    shot(page, "room-models-settings.png")
    page.get_by_test_id("ms-save").click()
    expect(dialog).to_have_count(0)
    expect(gear).to_have_attribute("aria-pressed", "true")
    settings = {
        "system": "Answer like a pirate.",
        "temperature": 0.4,
        "top_p": 0.9,
        "max_tokens": 6,
    }
    assert api_get(page, f"/app/rooms/{room}")["model_settings"] == {"hist": settings}

    turn = send(page, room, "tell me a story please")
    wait_done(page, *turn.answers.values())
    # The system prompt went first, and six tokens were all the model could give.
    assert body_text(page, turn.answers["hist"]) == "system: Answer like a pirate"
    assert body_text(page, turn.answers["echo"]) == "tell me a story please"
    r = page.request.get(f"/app/rooms/{room}/export?format=json")
    assert r.json()["model_settings"] == {"hist": settings}

    # They stay after a reload, and "Use the defaults" clears them.
    page.reload()
    page.get_by_test_id("settings-hist").click()
    expect(page.get_by_test_id("ms-system")).to_have_value("Answer like a pirate.")
    expect(page.get_by_test_id("ms-max_tokens")).to_have_value("6")
    page.get_by_test_id("ms-reset").click()
    page.get_by_test_id("ms-save").click()
    expect(page.get_by_test_id("settings-hist")).to_have_attribute("aria-pressed", "false")
    assert api_get(page, f"/app/rooms/{room}")["model_settings"] == {}
    again = send(page, room, "short again")
    wait_done(page, *again.answers.values())
    assert body_text(page, again.answers["hist"]).startswith("user: tell me")  # no system
    ui.assert_clean()


def test_the_settings_dialog_on_a_phone_in_chinese(ui: UI) -> None:
    page = ui.page(PHONE, mobile=True)
    page.context.add_cookies([{"name": "kuwa_lang", "value": "zh-TW", "url": ui.base_url}])
    sign_in(page, TUNER)
    create_room(page, "hist", "echo")
    page.get_by_test_id("tab-hist").click()
    page.get_by_test_id("settings-hist").click()
    dialog = page.get_by_test_id("model-settings")
    expect(dialog).to_contain_text("你的群組上限為 50。")
    expect(dialog).to_contain_text("系統提示")
    page.get_by_test_id("ms-temperature").fill("1.5")
    page.get_by_test_id("ms-save").click()  # the server's refusal, in Chinese too
    expect(page.get_by_test_id("ms-error")).to_have_text(
        "你的群組允許的 temperature 上限為 1，而不是 1.5。"  # noqa: RUF001
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "room-models-settings-phone-zh.png")
    ui.assert_clean()


def test_the_groups_bounds_clamp_api_requests_too(stack: Stack) -> None:
    """The Bounded group may ask for at most 50 tokens: a request for 1000 gets 50."""
    words = " ".join(f"w{i}" for i in range(120))
    r = httpx.post(
        f"{stack.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {stack.token}"},
        json={
            "model": "echo",
            "max_tokens": 1000,
            "messages": [{"role": "user", "content": words}],
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["usage"]["completion_tokens"] == 50
    assert answer["choices"][0]["finish_reason"] == "length"
