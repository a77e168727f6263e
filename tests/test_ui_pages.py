"""Every page in a real browser (Chromium through Playwright): one design in both themes, one
header that fits a 390 px phone, and (test_every_page_in_chinese…) no English left in the
zh-TW pages. Screenshots of every page land in ``test-artifacts/screenshots/pages/``.

One gateway with the debug executor echo; an administrator with a room (shared by link), a
deleted room in the trash, a bot, and terms of service to show.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from kuwa.accounts import Store
from kuwa.rooms import Rooms, Sharing
from tests.browser import ARTIFACTS, DESKTOP, PHONE, UI
from tests.stack import RedisServer, Stack
from tests.web import PASSWORD, make_user, store_of

ADMIN = "pat@example.com"
SHOTS = ARTIFACTS / "pages"

expect.set_options(timeout=20_000)


@dataclass
class Site:
    stack: Stack
    paths: dict[str, str]  # page name -> path, signed in as ADMIN
    public: dict[str, str]  # page name -> path, signed out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("ui-pages")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        make_user(s, ADMIN, admin=True)
        with store_of(s) as store:
            store.catalog.create("echo", "Echo", order=0)
        s.executor("echo")
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


def _seed(store: Store) -> dict[str, str]:
    admin = store.accounts.find_user(ADMIN)
    assert admin is not None
    rooms = Rooms(store.db)
    room = rooms.create(admin.id, ["echo"])
    _, answers = rooms.add_prompt(room, admin.id, "What is **Kuwa**?", ["echo"])
    rooms.finish(answers[0], "Kuwa is *a gateway*, executors and a chat UI.", "done")
    token = Sharing(store.db).set_link(room, True)
    gone = rooms.create(admin.id, ["echo"])
    rooms.add_prompt(gone, admin.id, "What is old", ["echo"])
    rooms.delete(gone)
    users = store.groups.get("Users")
    return {
        "chat": "/",
        "room": f"/rooms/{room}",
        "store": "/store",
        "arena": "/arena",
        "trash": "/trash",
        "shared": f"/shared/{token}",
        "profile": "/profile",
        "password": "/password",
        "manage-users": "/manage/users",
        "manage-user": f"/manage/users/{admin.id}",
        "manage-groups": "/manage/groups",
        "manage-group": f"/manage/groups/{users.id}",
        "manage-models": "/manage/models",
        "manage-model": "/manage/models/edit/echo",
        "manage-system": "/manage/system",
        "manage-audit": "/manage/audit",
        "dashboard": "/dashboard",
        "dashboard-jobs": "/dashboard/jobs",
        "dashboard-audit": "/dashboard/audit",
        "dashboard-stats": "/dashboard/stats",
        "dashboard-inspect": "/dashboard/inspect",
        "dashboard-feedback": "/dashboard/feedback",
        "dashboard-stress": "/dashboard/stress",
        "not-found": "/no-such-page",
    }


@pytest.fixture(scope="module")
def site(stack: Stack) -> Site:
    with store_of(stack) as store:
        paths = _seed(store)
    public = {"login": "/login", "signup": "/signup", "forgot": "/forgot"}
    return Site(stack, paths, public)


def open_as(ui: UI, lang: str, theme: str, viewport: dict[str, int], signed_in: bool) -> Page:
    page = ui.page(viewport, mobile=viewport == PHONE)
    page.context.add_cookies([{"name": "kuwa_lang", "value": lang, "url": ui.base_url}])
    page.add_init_script(
        f"if (!localStorage.getItem('kuwa.theme')) localStorage.setItem('kuwa.theme', '{theme}')"
    )
    if signed_in:
        page.goto("/login")
        page.locator('input[name="email"]').fill(ADMIN)
        page.locator('input[name="password"]').fill(PASSWORD)
        page.locator('form[action="/login"] button[type="submit"]').click()
        page.wait_for_load_state()
    return page


def settle(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    if page.locator("#kuwa-app").count():
        expect(page.locator("#kuwa-app .shell")).to_be_visible()
        page.wait_for_timeout(300)


# The header: one, with the brand, and nothing of it past the right edge.
HEADER = """() => {
    const headers = document.querySelectorAll('header.top');
    const tops = [...document.querySelectorAll('header.top .brand, header.top .top-tools > *')]
        .filter(el => el.getBoundingClientRect().width > 0)
        .map(el => el.getBoundingClientRect().right);
    return {
        headers: headers.length,
        navs: document.querySelectorAll('nav[aria-label]').length,
        right: Math.max(...tops),
        page: document.documentElement.scrollWidth,
        bg: getComputedStyle(document.body).backgroundColor,
        card: getComputedStyle(document.querySelector('header.top')).backgroundColor,
    };
}"""


def luminance(rgb: str) -> float:
    r, g, b = (int(float(x)) for x in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_has_one_header_that_fits_a_phone_in_both_themes(
    ui: UI, site: Site, theme: str
) -> None:
    """The dark theme reached the chat only; the chat pages had a second header and their
    navigation was cut off at 390 px."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for signed_in, paths in ((False, site.public), (True, site.paths)):
        page = open_as(ui, "en", theme, PHONE, signed_in)
        for name, path in paths.items():
            settle(page, path)
            found = page.evaluate(HEADER)
            assert found["headers"] == 1, (name, found)
            assert found["right"] <= PHONE["width"], (name, found)
            assert found["page"] <= PHONE["width"], (name, found)
            dark = luminance(found["bg"]) < 0.3
            assert dark == (theme == "dark"), (name, found)
            assert (luminance(found["card"]) < 0.3) == (theme == "dark"), (name, found)
            page.screenshot(path=str(SHOTS / f"{name}-phone-{theme}.png"))
            if signed_in and name != "not-found":  # an error page knows nobody
                # The sections are one tap away, in the menu.
                toggle = page.get_by_test_id("nav-toggle")
                toggle.click()
                expect(toggle).to_have_attribute("aria-expanded", "true")
                links = page.locator("#main-nav a")
                assert links.count() == 6, name
                for i in range(links.count()):
                    expect(links.nth(i)).to_be_in_viewport()
                page.keyboard.press("Escape")
                expect(toggle).to_have_attribute("aria-expanded", "false")
    ui.assert_clean()


def test_the_header_marks_the_section_and_switches_theme_and_language(ui: UI, site: Site) -> None:
    page = open_as(ui, "en", "light", DESKTOP, True)
    for path, current in (
        (site.paths["manage-group"], "nav-manage"),
        (site.paths["dashboard-stats"], "nav-dashboard"),
        (site.paths["profile"], "nav-profile"),
        (site.paths["room"], "nav-chat"),
        (site.paths["arena"], "open-arena"),
    ):
        settle(page, path)
        marked = page.locator('header.top nav a[aria-current="page"]')
        expect(marked).to_have_count(1)
        expect(marked).to_have_attribute("data-testid", current)
    settle(page, site.paths["profile"])
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "light")
    page.get_by_test_id("theme").click()
    expect(html).to_have_attribute("data-theme", "dark")
    settle(page, site.paths["manage-users"])
    expect(html).to_have_attribute("data-theme", "dark")  # remembered across pages
    with page.expect_navigation():
        page.get_by_test_id("lang").select_option("zh-TW")
    expect(html).to_have_attribute("lang", "zh-TW")
    expect(page.get_by_test_id("nav-manage")).to_have_text("管理")
    page.screenshot(path=str(SHOTS / "manage-users-desktop-dark-zh.png"))
    ui.assert_clean()


def test_screenshots_of_every_page_on_a_desktop(ui: UI, site: Site) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for lang, theme in (("en", "light"), ("zh-TW", "dark")):
        for signed_in, paths in ((False, site.public), (True, site.paths)):
            page = open_as(ui, lang, theme, DESKTOP, signed_in)
            for name, path in paths.items():
                settle(page, path)
                page.screenshot(path=str(SHOTS / f"{name}-desktop-{theme}-{lang}.png"))
    assert len(list(SHOTS.glob("*-desktop-*.png"))) >= 2 * (len(site.paths) + 3)
    ui.assert_clean()


# Every visible text and every label a screen reader or a tooltip shows.
TEXTS = """() => {
    const out = [document.title];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement;
        if (!el || el.closest('script, style, code, pre, .md, textarea, option')) continue;
        const box = el.getBoundingClientRect();
        if (!box.width && !box.height) continue;
        if (getComputedStyle(el).visibility === 'hidden') continue;
        out.push(node.textContent);
    }
    for (const el of document.querySelectorAll('[placeholder], [title], [aria-label], img[alt]')) {
        if (el.closest('code, pre, .md')) continue;
        for (const name of ['placeholder', 'title', 'aria-label', 'alt']) {
            const value = el.getAttribute(name);
            if (value) out.push(value);
        }
    }
    return out;
}"""

# Words that stay as they are in a Chinese page: names, formats, protocols, codes.
KEPT = {
    "kuwa",
    "api",
    "json",
    "tsv",
    "docx",
    "csv",
    "url",
    "smtp",
    "ldap",
    "oidc",
    "dn",
    "starttls",
    "modelfile",
    "modelfiles",
    "webp",
    "kib",
    "bearer",
    "authorization",
    "token",
    "tokens",
    "english",
    "code",
    "weight",
    "ttft",
    "tpot",
    "redis",
    "utc",
    "http",
    "https",
    "static",
    "example",
    "org",
    "echo",
    "web",
    "tester",
    "pat",
    "com",
    "ip",
    "ok",
    "local",
    "admins",
    "users",
    "none",
    "latin",
    "dpo",
    "jsonl",
    "openai",
    "sse",
    "rps",
    "p50",
    "p95",
    "kuwa_",
    "ms",
    "id",
    "pid",
    "google",
    "before-prompt",
    "after-prompt",
    "top-p",
    "model-a",
    "model-b",
    "model-c",
    "enter",
    "shift",
    "preference",
    # product names in the composer's file types (PDF, Word, PowerPoint, Excel, …)
    "word",
    "excel",
    "powerpoint",
    # the seeded data: room titles, the executor's backend and model
    "what",
    "old",
    "debug",
    "debug-echo",
}


# Paths (/v1/chat/completions), commands (kuwa-cli worker start), names quoted 「like this」 and
# words in capitals (SYSTEM, AFTER-PROMPT, PNG, TTFT).
VERBATIM = re.compile(r"\S*/\S*|kuwa-cli(?: [a-z-]+)*|「[^」]*」|\b[A-Z][A-Z0-9_-]+\b")


def english_words(texts: list[str]) -> set[str]:
    found = set()
    for text in (VERBATIM.sub(" ", t) for t in texts):
        for word in re.findall(r"[A-Za-z][A-Za-z_'-]{2,}", text):
            if word.lower().strip("'-_") not in KEPT and not word.startswith("KUWA"):
                found.add(word)
    return found


def test_every_page_in_chinese_shows_no_english(ui: UI, site: Site) -> None:
    """Manage, Profile and the Dashboard's bodies stayed English in zh-TW."""
    left: dict[str, set[str]] = {}
    for signed_in, paths in ((False, site.public), (True, site.paths)):
        page = open_as(ui, "zh-TW", "light", DESKTOP, signed_in)
        for name, path in paths.items():
            settle(page, path)
            expect(page.locator("html")).to_have_attribute("lang", "zh-TW")
            words = english_words(page.evaluate(TEXTS))
            if words:
                left[name] = words
    assert left == {}, "English in the zh-TW pages: " + "; ".join(
        f"{name}: {' '.join(sorted(words))}" for name, words in left.items()
    )
    ui.assert_clean()
