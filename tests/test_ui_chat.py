"""The chat web UI in a real browser (Chromium through Playwright) against a real stack.

One gateway, debug executors (echo, upper, slow, hist) and Redis; each test signs in through
the /login form in a fresh browser context and drives the page by its ``data-testid``s. The
API (``page.request``, same cookies) checks what the UI stored. Screenshots of a room land in
``test-artifacts/screenshots/`` for CI to keep.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser import ARTIFACTS, DESKTOP, PHONE, UI
from tests.stack import RedisServer, Stack, wait_until
from tests.web import CSRF_COOKIE, PASSWORD, store_of

OWNER = "olive@example.com"
GUEST = "gus@example.com"
NAMES = {OWNER: "Olive Owner", GUEST: "Gus Guest"}
XSS_NAME = "<img src=x onerror=alert(1)>"
ALL_BUTTONS = ["copy", "quote", "translate", "feedback", "regenerate"]

expect.set_options(timeout=15_000)


# --- the stack and the browser ----------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("ui")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        with store_of(s) as store:
            for email, name in NAMES.items():
                store.accounts.create_user(email, name, PASSWORD)
            # The catalog before the gateway reads it: names, column order, every react
            # button, and a model whose *name* is an XSS payload.
            for order, (code, name) in enumerate(
                [("echo", "Echo"), ("upper", "Upper"), ("slow", "Slow"), ("hist", XSS_NAME)]
            ):
                store.catalog.create(code, name, order=order, react_buttons=ALL_BUTTONS)
        s.executor("echo")
        s.executor("upper", transform="upper")
        s.executor("slow", delay=0.05)
        s.executor("hist", transform="history")
        s.spawn("worker", ["worker", "start"])  # answers imported prompts (RQ)
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture
def page(ui: UI) -> Page:
    return ui.page()


# --- helpers ----------------------------------------------------------------------------------
def sign_in(page: Page, email: str = OWNER) -> None:
    page.goto("/login")
    page.locator('input[name="email"]').fill(email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator('form[action="/login"] button[type="submit"]').click()
    expect(page.locator("#kuwa-app .shell")).to_be_visible()  # the chat app booted


def csrf(page: Page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == CSRF_COOKIE)


def api_get(page: Page, path: str) -> Any:
    r = page.request.get(path, headers={"accept": "application/json"})
    assert r.ok, (path, r.status, r.text())
    return r.json()


def api_post(page: Page, path: str, body: dict[str, Any] | None = None) -> Any:
    r = page.request.post(
        path,
        data=body or {},
        headers={"accept": "application/json", "x-csrftoken": csrf(page)},
    )
    assert r.ok, (path, r.status, r.text())
    return r.json()


def room_id_of(page: Page) -> int:
    page.wait_for_url(re.compile(r"/rooms/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def create_room(page: Page, *codes: str) -> int:
    """Pick the models in the picker and start a chat; returns the room's id."""
    if not re.search(r"/$", page.url):
        page.goto("/")
    for code in codes:
        card = page.get_by_test_id(f"model-card-{code}")
        card.click()
        expect(card).to_have_attribute("aria-pressed", "true")
    page.get_by_test_id("start-chat").click()
    room = room_id_of(page)
    expect(page.get_by_test_id("composer")).to_be_visible()
    return room


def messages(page: Page, room: int) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = api_get(page, f"/app/rooms/{room}")["messages"]
    return msgs


@dataclass
class Turn:
    prompt: dict[str, Any]
    answers: dict[str, dict[str, Any]]  # model → the answer message (when first seen)


def turn_of(page: Page, room: int, content: str) -> Turn:
    """The newest prompt with this content (waits for it) and its answers."""
    found: list[Turn] = []

    def sent() -> bool:
        msgs = messages(page, room)
        prompts = [m for m in msgs if m["role"] == "user" and m["content"] == content]
        if not prompts:
            return False
        prompt = prompts[-1]
        answers = {m["model"]: m for m in msgs if m.get("parent") == prompt["id"]}
        if not answers:
            return False
        found.append(Turn(prompt, answers))
        return True

    wait_until(sent, 15, f"the prompt {content[:40]!r} and its answers")
    return found[-1]


def send(page: Page, room: int, text: str) -> Turn:
    composer = page.get_by_test_id("composer")
    composer.fill(text)
    composer.press("Enter")
    turn = turn_of(page, room, text)
    expect(composer).to_have_value("")
    return turn


def answer_el(page: Page, answer: dict[str, Any] | int) -> Any:
    ident = answer if isinstance(answer, int) else answer["id"]
    return page.get_by_test_id(f"answer-{ident}")


def wait_done(page: Page, *answers: dict[str, Any], status: str = "done") -> None:
    for a in answers:
        expect(answer_el(page, a)).to_have_attribute("data-status", status)


def body_text(page: Page, answer: dict[str, Any] | int) -> str:
    text: str = answer_el(page, answer).locator(".answer-body").inner_text()
    return " ".join(text.split())


def prompt_text(page: Page, turn: Turn) -> Any:
    return page.get_by_test_id(f"prompt-{turn.prompt['id']}").locator(".prompt-text")


def flat(text: str) -> str:
    return " ".join(text.split())


def wait_partial(page: Page, answer: dict[str, Any], full: int) -> None:
    """Until the running answer shows some text, but not all of it (it is streaming)."""
    page.wait_for_function(
        """([id, full]) => {
            const el = document.querySelector(`[data-testid="answer-${id}"]`);
            const text = el?.querySelector(".answer-body")?.textContent || "";
            return el?.dataset.status === "running" && text.length > 0 && text.length < full;
        }""",
        arg=[answer["id"], full],
        timeout=15_000,
    )


# --- 1. a three-model room --------------------------------------------------------------------
def test_three_models_answer_side_by_side(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "echo", "upper", "slow")
    for code in ("echo", "upper", "slow"):
        expect(page.get_by_test_id(f"column-{code}")).to_be_visible()

    # Shift+Enter is a newline, not a send.
    composer = page.get_by_test_id("composer")
    composer.click()
    composer.press_sequentially("Hello models,")
    composer.press("Shift+Enter")
    words = " ".join(f"word{i}" for i in range(30))
    composer.press_sequentially("here are " + words)
    expect(composer).to_have_value(f"Hello models,\nhere are {words}")
    assert messages(page, room) == []
    expect(page.locator('[data-testid^="prompt-"]')).to_have_count(0)

    # Enter sends; the slow answer is seen streaming, then every answer finishes.
    content = f"Hello models,\nhere are {words}"
    composer.press("Enter")
    turn = turn_of(page, room, content)
    assert set(turn.answers) == {"echo", "upper", "slow"}
    expect(page.get_by_test_id(f"prompt-{turn.prompt['id']}")).to_contain_text("Hello models,")
    wait_partial(page, turn.answers["slow"], len(content))
    expect(page.get_by_test_id("stop")).to_be_visible()  # something is running
    wait_done(page, *turn.answers.values())
    expect(page.get_by_test_id("stop")).to_be_hidden()
    for code in ("echo", "upper", "slow"):
        column = page.get_by_test_id(f"column-{code}")
        expect(column.get_by_test_id(f"answer-{turn.answers[code]['id']}")).to_be_visible()
    assert body_text(page, turn.answers["echo"]) == flat(content)
    assert body_text(page, turn.answers["upper"]) == flat(content.upper())
    assert body_text(page, turn.answers["slow"]) == flat(content)

    # Highlight input <-> output: hovering an answer marks its prompt and its sibling answers,
    # hovering the prompt marks every answer to it; another turn stays unmarked.
    second = send(page, room, "second turn")
    wait_done(page, *second.answers.values())
    prompt = page.get_by_test_id(f"prompt-{turn.prompt['id']}")
    answer_el(page, turn.answers["upper"]).hover()
    expect(prompt).to_have_class(re.compile(r"\bhl\b"))
    expect(answer_el(page, turn.answers["echo"])).to_have_class(re.compile(r"\bhl\b"))
    expect(answer_el(page, second.answers["echo"])).not_to_have_class(re.compile(r"\bhl\b"))
    page.get_by_test_id(f"prompt-{second.prompt['id']}").hover()
    expect(answer_el(page, second.answers["slow"])).to_have_class(re.compile(r"\bhl\b"))
    expect(prompt).not_to_have_class(re.compile(r"\bhl\b"))
    ui.assert_clean()


# --- 2. markdown and XSS ----------------------------------------------------------------------
XSS_PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "<svg onload=alert(1)>",
    '<iframe src="javascript:alert(1)">',
    '"><img src=x onerror=alert(1)>',
    '<a href="javascript:alert(1)">click</a> [y](JaVaScRiPt:alert(1)) ![z](javascript:alert(1))',
]

UNSAFE_IN_MESSAGES = """() => {
    const scope = [...document.querySelectorAll('.answer, .prompt, .room-title, #room-title,'
        + ' .col-name, .card-name, .col-tab')];
    const bad = [];
    for (const root of scope) {
        for (const el of root.querySelectorAll('*')) {
            const tag = el.tagName.toLowerCase();
            if (['script', 'iframe', 'object', 'embed'].includes(tag)) bad.push(tag);
            if (tag === 'img' && !el.closest('.avatar')) bad.push('img');
            for (const attr of el.attributes) {
                if (attr.name.startsWith('on')) bad.push(`${tag}[${attr.name}]`);
                if (/^\\s*javascript:/i.test(attr.value)) bad.push(`${tag}[${attr.name}=js]`);
            }
        }
    }
    return bad;
}"""


def test_markdown_renders_and_xss_stays_inert(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "echo")

    bold = send(page, room, "This is **bold** text")
    wait_done(page, bold.answers["echo"])
    expect(answer_el(page, bold.answers["echo"]).locator("strong")).to_have_text("bold")
    # The prompt itself is shown as typed (plain text).
    expect(page.get_by_test_id(f"prompt-{bold.prompt['id']}")).to_contain_text("**bold**")

    code = send(page, room, "Code:\n```python\ndef f(x):\n    return x + 1\n```")
    wait_done(page, code.answers["echo"])
    block = answer_el(page, code.answers["echo"]).locator("pre code")
    expect(block).to_have_class(re.compile(r"\bhljs\b"))
    expect(block).to_have_class(re.compile(r"\blanguage-python\b"))
    expect(block.locator('span[class*="hljs-keyword"]').first).to_have_text("def")

    for payload in XSS_PAYLOADS:
        turn = send(page, room, payload)
        wait_done(page, turn.answers["echo"])
        # Escaped, the payload reads as text (the links stay literal markdown).
        assert body_text(page, turn.answers["echo"]) == payload
        expect(prompt_text(page, turn)).to_have_text(payload)
    assert page.evaluate(UNSAFE_IN_MESSAGES) == []
    assert (
        page.locator(".answer a[href]").evaluate_all(
            "links => links.filter(a => !/^(https?:|mailto:|#|\\/)/i.test(a.getAttribute('href')))"
            ".map(a => a.getAttribute('href'))"
        )
        == []
    )

    # A room title with a payload (rename from the sidebar).
    item = page.get_by_test_id(f"room-{room}")
    item.hover()
    item.get_by_test_id("rename-room").click()
    title = '"><img src=x onerror=alert(1)>'
    page.get_by_test_id("rename-input").fill(title)
    page.get_by_test_id("rename-input").press("Enter")
    expect(page.locator("#room-title")).to_have_text(title)
    expect(item.locator(".room-title")).to_have_text(title)
    assert api_get(page, f"/app/rooms/{room}")["title"] == title
    page.reload()
    expect(page.locator("#room-title")).to_have_text(title)
    expect(page.get_by_test_id(f"room-{room}").locator(".room-title")).to_have_text(title)
    assert page.title().startswith(title)

    # A model whose catalog name is a payload: text in the picker, the column, the tabs.
    page.get_by_test_id("new-chat").click()
    card = page.get_by_test_id("model-card-hist")
    expect(card.locator(".card-name")).to_have_text(XSS_NAME)
    hist_room = create_room(page, "hist", "echo")
    expect(page.get_by_test_id("column-hist").locator(".col-name")).to_have_text(XSS_NAME)
    turn = send(page, hist_room, "who are you")
    wait_done(page, *turn.answers.values())
    expect(answer_el(page, turn.answers["hist"])).to_have_attribute(
        "aria-label", f"Answer from {XSS_NAME}"
    )
    page.wait_for_timeout(300)  # an injected onerror would have fired by now
    assert page.evaluate(UNSAFE_IN_MESSAGES) == []
    assert page.locator("img:not(.avatar img):not(header.top .brand img)").count() == 0
    assert ui.dialogs == [], ui.dialogs
    ui.assert_clean()


# --- 3. quoting -------------------------------------------------------------------------------
def test_quoting_answers_of_two_models(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "echo", "upper")
    first = send(page, room, "alpha beta")
    wait_done(page, *first.answers.values())

    answer_el(page, first.answers["echo"]).get_by_test_id("react-quote").click()
    answer_el(page, first.answers["upper"]).get_by_test_id("react-quote").click()
    expect(page.get_by_test_id("quote-chip")).to_have_count(2)
    expect(answer_el(page, first.answers["echo"]).get_by_test_id("react-quote")).to_have_attribute(
        "aria-pressed", "true"
    )
    expected = 'compare\nEcho:\n"""alpha beta"""\nUpper:\n"""ALPHA BETA"""'
    composer = page.get_by_test_id("composer")
    composer.fill("compare")
    composer.press("Enter")
    second = turn_of(page, room, expected)
    expect(page.get_by_test_id("quote-chip")).to_have_count(0)
    expect(prompt_text(page, second)).to_have_text(expected)
    wait_done(page, *second.answers.values())
    assert body_text(page, second.answers["upper"]) == flat(expected.upper())

    # One quote and an empty prompt: the quote itself is sent.
    answer_el(page, first.answers["upper"]).get_by_test_id("react-quote").click()
    expect(page.get_by_test_id("quote-chip")).to_have_count(1)
    expect(composer).to_have_value("")
    page.get_by_test_id("send").click()
    third = turn_of(page, room, "ALPHA BETA")
    assert third.prompt["id"] > second.prompt["id"]
    wait_done(page, *third.answers.values())
    assert body_text(page, third.answers["echo"]) == "ALPHA BETA"
    ui.assert_clean()


# --- 4. translation ---------------------------------------------------------------------------
def test_translate_an_answer_in_the_ui_language(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "echo")
    turn = send(page, room, "good morning")
    wait_done(page, turn.answers["echo"])

    # The theme switch flips and is remembered.
    html = page.locator("html")
    before = html.get_attribute("data-theme")
    assert before in ("light", "dark")
    after = "dark" if before == "light" else "light"
    page.get_by_test_id("theme").click()
    expect(html).to_have_attribute("data-theme", after)
    with page.expect_navigation():
        page.get_by_test_id("lang").select_option("zh-TW")
    expect(html).to_have_attribute("data-theme", after)
    expect(page.locator("html")).to_have_attribute("lang", "zh-TW")
    answer = answer_el(page, turn.answers["echo"])
    expect(answer).to_have_attribute("data-status", "done")
    answer.get_by_test_id("react-translate").click()
    translation = page.get_by_test_id(f"translation-{turn.answers['echo']['id']}")
    expect(translation).to_be_visible()
    expect(translation).to_contain_text("Traditional Chinese")
    expect(translation).to_contain_text("good morning")
    wait_until(
        lambda: (
            next(m for m in messages(page, room) if m["id"] == turn.answers["echo"]["id"])[
                "translation"
            ]["status"]
            == "done"
        ),
        15,
        "the translation to be saved",
    )
    body = answer.locator(".answer-body")
    expect(body).to_be_hidden()
    toggle = answer.get_by_test_id("show-original")
    toggle.click()
    expect(translation).to_be_hidden()
    expect(body).to_be_visible()
    expect(body).to_have_text("good morning")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.click()
    expect(translation).to_be_visible()
    expect(body).to_be_hidden()
    ui.assert_clean()


# --- 5. feedback ------------------------------------------------------------------------------
def test_feedback_with_flags_and_a_comment(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "echo")
    turn = send(page, room, "rate me")
    wait_done(page, turn.answers["echo"])
    answer = answer_el(page, turn.answers["echo"])
    answer.get_by_test_id("react-feedback-up").click()
    expect(answer.get_by_test_id("react-feedback-up")).to_have_attribute("aria-pressed", "true")
    panel = answer.get_by_test_id("feedback-detail")
    expect(panel).to_be_visible()
    expect(panel.get_by_test_id("flag-unsafe")).to_have_count(0)  # positive flags only
    panel.get_by_test_id("flag-correct").check()
    panel.get_by_test_id("flag-complete").check()
    panel.get_by_test_id("feedback-comment").fill("short and right")
    panel.get_by_test_id("feedback-submit").click()
    expect(panel).to_be_hidden()
    wait_until(
        lambda: (
            next(m for m in messages(page, room) if m["id"] == turn.answers["echo"]["id"])[
                "feedback"
            ]
            == {"rating": 1, "flags": ["correct", "complete"], "comment": "short and right"}
        ),
        10,
        "the feedback to be saved",
    )
    # After a reload the rating still shows.
    page.reload()
    expect(answer.get_by_test_id("react-feedback-up")).to_have_attribute("aria-pressed", "true")

    # Copy puts the answer on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    answer.get_by_test_id("react-copy").click()
    expect(answer.get_by_test_id("react-copy")).to_have_class(re.compile(r"\bdone\b"))
    assert page.evaluate("navigator.clipboard.readText()") == "rate me"

    # Delete asks first (the page's own dialog), then the answer is gone everywhere.
    answer.get_by_test_id("react-delete").click()
    page.get_by_test_id("confirm-cancel").click()
    expect(answer).to_be_visible()
    answer.get_by_test_id("react-delete").click()
    page.get_by_test_id("confirm-ok").click()
    expect(answer).to_have_count(0)
    assert turn.answers["echo"]["id"] not in [m["id"] for m in messages(page, room)]
    ui.assert_clean()


# --- 6. versions and branches -----------------------------------------------------------------
def test_regenerate_versions_and_edit_branches(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "echo")
    turn = send(page, room, "version me")
    first = turn.answers["echo"]
    wait_done(page, first)

    def assistant_versions() -> list[dict[str, Any]]:
        return [
            m
            for m in messages(page, room)
            if m["role"] == "assistant" and m["parent"] == turn.prompt["id"]
        ]

    shown = answer_el(page, first)
    shown.get_by_test_id("react-regenerate").click()
    wait_until(lambda: len(assistant_versions()) == 2, 10, "a second version")
    second = assistant_versions()[1]
    wait_done(page, second)
    answer_el(page, second).get_by_test_id("react-regenerate").click()
    wait_until(lambda: len(assistant_versions()) == 3, 10, "a third version")
    third = assistant_versions()[2]
    wait_done(page, third)
    column = page.get_by_test_id("column-echo")
    expect(column.get_by_test_id("versions")).to_contain_text("3/3")
    assert [v["selected"] for v in assistant_versions()] == [False, False, True]

    column.get_by_test_id("version-prev").click()
    expect(column.get_by_test_id("versions")).to_contain_text("2/3")
    expect(answer_el(page, second)).to_be_visible()
    expect(answer_el(page, third)).to_have_count(0)
    wait_until(
        lambda: [v["selected"] for v in assistant_versions()] == [False, True, False],
        10,
        "version 2 selected",
    )
    column.get_by_test_id("version-prev").click()
    expect(column.get_by_test_id("versions")).to_contain_text("1/3")
    expect(column.get_by_test_id("version-prev")).to_be_disabled()
    wait_until(
        lambda: [v["selected"] for v in assistant_versions()] == [True, False, False],
        10,
        "version 1 selected",
    )
    column.get_by_test_id("version-next").click()
    expect(column.get_by_test_id("versions")).to_contain_text("2/3")
    wait_until(
        lambda: [v["selected"] for v in assistant_versions()] == [False, True, False],
        10,
        "version 2 selected again",
    )
    assert body_text(page, second) == "version me"

    # Edit the prompt: a new branch with its own answer; browse back and forth.
    prompt = page.get_by_test_id(f"prompt-{turn.prompt['id']}")
    prompt.hover()
    prompt.get_by_test_id("edit-prompt").click()
    page.get_by_test_id("edit-area").fill("version me, edited")
    page.get_by_test_id("edit-submit").click()
    edited = turn_of(page, room, "version me, edited")
    assert edited.prompt["parent"] == turn.prompt["parent"]
    wait_done(page, edited.answers["echo"])
    new_prompt = page.get_by_test_id(f"prompt-{edited.prompt['id']}")
    expect(new_prompt.get_by_test_id("branches")).to_contain_text("2/2")
    expect(prompt).to_have_count(0)
    assert body_text(page, edited.answers["echo"]) == "version me, edited"
    new_prompt.get_by_test_id("branch-prev").click()
    expect(prompt).to_be_visible()
    expect(prompt.get_by_test_id("branches")).to_contain_text("1/2")
    expect(answer_el(page, second)).to_be_visible()  # the old branch keeps its chosen version
    wait_until(
        lambda: (
            [(m["content"], m["selected"]) for m in messages(page, room) if m["role"] == "user"]
            == [("version me", True), ("version me, edited", False)]
        ),
        10,
        "the first branch selected",
    )
    prompt.get_by_test_id("branch-next").click()
    expect(new_prompt).to_be_visible()
    expect(answer_el(page, edited.answers["echo"])).to_be_visible()
    ui.assert_clean()


# --- 7. stop ----------------------------------------------------------------------------------
def test_stop_cancels_a_streaming_answer(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "slow")
    long = " ".join(["word"] * 400)
    turn = send(page, room, long)
    answer = turn.answers["slow"]
    wait_partial(page, answer, len(long))
    page.get_by_test_id("stop").click()
    wait_done(page, answer, status="cancelled")
    expect(page.get_by_test_id("stop")).to_be_hidden()
    expect(answer_el(page, answer).locator(".answer-error")).to_be_visible()
    shown = body_text(page, answer)
    assert 0 < len(shown) < len(long)
    assert set(shown.split()) == {"word"}
    stored = next(m for m in messages(page, room) if m["id"] == answer["id"])
    assert stored["status"] == "cancelled"
    assert 0 < len(stored["content"]) < len(long)
    ui.assert_clean()


# --- 8. reload mid-stream ---------------------------------------------------------------------
def test_reload_mid_stream_keeps_streaming_without_duplicates(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "slow")
    text = " ".join(f"w{i}" for i in range(100))
    turn = send(page, room, text)
    answer = turn.answers["slow"]
    wait_partial(page, answer, len(text))
    page.reload()
    expect(answer_el(page, answer)).to_be_visible()
    wait_partial(page, answer, len(text))  # still running after the reload, text replayed
    wait_done(page, answer)
    assert body_text(page, answer) == text
    stored = next(m for m in messages(page, room) if m["id"] == answer["id"])
    assert stored["content"] == text
    ui.assert_clean()


# --- 9. a shared room, live -------------------------------------------------------------------
def test_shared_room_streams_to_both_and_unsharing_sends_the_guest_away(ui: UI) -> None:
    owner = ui.page()
    guest = ui.page()
    sign_in(owner, OWNER)
    sign_in(guest, GUEST)
    room = create_room(owner, "echo", "slow")

    owner.get_by_test_id("share").click()
    dialog = owner.get_by_test_id("share-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("share-email").fill(GUEST)
    dialog.get_by_test_id("share-role").select_option("participant")
    dialog.get_by_test_id("share-submit").click()
    member = dialog.locator('[data-testid^="member-user-"]').filter(has_text=NAMES[GUEST])
    expect(member).to_be_visible()
    members = api_get(owner, f"/app/rooms/{room}")["members"]
    assert [(m["email"], m["role"]) for m in members] == [(GUEST, "participant")]
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)

    guest.goto(f"/rooms/{room}")
    expect(guest.get_by_test_id("composer")).to_be_visible()  # a participant may send
    for viewer in (owner, guest):
        presence = viewer.get_by_test_id("presence").locator("[data-user-id]")
        expect(presence).to_have_count(2)
        labels = " ".join(presence.evaluate_all("els => els.map(e => e.title)"))
        assert NAMES[OWNER] in labels and NAMES[GUEST] in labels, labels

    text = " ".join(f"live{i}" for i in range(60))
    turn = send(owner, room, text)
    for viewer in (owner, guest):
        wait_partial(viewer, turn.answers["slow"], len(text))
    for viewer in (owner, guest):
        wait_done(viewer, *turn.answers.values())
        assert body_text(viewer, turn.answers["slow"]) == text
        assert body_text(viewer, turn.answers["echo"]) == text
    expect(guest.get_by_test_id(f"prompt-{turn.prompt['id']}")).to_contain_text(NAMES[OWNER])

    # Participant → viewer, live: the guest's composer gives way to the viewer's note.
    owner.get_by_test_id("share").click()
    dialog = owner.get_by_test_id("share-dialog")
    member = dialog.locator('[data-testid^="member-user-"]')
    member.locator('select[data-testid^="member-role-user-"]').select_option("viewer")
    expect(guest.get_by_test_id("viewer-note")).to_be_visible()
    expect(guest.get_by_test_id("composer")).to_have_count(0)
    expect(guest.get_by_test_id(f"answer-{turn.answers['echo']['id']}")).to_be_visible()

    # The owner takes the share back: the guest's page says so and leaves the room.
    member.get_by_test_id("member-remove").click()
    expect(dialog.locator('[data-testid^="member-user-"]')).to_have_count(0)
    expect(guest.get_by_test_id("toast")).to_contain_text("no longer have access")
    expect(guest).to_have_url(re.compile(r"/$"))
    expect(guest.get_by_test_id(f"room-{room}")).to_have_count(0)
    expect(guest.get_by_test_id("model-card-echo")).to_be_visible()  # back at the picker
    assert guest.request.get(f"/app/rooms/{room}").status == 404
    ui.assert_clean()


# --- 10. phones -------------------------------------------------------------------------------
def page_width(page: Page) -> int:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width


def test_phone_layout_tabs_and_no_overflow(ui: UI) -> None:
    page = ui.page(PHONE, mobile=True)
    sign_in(page)
    assert page_width(page) <= PHONE["width"]  # the picker
    room = create_room(page, "echo", "upper", "slow")
    turn = send(page, room, "hello from a phone")
    composer = page.get_by_test_id("composer")
    for code, text in (
        ("echo", "hello from a phone"),
        ("upper", "HELLO FROM A PHONE"),
        ("slow", "hello from a phone"),
    ):
        page.get_by_test_id(f"tab-{code}").click()
        expect(page.get_by_test_id(f"tab-{code}")).to_have_attribute("aria-selected", "true")
        answer = answer_el(page, turn.answers[code])
        expect(answer).to_be_visible()
        expect(answer).to_have_attribute("data-status", "done")
        assert body_text(page, turn.answers[code]) == text
        for other in {"echo", "upper", "slow"} - {code}:
            expect(page.get_by_test_id(f"column-{other}")).to_be_hidden()
        expect(composer).to_be_in_viewport()
        assert page_width(page) <= PHONE["width"]
    # Wide content (an unbroken word, a long URL, a long code line, a wide table) must wrap
    # or scroll inside its own box, not widen the page.
    # (few debug tokens: the slow model spends 50 ms on each)
    wide = (
        "x" * 120
        + " https://example.com/"
        + "s" * 150
        + "\n\n```\nvalue = "
        + "a" * 200
        + "\n```\n\n| "
        + " | ".join(f"a_long_table_heading_{i}" for i in range(6))
        + " |\n|"
        + "---|" * 6
    )
    wide_turn = send(page, room, wide)
    expect(prompt_text(page, wide_turn)).to_be_visible()
    for code in ("echo", "upper", "slow"):
        page.get_by_test_id(f"tab-{code}").click()
        wait_done(page, wide_turn.answers[code])
        expect(answer_el(page, wide_turn.answers[code]).locator("table")).to_have_count(1)
        assert page_width(page) <= PHONE["width"], (code, page_width(page))
    for width, height in ((360, 740), (320, 640)):
        page.set_viewport_size({"width": width, "height": height})
        expect(composer).to_be_in_viewport()
        assert page_width(page) <= width, (width, page_width(page))
    page.goto("/")
    expect(page.get_by_test_id("model-card-echo")).to_be_visible()
    assert page_width(page) <= 320
    ui.assert_clean()


# --- 11. screenshots for CI -------------------------------------------------------------------
def test_screenshots_of_a_room(ui: UI) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    desktop = ui.page(DESKTOP)
    sign_in(desktop)
    room = api_post(desktop, "/app/rooms", {"models": ["echo", "upper", "slow"], "chained": True})
    prompts = [
        "What is **Kuwa**? Answer with a list:\n\n- a gateway\n- executors\n- a chat UI",
        "Show code:\n```python\ndef hello(name):\n    return f'hi {name}'\n```",
    ]
    for text in prompts:
        sent = api_post(desktop, f"/app/rooms/{room['id']}/messages", {"content": text})
        ids = [a["id"] for a in sent["answers"]]
        wait_until(
            lambda ids=ids: all(
                m["status"] == "done" for m in messages(desktop, room["id"]) if m["id"] in ids
            ),
            15,
            "the answers",
        )
    desktop.goto(f"/rooms/{room['id']}")
    expect(desktop.locator('.answer[data-status="done"]')).to_have_count(6)
    expect(desktop.locator("pre code")).to_have_count(3)
    desktop.evaluate("document.fonts.ready.then(() => true)")
    desktop.screenshot(path=str(ARTIFACTS / "room-desktop.png"))

    phone = ui.page(PHONE, mobile=True)
    sign_in(phone)
    phone.goto(f"/rooms/{room['id']}")
    expect(phone.locator('.answer[data-status="done"]')).to_have_count(6)
    expect(phone.get_by_test_id("tab-echo")).to_be_visible()
    phone.evaluate("document.fonts.ready.then(() => true)")
    phone.screenshot(path=str(ARTIFACTS / "room-mobile.png"))
    for name in ("room-desktop.png", "room-mobile.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
    ui.assert_clean()


# --- 12. export, import, progress, the read-only link ------------------------------------------
def open_import(page: Page) -> Any:
    page.get_by_test_id("import").click()
    dialog = page.get_by_test_id("import-dialog")
    expect(dialog).to_be_visible()
    return dialog


def test_import_pasted_prompts_shows_progress_and_answers(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "echo")
    # Record whether the progress element ever showed (it is gone once nothing runs).
    page.evaluate(
        """() => {
            window.kuwaProgressSeen = [];
            new MutationObserver(() => {
                const el = document.querySelector('[data-testid="progress-echo"]');
                if (el) window.kuwaProgressSeen.push(el.textContent);
            }).observe(document.body, {subtree: true, childList: true, characterData: true});
        }"""
    )
    dialog = open_import(page)
    expect(dialog).to_contain_text("one prompt per line")
    prompts = ["first imported", "second imported", "third imported"]
    dialog.get_by_test_id("import-text").fill("\n".join(prompts) + "\n")
    dialog.get_by_test_id("import-submit").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_test_id("toast")).to_contain_text("Imported; 3 answers to write")
    for text in prompts:
        expect(page.locator(".prompt-text", has_text=text)).to_be_visible()
    done = page.locator('.answer[data-status="done"]')
    expect(done).to_have_count(3)
    for text in prompts:
        expect(page.locator(".answer-body", has_text=text)).to_have_count(1)
    expect(page.get_by_test_id("progress-echo")).to_have_count(0)  # nothing runs any more
    msgs = messages(page, room)
    assert [m["content"] for m in msgs if m["role"] == "user"] == prompts
    answers = [m for m in msgs if m["role"] == "assistant"]
    assert sorted(m["content"] for m in answers) == sorted(prompts)
    assert all(m["status"] == "done" for m in answers)
    # While answers ran the column head counted them (a very quick worker may finish before
    # the page hears of them: then the three done answers above are the proof).
    seen: list[str] = page.evaluate("window.kuwaProgressSeen")
    assert all(re.fullmatch(r"[0-3]/3", text) for text in seen), seen
    ui.assert_clean()


def test_import_with_a_bad_line_shows_it_and_keeps_the_earlier_rows(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "echo")
    tsv = "role\tmodel\tcontent\nuser\t\tkept prompt\nassistant\techo\tkept answer\nbot\t\tnever\n"
    dialog = open_import(page)
    dialog.get_by_test_id("import-text").fill(tsv)
    dialog.get_by_test_id("import-submit").click()
    error = dialog.get_by_test_id("import-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("line 4")
    expect(error).to_contain_text("bot")
    expect(dialog).to_be_visible()  # stays open with the message
    # The rows before the bad line were imported and the room shows them.
    expect(page.locator(".prompt-text", has_text="kept prompt")).to_be_visible()
    expect(page.locator(".answer-body", has_text="kept answer")).to_be_visible()
    msgs = messages(page, room)
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "kept prompt"),
        ("assistant", "kept answer"),
    ]
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)
    ui.assert_clean()


def test_export_menu_links_download_the_room(ui: UI, page: Page) -> None:
    sign_in(page)
    room = create_room(page, "echo")
    turn = send(page, room, "export me please")
    wait_done(page, *turn.answers.values())
    page.get_by_test_id("export").click()
    links = {f: page.get_by_test_id(f"export-{f}") for f in ("json", "tsv", "docx")}
    for link in links.values():
        expect(link).to_be_visible()
    hrefs = {f: link.get_attribute("href") or "" for f, link in links.items()}
    assert hrefs == {f: f"/app/rooms/{room}/export?format={f}" for f in links}
    r = page.request.get(hrefs["json"])
    assert r.ok, r.status
    data = r.json()
    rows = data["messages"] if isinstance(data, dict) else data
    assert [(m["role"], m["content"]) for m in rows] == [
        ("user", "export me please"),
        ("assistant", "export me please"),
    ]
    tsv = page.request.get(hrefs["tsv"])
    assert tsv.ok and "export me please" in tsv.text()
    docx = page.request.get(hrefs["docx"])
    assert docx.ok and docx.body()[:2] == b"PK"  # a zip: the Word document
    page.keyboard.press("Escape")
    ui.assert_clean()


def test_share_link_opens_read_only_and_turns_off(ui: UI) -> None:
    owner = ui.page()
    guest = ui.page()
    sign_in(owner, OWNER)
    sign_in(guest, GUEST)
    room = create_room(owner, "echo")
    turn = send(owner, room, "a linked prompt")
    wait_done(owner, *turn.answers.values())

    owner.get_by_test_id("share").click()
    dialog = owner.get_by_test_id("share-dialog")
    toggle = dialog.get_by_test_id("share-link-toggle")
    url = dialog.get_by_test_id("share-link-url")
    expect(toggle).not_to_be_checked()
    expect(url).to_be_hidden()
    toggle.click()
    expect(toggle).to_be_checked()
    expect(url).to_be_visible()
    expect(url).to_have_value(re.compile(r"^http://[^/]+/shared/\S+$"))
    link = url.input_value()
    assert api_get(owner, f"/app/rooms/{room}")["link"] == "/" + link.split("/", 3)[3]

    guest.goto(link)
    expect(guest.get_by_text("a linked prompt").first).to_be_visible()
    expect(guest.get_by_test_id("composer")).to_have_count(0)
    assert guest.request.get(f"/app/rooms/{room}").status == 404  # a link, not a membership

    toggle.click()
    expect(toggle).not_to_be_checked()
    expect(url).to_be_hidden()
    assert guest.request.get(link).status == 404
    assert api_get(owner, f"/app/rooms/{room}")["link"] is None
    ui.assert_clean()
