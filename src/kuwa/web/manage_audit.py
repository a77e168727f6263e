"""The Manage tab's Audit log page: who did what, when and from where, filtered and paged."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.web.core import page, render, web_state
from kuwa.web.manage import MANAGE

PAGE_SIZE = 50
OUTCOMES = {"ok": True, "failed": False}


@page(MANAGE)
@endpoint("The audit log", media=HTML)
async def audit_page(request: Request) -> Response:
    store = web_state(request).store
    q = request.query_params
    action = q.get("action", "").strip()[:64]
    actor = q.get("actor", "").strip()[:254]
    ip = q.get("ip", "").strip()[:64]
    outcome = q.get("ok", "")
    outcome = outcome if outcome in OUTCOMES else ""
    raw_page = q.get("page", "1")
    page_no = min(int(raw_page), 100_000) if raw_page.isdigit() and int(raw_page) > 0 else 1
    entries = await run_in_threadpool(
        lambda: store.audit.query(
            action=action,
            actor=actor,
            ip=ip,
            ok=OUTCOMES.get(outcome),
            limit=PAGE_SIZE + 1,
            offset=(page_no - 1) * PAGE_SIZE,
        )
    )
    actions = sorted(await run_in_threadpool(store.audit.actions))
    filters = {"action": action, "actor": actor, "ip": ip, "ok": outcome}

    def link(number: int) -> str:
        query = {k: v for k, v in filters.items() if v}
        if number > 1:
            query["page"] = str(number)
        return "/manage/audit" + ("?" + urlencode(query) if query else "")

    return await render(
        request,
        "manage/audit.html",
        entries=entries[:PAGE_SIZE],
        actions=actions,
        filters=filters,
        page_no=page_no,
        previous=link(page_no - 1) if page_no > 1 else "",
        next=link(page_no + 1) if len(entries) > PAGE_SIZE else "",
        utc=_utc,
    )


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def routes() -> list[BaseRoute]:
    return [Route("/manage/audit", audit_page, methods=["GET"])]
