"""Dashboard logs (``Dashboard_read_logs``): the job log and the audit log, with filters.

The job log (``kuwa.broker.joblog``) pages by cursor: "Older" continues after the last entry
shown. A filter that matches rarely reads at most ``SCAN`` entries per page, so a page can
come back short with an "Older" link that searches on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.broker import joblog
from kuwa.broker.connection import redis_errors
from kuwa.errors import InvalidRequestError, KuwaError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.state import state_of
from kuwa.rooms.inspect import Inspect
from kuwa.rooms.training import parse_date
from kuwa.schemas import JobStatus
from kuwa.web.core import page, web_state
from kuwa.web.dashboard_page import LOGS, show

PAGE_SIZE = 50
SCAN = 20_000
STATUSES = tuple(s.value for s in JobStatus if s.finished)
_CURSOR_CHARS = set("0123456789-")


def utc(at: float | dt.datetime | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS`` UTC ("" for none)."""
    if at is None or at == 0:
        return ""
    when = at if isinstance(at, dt.datetime) else dt.datetime.fromtimestamp(at, dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    """A duration for a table cell: ms below a second."""
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


async def user_id_of(request: Request, email: str) -> int | None:
    """The id of the account with this email (None for an empty filter)."""
    if not email:
        return None
    user = await run_in_threadpool(web_state(request).store.accounts.find_user, email)
    if user is None:
        raise InvalidRequestError(f"No account has the email {email!r}.", param="user")
    return user.id


def filters_of(params: QueryParams, names: tuple[str, ...]) -> dict[str, str]:
    return {name: params.get(name, "").strip()[:254] for name in names}


def link(path: str, filters: dict[str, str], **extra: str) -> str:
    query = {k: v for k, v in {**filters, **extra}.items() if v}
    return path + ("?" + urlencode(query) if query else "")


async def _job_filter(request: Request, shown: dict[str, str]) -> joblog.JobFilter:
    status = shown["status"]
    if status and status not in STATUSES:
        raise InvalidRequestError(f"status must be one of {', '.join(STATUSES)}", param="status")
    since = parse_date(shown["since"], "since")
    until = parse_date(shown["until"], "until")
    return joblog.JobFilter(
        user_id=await user_id_of(request, shown["user"]),
        model=shown["model"],
        group=shown["group"] or None,
        status=status,
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
    )


def _cursor(params: QueryParams) -> str | None:
    before = params.get("before", "")
    if not before:
        return None
    if len(before) > 40 or not set(before) <= _CURSOR_CHARS or before.count("-") != 1:
        raise InvalidRequestError("before must be a job-log entry id", param="before")
    return before


async def _read_jobs(request: Request, shown: dict[str, str], limit: int) -> joblog.JobPage:
    flt = await _job_filter(request, shown)
    before = _cursor(request.query_params)
    with redis_errors("reading the job log"):
        return await joblog.read(
            state_of(request).redis, flt, before=before, limit=limit, scan=SCAN
        )


JOB_FILTERS = ("user", "model", "group", "status", "since", "until")


@page(LOGS)
@endpoint("The job log", media=HTML)
async def jobs_page(request: Request) -> Response:
    shown = filters_of(request.query_params, JOB_FILTERS)
    try:
        result = await _read_jobs(request, shown, PAGE_SIZE)
    except KuwaError as exc:
        return await _jobs(request, shown, joblog.JobPage([], None, 0), exc.message, exc.status)
    return await _jobs(request, shown, result)


async def _jobs(
    request: Request,
    shown: dict[str, str],
    result: joblog.JobPage,
    error: str = "",
    status: int = 200,
) -> Response:
    ids = {r.user_id for r in result.records if r.user_id is not None}
    emails = await run_in_threadpool(Inspect(web_state(request).store.db).emails, ids)
    with redis_errors("reading the job log"):
        models = sorted(await state_of(request).chat.registry.known_models())
        total = await joblog.length(state_of(request).redis)
    return await show(
        request,
        "dashboard/jobs.html",
        status_code=status,
        error=error,
        records=result.records,
        emails=emails,
        filters=shown,
        models=models,
        statuses=STATUSES,
        total=total,
        scanned=result.scanned,
        first=link("/dashboard/jobs", shown) if request.query_params.get("before") else "",
        older=link("/dashboard/jobs", shown, before=result.next) if result.next else "",
        utc=utc,
        seconds=seconds,
    )


@page(LOGS)
@endpoint("The job log as JSON", answer=dict[str, Any])
async def jobs_json(request: Request) -> Response:
    shown = filters_of(request.query_params, JOB_FILTERS)
    raw = request.query_params.get("limit", str(PAGE_SIZE))
    limit = min(max(int(raw), 1), 500) if raw.isdigit() else PAGE_SIZE
    result = await _read_jobs(request, shown, limit)
    ids = {r.user_id for r in result.records if r.user_id is not None}
    emails = await run_in_threadpool(Inspect(web_state(request).store.db).emails, ids)
    jobs: list[dict[str, Any]] = [
        {**r.to_json(), "user": emails.get(r.user_id, "") if r.user_id else ""}
        for r in result.records
    ]
    return JSONResponse({"jobs": jobs, "next": result.next, "scanned": result.scanned})


# --- audit log ------------------------------------------------------------------------------
OUTCOMES = {"ok": True, "failed": False}
AUDIT_FILTERS = ("action", "actor", "ip", "ok")


@page(LOGS)
@endpoint("The audit log (dashboard)", media=HTML)
async def audit_page(request: Request) -> Response:
    store = web_state(request).store
    shown = filters_of(request.query_params, AUDIT_FILTERS)
    if shown["ok"] not in OUTCOMES:
        shown["ok"] = ""
    raw_page = request.query_params.get("page", "1")
    page_no = min(int(raw_page), 100_000) if raw_page.isdigit() and int(raw_page) > 0 else 1
    entries = await run_in_threadpool(
        lambda: store.audit.query(
            action=shown["action"][:64],
            actor=shown["actor"],
            ip=shown["ip"][:64],
            ok=OUTCOMES.get(shown["ok"]),
            limit=PAGE_SIZE + 1,
            offset=(page_no - 1) * PAGE_SIZE,
        )
    )
    actions = sorted(await run_in_threadpool(store.audit.actions))
    return await show(
        request,
        "dashboard/audit.html",
        entries=entries[:PAGE_SIZE],
        actions=actions,
        filters=shown,
        page_no=page_no,
        newer=link("/dashboard/audit", shown, page=str(page_no - 1)) if page_no > 1 else "",
        older=link("/dashboard/audit", shown, page=str(page_no + 1))
        if len(entries) > PAGE_SIZE
        else "",
        utc=utc,
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/dashboard/jobs", jobs_page, methods=["GET"]),
        Route("/app/dashboard/jobs", jobs_json, methods=["GET"]),
        Route("/dashboard/audit", audit_page, methods=["GET"]),
    ]
