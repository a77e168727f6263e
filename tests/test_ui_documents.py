"""Chat with documents in a real browser (Chromium through Playwright) against a real stack:
upload by the button, drag and drop and paste; indexing shown on the file's chip; numbered
citations in the answer that open the passage (file, page) in a side panel; both languages,
both themes and a 390 px phone. Screenshots land in ``test-artifacts/screenshots/``."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import docfiles
from tests.browser import PHONE, UI, shot
from tests.stack import RedisServer, Stack
from tests.web import CSRF_COOKIE, PASSWORD, store_of

OWNER = "dora@example.com"
XSS_NAME = "<img src=x onerror=alert(1)>.txt"
QUESTION = "What is the launch code of the Zephyr project?"

expect.set_options(timeout=45_000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("ui-docs")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        with store_of(s) as store:
            store.accounts.create_user(OWNER, "Dora Docs", PASSWORD)
            store.catalog.create("hist", "History", order=0)
        s.executor("hist", transform="history")
        s.spawn("worker", ["worker", "start"])  # indexes uploads (RQ)
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture
def page(ui: UI) -> Page:
    return ui.page()


def sign_in(page: Page) -> None:
    page.goto("/login")
    page.locator('input[name="email"]').fill(OWNER)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator('form[action="/login"] button[type="submit"]').click()
    expect(page.get_by_test_id("lang")).to_be_visible()


def open_room(page: Page) -> int:
    page.goto("/")
    page.get_by_test_id("model-card-hist").click()
    page.get_by_test_id("start-chat").click()
    page.wait_for_url(re.compile(r"/rooms/\d+$"))
    expect(page.get_by_test_id("composer")).to_be_visible()
    return int(page.url.rsplit("/", 1)[1])


def files_of(page: Page, room: int) -> list[dict[str, Any]]:
    r = page.request.get(f"/app/rooms/{room}/files", headers={"accept": "application/json"})
    assert r.ok
    files: list[dict[str, Any]] = r.json()["files"]
    return files


def drop(page: Page, name: str, data: bytes, kind: str) -> None:
    """Drag a file from the desktop and drop it on the room."""
    page.evaluate(
        """([name, b64, kind]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: kind }));
            const room = document.querySelector(".room");
            const init = { bubbles: true, cancelable: true, dataTransfer: dt };
            for (const type of ["dragenter", "dragover", "drop"]) {
              room.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        [name, base64.b64encode(data).decode(), kind],
    )


def paste(page: Page, name: str, data: bytes) -> None:
    page.evaluate(
        """([name, text]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, { type: "text/plain" }));
            const box = document.querySelector('[data-testid="composer"]');
            const init = { bubbles: true, cancelable: true, clipboardData: dt };
            box.dispatchEvent(new ClipboardEvent("paste", init));
        }""",
        [name, data.decode()],
    )


def test_upload_ask_and_open_the_cited_passage(ui: UI, page: Page) -> None:
    sign_in(page)
    room = open_room(page)
    # The button: the composer's paperclip opens a file picker.
    with page.expect_file_chooser() as chooser:
        page.get_by_test_id("attach").click()
    chooser.value.set_files(
        files=[
            {
                "name": "report.pdf",
                "mimeType": "application/pdf",
                "buffer": docfiles.pdf_with_fact(),
            }
        ]
    )
    expect(page.locator('[data-testid^="file-file-"][data-status="ready"]')).to_have_count(1)
    # Drag and drop, and paste; a name that is markup stays text.
    drop(page, "towns.csv", docfiles.rows_csv(), "text/csv")
    paste(page, XSS_NAME, b"<script>alert(1)</script> Otters hold hands.")
    expect(page.locator('[data-testid^="file-file-"][data-status="ready"]')).to_have_count(3)
    assert sorted(f["name"] for f in files_of(page, room)) == sorted(
        ["report.pdf", "towns.csv", XSS_NAME]
    )
    expect(page.get_by_text(XSS_NAME)).to_be_visible()
    # A damaged file: the upload is refused with the reason.
    drop(page, "broken.pdf", b"%PDF-1.7 nothing more", "application/pdf")
    expect(page.locator(".toast").filter(has_text="broken.pdf")).to_be_visible()

    page.get_by_test_id("composer").fill(QUESTION)
    page.get_by_test_id("send").click()
    answer = page.locator('article.answer[data-status="done"]')
    expect(answer).to_have_count(1)
    cite = answer.get_by_test_id("cite-1").first
    expect(cite).to_be_visible()
    expect(answer.get_by_test_id("sources")).to_contain_text("report.pdf, page 3")
    shot(page, "documents-answer.png")
    cite.click()
    panel = page.get_by_test_id("passage-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("Passage 1")
    expect(panel).to_contain_text("report.pdf, page 3")
    expect(page.get_by_test_id("passage-text")).to_have_text(docfiles.FACT)
    link = page.get_by_test_id("passage-download")
    assert re.fullmatch(r"/app/files/file-[0-9a-f]+/content", link.get_attribute("href") or "")
    shot(page, "documents-passage.png")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()

    # Removing a file takes it off the strip.
    chip = page.locator('[data-testid^="file-file-"]').filter(has_text="towns.csv")
    chip.get_by_test_id("remove-file").click()
    expect(page.locator('[data-testid^="file-file-"]')).to_have_count(2)

    # zh-TW and the other theme, then a phone.
    html = page.locator("html")
    before = html.get_attribute("data-theme")
    page.get_by_test_id("theme").click()
    expect(html).not_to_have_attribute("data-theme", before or "")
    with page.expect_navigation():
        page.get_by_test_id("lang").select_option("zh-TW")
    answer = page.locator('article.answer[data-status="done"]')
    expect(answer.get_by_test_id("sources")).to_contain_text("來源")
    expect(answer.get_by_test_id("sources")).to_contain_text("report.pdf，第 3 頁")  # noqa: RUF001
    answer.get_by_test_id("source-1").click()
    expect(page.get_by_test_id("passage-panel")).to_contain_text("段落 1")
    shot(page, "documents-passage-zh-dark.png")
    ui.assert_clean()


def test_the_passage_panel_fits_a_phone(ui: UI) -> None:
    page = ui.page(PHONE, mobile=True)
    sign_in(page)
    room = open_room(page)
    page.get_by_test_id("file-input").set_input_files(
        files=[
            {
                "name": "report.pdf",
                "mimeType": "application/pdf",
                "buffer": docfiles.pdf_with_fact(),
            }
        ]
    )
    expect(page.locator('[data-testid^="file-file-"][data-status="ready"]')).to_have_count(1)
    assert files_of(page, room)[0]["pages"] == 5
    page.get_by_test_id("composer").fill(QUESTION)
    page.get_by_test_id("send").click()
    answer = page.locator('article.answer[data-status="done"]')
    answer.get_by_test_id("cite-1").first.click()
    panel = page.get_by_test_id("passage-panel")
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "documents-phone.png")
    page.get_by_test_id("passage-close").click()
    expect(panel).to_be_hidden()
    ui.assert_clean()


def test_a_bot_gets_knowledge_in_the_store_editor(ui: UI, page: Page) -> None:
    sign_in(page)
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == CSRF_COOKIE)
    r = page.request.post(
        "/app/bots",
        data={"name": "Zephyr desk", "base": "hist", "modelfile": ""},
        headers={"accept": "application/json", "x-csrftoken": csrf},
    )
    assert r.ok, r.text()
    bot = r.json()
    page.goto("/store")
    page.get_by_test_id(f"bot-edit-{bot['id']}").click()
    knowledge = page.get_by_test_id("bot-knowledge")
    expect(knowledge).to_be_visible()
    knowledge.get_by_test_id("knowledge-input").set_input_files(
        files=[
            {
                "name": "zephyr.pdf",
                "mimeType": "application/pdf",
                "buffer": docfiles.pdf_with_fact(),
            }
        ]
    )
    expect(knowledge.locator('[data-status="ready"]')).to_have_count(1)
    shot(page, "documents-bot-knowledge.png")
    page.get_by_test_id("bot-save").click()
    expect(page.get_by_test_id("bot-editor")).to_have_count(0)
    # In a room, the bot answers from its knowledge, citing page 3.
    page.goto("/")
    page.get_by_test_id(f"bot-card-{bot['id']}").click()
    page.get_by_test_id("start-chat").click()
    page.wait_for_url(re.compile(r"/rooms/\d+$"))
    page.get_by_test_id("composer").fill(QUESTION)
    page.get_by_test_id("send").click()
    answer = page.locator('article.answer[data-status="done"]')
    expect(answer.get_by_test_id("sources")).to_contain_text("zephyr.pdf, page 3")
    answer.get_by_test_id("source-1").click()
    expect(page.get_by_test_id("passage-text")).to_have_text(docfiles.FACT)
    ui.assert_clean()
