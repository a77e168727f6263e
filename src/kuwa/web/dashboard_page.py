"""What every dashboard page shares: the permissions and the sub-navigation.

The UI strings are the chat page's (``static/i18n/*.json``, keys ``dash_*``, through
:mod:`kuwa.web.i18n`), so the pages and their scripts speak the same words.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kuwa.broker.timeseries import Sampler
from kuwa.gateway.state import state_of
from kuwa.web.core import current_user, render, ui_lang, web_state
from kuwa.web.i18n import Words

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
