"""The Manage pages in a real browser (Chromium through Playwright): the group editor's
readable permissions in both languages. Screenshots land in
``test-artifacts/screenshots/manage-*.png``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from kuwa.accounts import permissions
from kuwa.web.i18n import catalog
from tests.browser import DESKTOP, PHONE, UI, shot
from tests.stack import RedisServer, Stack
from tests.web import PASSWORD, make_user, store_of

ADMIN = "root@example.com"

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("ui-manage")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        make_user(s, ADMIN, admin=True)
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


def admin_page(ui: UI, lang: str, viewport: dict[str, int] = DESKTOP) -> Page:
    page = ui.page(viewport, mobile=viewport == PHONE)
    page.context.add_cookies([{"name": "kuwa_lang", "value": lang, "url": ui.base_url}])
    page.goto("/login")
    page.locator('input[name="email"]').fill(ADMIN)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator('form[action="/login"] button[type="submit"]').click()
    page.wait_for_load_state()
    return page


def users_group_id(stack: Stack) -> int:
    with store_of(stack) as store:
        return store.groups.get("Users").id


def test_every_permission_has_a_label_and_a_description_in_both_languages() -> None:
    for lang in ("en", "zh-TW"):
        words = catalog(lang)
        for name in permissions.ALL:
            for key in (f"perm_{name}", f"perm_{name}_desc"):
                assert words.get(key, "").strip(), f"{lang}: {key} is missing"
        labels = [words[f"perm_{name}"] for name in permissions.ALL]
        assert len(set(labels)) == len(labels), f"{lang}: two permissions share a label"


@pytest.mark.parametrize(
    ("lang", "label", "desc"),
    [
        ("en", "Detailed feedback", "Add reasons and a comment to a rating."),
        ("zh-TW", "詳細回饋", "在評價中加入原因與意見。"),
    ],
)
def test_the_group_editor_names_permissions_people_can_read(
    ui: UI, stack: Stack, lang: str, label: str, desc: str
) -> None:
    """The editor listed raw keys such as Room_update_detail_feedback."""
    page = admin_page(ui, lang)
    page.goto(f"/manage/groups/{users_group_id(stack)}")
    perm = page.get_by_test_id("perm-Room_update_detail_feedback")
    expect(perm.locator(".perm-label")).to_have_text(label)
    expect(perm.locator(".perm-desc")).to_have_text(desc)
    expect(perm.locator(".perm-key")).to_have_text("Room_update_detail_feedback")
    expect(perm.locator("input[type=checkbox]")).to_be_checked()
    # The key is small beside the label.
    sizes = perm.evaluate(
        """el => [el.querySelector('.perm-label'), el.querySelector('.perm-key')]
            .map(e => parseFloat(getComputedStyle(e).fontSize))"""
    )
    assert sizes[1] < sizes[0], sizes
    expect(page.locator("label.perm")).to_have_count(len(permissions.ALL))
    # Clicking the label's text toggles the permission, and saving keeps it off.
    perm.locator(".perm-label").click()
    expect(perm.locator("input[type=checkbox]")).not_to_be_checked()
    perm.locator(".perm-label").click()
    perm.scroll_into_view_if_needed()
    shot(page, f"manage-group-permissions-{lang}.png")
    phone = admin_page(ui, lang, PHONE)
    phone.goto(f"/manage/groups/{users_group_id(stack)}")
    phone.get_by_test_id("perm-Room_update_detail_feedback").scroll_into_view_if_needed()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, f"manage-group-permissions-{lang}-phone.png")
    ui.assert_clean()


def test_the_group_editor_sets_generation_bounds(ui: UI, stack: Stack) -> None:
    page = admin_page(ui, "en")
    group = users_group_id(stack)
    page.goto(f"/manage/groups/{group}")
    bounds = page.get_by_test_id("group-bounds")
    expect(bounds).to_contain_text("Generation bounds")
    bounds.locator('input[name="max_temperature"]').fill("3")
    # The field's max stops the browser; the server checks too.
    page.locator(f'form[action="/manage/groups/{group}"]').first.evaluate(
        "f => f.noValidate = true"
    )
    page.locator(f'form[action="/manage/groups/{group}"] button[type="submit"]').last.click()
    expect(page.locator(".flash.error")).to_contain_text("between 0 and 2")
    page.get_by_test_id("group-bounds").locator('input[name="max_temperature"]').fill("0.7")
    page.get_by_test_id("group-bounds").locator('input[name="max_tokens"]').fill("2048")
    page.locator(f'form[action="/manage/groups/{group}"] button[type="submit"]').last.click()
    expect(page.locator(".flash")).to_contain_text("Saved")
    expect(page.locator('input[name="max_temperature"]')).to_have_value("0.7")
    expect(page.locator('input[name="max_tokens"]')).to_have_value("2048")
    expect(page.locator('input[name="max_top_p"]')).to_have_value("")
    with store_of(stack) as store:
        saved = store.groups.get("Users").bounds
    assert (saved.temperature, saved.top_p, saved.max_tokens) == (0.7, None, 2048)
    ui.assert_clean()
