"""Dashboard Inspect (``Dashboard_read_inspect``): search stored messages across rooms; and
Feedback (``Dashboard_read_feedbacks``): ratings with their answers, and the export links.

Results are shown as escaped text (never rendered Markdown or HTML) and link nowhere: the
rooms stay private to their members, and the permission grants reading the text here only.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.errors import InvalidRequestError, KuwaError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.rooms.inspect import FeedbackQuery, Inspect, MessageQuery
from kuwa.rooms.training import FORMATS, parse_date
from kuwa.web.core import page, web_state
from kuwa.web.dashboard_logs import filters_of, link, user_id_of, utc
from kuwa.web.dashboard_page import FEEDBACKS, INSPECT, show

PAGE_SIZE = 25
SHOWN_CHARS = 4000  # of one message on the page (the rest is cut, with a note)
ROLES = ("user", "assistant")
RATINGS = {"1": 1, "-1": -1, "0": 0}


def _page_no(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return min(int(raw), 100_000) if raw.isdigit() and int(raw) > 0 else 1


def _inspect(request: Request) -> Inspect:
    return Inspect(web_state(request).store.db)


INSPECT_FILTERS = ("q", "user", "model", "role", "since", "until")


@page(INSPECT)
@endpoint("Inspect rooms and messages", media=HTML)
async def inspect_page(request: Request) -> Response:
    shown = filters_of(request.query_params, INSPECT_FILTERS)
    page_no = _page_no(request)
    searched = any(shown.values())
    found = []
    error, status = "", 200
    if searched:
        try:
            if shown["role"] and shown["role"] not in ROLES:
                raise InvalidRequestError("role must be user or assistant", param="role")
            query = MessageQuery(
                text=shown["q"],
                user_id=await user_id_of(request, shown["user"]),
                model=shown["model"],
                role=shown["role"],
                since=parse_date(shown["since"], "since"),
                until=parse_date(shown["until"], "until"),
            )
            found = await run_in_threadpool(
                lambda: _inspect(request).messages(
                    query, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE
                )
            )
        except KuwaError as exc:
            error, status = exc.message, exc.status
    return await show(
        request,
        "dashboard/inspect.html",
        status_code=status,
        error=error,
        searched=searched,
        filters=shown,
        results=found[:PAGE_SIZE],
        shown_chars=SHOWN_CHARS,
        page_no=page_no,
        newer=link("/dashboard/inspect", shown, page=str(page_no - 1)) if page_no > 1 else "",
        older=link("/dashboard/inspect", shown, page=str(page_no + 1))
        if len(found) > PAGE_SIZE
        else "",
        utc=utc,
    )


FEEDBACK_FILTERS = ("model", "rating", "user", "since", "until", "commented")


@page(FEEDBACKS)
@endpoint("The feedback given", media=HTML)
async def feedback_page(request: Request) -> Response:
    shown = filters_of(request.query_params, FEEDBACK_FILTERS)
    page_no = _page_no(request)
    rows = []
    error, status = "", 200
    try:
        if shown["rating"] and shown["rating"] not in RATINGS:
            raise InvalidRequestError("rating must be 1, -1 or 0", param="rating")
        query = FeedbackQuery(
            model=shown["model"],
            rating=RATINGS.get(shown["rating"]),
            rater_id=await user_id_of(request, shown["user"]),
            since=parse_date(shown["since"], "since"),
            until=parse_date(shown["until"], "until"),
            commented=bool(shown["commented"]),
        )
        rows = await run_in_threadpool(
            lambda: _inspect(request).feedback(
                query, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE
            )
        )
    except KuwaError as exc:
        error, status = exc.message, exc.status
    models = await run_in_threadpool(_inspect(request).feedback_models)
    export = {k: v for k, v in shown.items() if k in ("model", "rating", "since", "until")}
    return await show(
        request,
        "dashboard/feedback.html",
        status_code=status,
        error=error,
        filters=shown,
        rows=rows[:PAGE_SIZE],
        models=models,
        shown_chars=SHOWN_CHARS,
        exports=[(kind, link("/app/feedback/export", export, format=kind)) for kind in FORMATS],
        page_no=page_no,
        newer=link("/dashboard/feedback", shown, page=str(page_no - 1)) if page_no > 1 else "",
        older=link("/dashboard/feedback", shown, page=str(page_no + 1))
        if len(rows) > PAGE_SIZE
        else "",
        utc=utc,
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/dashboard/inspect", inspect_page, methods=["GET"]),
        Route("/dashboard/feedback", feedback_page, methods=["GET"]),
    ]
