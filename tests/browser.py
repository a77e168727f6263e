"""What the browser tests share: Debian's Chromium driven by Playwright, fresh contexts that
record dialogs and page errors, screenshots under ``test-artifacts/screenshots/``. The
``browser`` and ``ui`` fixtures are in ``tests/conftest.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class UI:
    """Fresh browser contexts for one test; records dialogs and uncaught page errors."""

    browser: Browser
    base_url: str
    contexts: list[BrowserContext] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def page(self, viewport: dict[str, int] = DESKTOP, *, mobile: bool = False) -> Page:
        extra: dict[str, Any] = {"is_mobile": True, "has_touch": True} if mobile else {}
        context = self.browser.new_context(
            base_url=self.base_url, viewport=viewport, locale="en-US", **extra
        )
        self.contexts.append(context)
        page = context.new_page()

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def assert_clean(self) -> None:
        assert self.dialogs == [], f"a dialog fired: {self.dialogs}"
        assert self.errors == [], f"uncaught errors in the page: {self.errors}"

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def shot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Save a screenshot for CI to keep (and people to look at)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)
