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
def strings(lang: str) -> dict[str, str]:
    """The UI strings of ``lang`` over the English ones (the files the chat page reads)."""
    folder = resources.files("kuwa.web").joinpath("static", "i18n")
    words: dict[str, str] = orjson.loads(folder.joinpath("en.json").read_bytes())
    if lang != "en":
        words = {**words, **orjson.loads(folder.joinpath(f"{lang}.json").read_bytes())}
    return words


class Words:
    """``t("key", name=…)`` in templates: the string with ``{name}`` filled in."""

    def __init__(self, lang: str) -> None:
        self.words = strings(lang)

    def __call__(self, key: str, **values: Any) -> str:
        text = self.words.get(key, key)
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
