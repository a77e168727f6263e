"""What every dashboard page shares: the permissions, the sub-navigation and UI strings.

The UI strings are the chat page's (``static/i18n/*.json``, keys ``dash_*``), so the pages and
their scripts speak the same words.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from kuwa.broker.timeseries import Sampler
from kuwa.gateway.state import state_of
from kuwa.web.core import current_user, render, ui_lang, web_state

TAB = "tab_Dashboard"
LOGS = "Dashboard_read_logs"
STATISTICS = "Dashboard_read_statistics"
INSPECT = "Dashboard_read_inspect"
FEEDBACKS = "Dashboard_read_feedbacks"
STRESS = "tab_Manage"  # stress runs send real load: administrators only

PAGES = (
    (TAB, "/dashboard", "dash_overview"),
    (LOGS, "/dashboard/jobs", "dash_jobs"),
    (LOGS, "/dashboard/audit", "dash_audit"),
    (STATISTICS, "/dashboard/stats", "dash_stats"),
    (INSPECT, "/dashboard/inspect", "dash_inspect"),
    (FEEDBACKS, "/dashboard/feedback", "dash_feedback"),
    (STRESS, "/dashboard/stress", "dash_stress"),
)
MAX_MINUTES = 24 * 60


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """The UI strings of ``lang`` alone (the files the chat page reads)."""
    folder = resources.files("kuwa.web").joinpath("static", "i18n")
    words: dict[str, str] = orjson.loads(folder.joinpath(f"{lang}.json").read_bytes())
    return words


def plural(lang: str, n: int) -> str:
    """The CLDR plural category of ``n``, as the chat page's ``Intl.PluralRules`` gives it for
    the UI's languages: English tells one from other; Chinese has no plural forms."""
    return "one" if n == 1 and not lang.startswith("zh") else "other"


class Words:
    """``t("key", name=…)`` in templates: the string with ``{name}`` filled in; with a count
    ``n``, the catalog's plural form (``KEY_one``, …) when it has one. English fills in what
    the language's catalog lacks (with English plurals)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def _pick(self, lang: str, key: str, n: Any) -> str | None:
        words = catalog(lang)
        if isinstance(n, int) and not isinstance(n, bool):
            form = words.get(f"{key}_{plural(lang, n)}")
            if form is not None:
                return form
        return words.get(key)

    def __call__(self, key: str, **values: Any) -> str:
        n = values.get("n")
        text = self._pick(self.lang, key, n)
        if text is None:
            text = self._pick("en", key, n)
        if text is None:
            text = key
        for name, value in values.items():
            text = text.replace("{" + name + "}", str(value))
        return text


async def show(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """Render a dashboard page with its sub-navigation (the pages this user may open)."""
    user = await current_user(request)
    assert user is not None  # @page let only a signed-in user through
    lang = ui_lang(request)
    t = Words(lang)
    subnav = [(href, t(label)) for perm, href, label in PAGES if user.can(perm)]
    return await render(
        request,
        template,
        status_code=status_code,
        lang=lang,
        t=t,
        subnav=subnav,
        here=request.url.path,
        **context,
    )


def sampler_of(request: Request) -> Sampler:
    gateway = state_of(request)
    return Sampler.from_settings(web_state(request).settings, gateway.redis, gateway.chat.registry)
