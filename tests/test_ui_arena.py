"""The arena in a real browser: a blinded battle, the vote and the reveal, the leaderboard
with its filters and heat map, and blind mode for a whole group.

One gateway with the debug executors echo and upper (shown as "Echo" and "Upper"), both in
the arena pool. Screenshots land in ``test-artifacts/screenshots/arena-*.png``.
"""

from __future__ import annotations

import datetime as dt
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

PLAYER = "paula@example.com"
BLIND = "blinda@example.com"
SECRETS = (
    "Echo",
    "Upper",
    'data-model="echo"',
    'data-model="upper"',
    "column-echo",
    "column-upper",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("ui-arena")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        with store_of(s) as store:
            store.accounts.create_user(PLAYER, "Paula Player", PASSWORD)
            store.groups.create("Blind", permissions=store.groups.get("Users").permissions)
            store.accounts.create_user(BLIND, "Blinda", PASSWORD, group="Blind")
            for order, (code, name) in enumerate([("echo", "Echo"), ("upper", "Upper")]):
                store.catalog.create(code, name, order=order)
            store.system.update(arena_pool="echo:1, upper:1", blind_groups=["Blind"])
        s.executor("echo")
        s.executor("upper", transform="upper")
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


def assert_blind(page: Page) -> None:
    html = page.content()
    for secret in SECRETS:
        assert secret not in html, f"{secret!r} is in the page before the vote"


def battle(page: Page, prompt: str, vote: str, screenshot: str = "") -> list[str]:
    """From the Arena page: start a battle, send ``prompt``, vote; the revealed pair."""
    page.get_by_test_id("start-battle").click()
    room = room_id_of(page)
    expect(page.get_by_test_id("column-arena:A").locator(".col-name")).to_have_text("Model A")
    expect(page.get_by_test_id("column-arena:B").locator(".col-name")).to_have_text("Model B")
    bar = page.get_by_test_id("arena-bar")
    turn = send(page, room, prompt)
    wait_done(page, *turn.answers.values())
    expect(bar).to_contain_text("Which answer is better?")
    texts = {body_text(page, a) for a in turn.answers.values()}
    assert texts == {prompt, prompt.upper()}
    assert_blind(page)
    if screenshot:
        shot(page, screenshot)
    page.get_by_test_id(f"vote-{vote}").click()
    expect(page.get_by_test_id("revealed-A")).to_be_visible()
    pair: list[str] = api_get(page, f"/app/rooms/{room}")["models"]
    names = {"echo": "Echo", "upper": "Upper"}
    expect(page.get_by_test_id("revealed-A")).to_contain_text(names[pair[0]])
    expect(page.get_by_test_id("revealed-B")).to_contain_text(names[pair[1]])
    expect(page.get_by_test_id(f"column-{pair[0]}").locator(".col-name")).to_have_text(
        names[pair[0]]
    )
    return pair


def test_a_blinded_battle_then_the_leaderboard(ui: UI) -> None:
    page = ui.page(DESKTOP)
    sign_in(page, PLAYER)
    page.get_by_test_id("open-arena").click()
    page.wait_for_url(re.compile(r"/arena$"))
    expect(page.get_by_test_id("no-battles")).to_be_visible()

    pair = battle(page, "tell me about oolong tea", "a", "arena-battle-desktop.png")
    expect(page.get_by_test_id("arena-bar")).to_contain_text("You voted: A is better.")
    shot(page, "arena-revealed-desktop.png")
    # A new battle is one click away.
    revealed_url = page.url
    page.get_by_test_id("new-battle").click()
    page.wait_for_url(lambda url: url != revealed_url)
    room = room_id_of(page)
    expect(page.get_by_test_id("column-arena:A")).to_be_visible()
    assert api_get(page, f"/app/rooms/{room}")["models"] == ["arena:A", "arena:B"]

    page.get_by_test_id("open-arena").click()
    battle(page, "請介紹台灣的高山茶", "b")

    # The leaderboard: both models, a 95 % interval each, the heat map, the filters.
    page.get_by_test_id("open-arena").click()
    table = page.get_by_test_id("rank-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id(f"rank-{pair[0]}")).to_be_visible()
    note = page.get_by_test_id("rank-note")
    expect(note).to_contain_text("Votes counted: 2.")
    heat = page.get_by_test_id("heatmap")
    expect(heat.locator("td.heat:not(.none)")).to_have_count(2)
    shot(page, "arena-leaderboard-desktop.png")
    language = page.get_by_test_id("filter-language")
    expect(language.locator("option")).to_have_count(3)  # all, English, Chinese
    language.select_option("zh")
    expect(note).to_contain_text("Votes counted: 1.")
    language.select_option("")
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    page.get_by_test_id("filter-since").fill(tomorrow)
    expect(page.get_by_test_id("no-battles")).to_be_visible()

    # On a phone: the leaderboard scrolls sideways inside itself, and a battle's vote bar fits.
    phone = ui.page(PHONE, mobile=True)
    sign_in(phone, PLAYER)
    phone.goto("/arena")
    expect(phone.get_by_test_id("rank-table")).to_be_visible()
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the phone"
    shot(phone, "arena-leaderboard-phone.png")
    phone.get_by_test_id("start-battle").click()
    room = room_id_of(phone)
    turn = send(phone, room, "hello from a phone")
    wait_done(phone, *turn.answers.values())
    expect(phone.get_by_test_id("vote-tie")).to_be_visible()
    shot(phone, "arena-battle-phone.png")
    ui.assert_clean()


def test_blind_mode_turns_every_new_chat_into_a_battle(ui: UI) -> None:
    page = ui.page(DESKTOP)
    sign_in(page, BLIND)
    expect(page.get_by_test_id("start-battle")).to_be_visible()
    expect(page.locator(".arena-intro h2")).to_have_text("Blind mode")
    expect(page.get_by_test_id("model-card-echo")).to_have_count(0)  # no model picker
    expect(page.get_by_test_id("open-store")).to_have_count(0)
    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("start-battle")).to_be_visible()
    battle(page, "what is green tea", "tie")
    shot(page, "arena-blind-desktop.png")
    ui.assert_clean()


def test_the_store_link_is_there_when_the_arena_is_opened_first(ui: UI) -> None:
    """Opening /arena directly showed the Arena link but not the Store's. Both are the
    header's now, on every page, and route inside the chat app."""
    page = ui.page(DESKTOP)
    sign_in(page, PLAYER)
    page.goto("/arena")
    expect(page.get_by_test_id("start-battle")).to_be_visible()
    expect(page.get_by_test_id("open-store")).to_be_visible()
    expect(page.get_by_test_id("open-arena")).to_have_attribute("aria-current", "page")
    page.evaluate("window.kuwaMarker = 1")  # gone if the page reloads
    page.get_by_test_id("open-store").click()
    page.wait_for_url(re.compile(r"/store$"))
    expect(page.get_by_test_id("store-list")).to_be_visible()
    expect(page.get_by_test_id("open-store")).to_have_attribute("aria-current", "page")
    expect(page.get_by_test_id("open-arena")).not_to_have_attribute("aria-current", "page")
    assert page.evaluate("window.kuwaMarker") == 1  # routed inside the app
    ui.assert_clean()
