"""Dashboard statistics (``Dashboard_read_statistics``): usage per model, group and day.

Read from the per-day usage hashes (``kuwa.broker.usage``) for a chosen range of UTC days,
as a page (tables and a chart), CSV or JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.broker import usage
from kuwa.broker.connection import redis_errors
from kuwa.errors import InvalidRequestError, KuwaError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.state import state_of
from kuwa.web.core import page
from kuwa.web.dashboard_logs import filters_of, link
from kuwa.web.dashboard_page import STATISTICS, show

DEFAULT_DAYS = 30
FILTERS = ("from", "to", "model", "group")


def _day(raw: str, name: str, default: dt.date) -> dt.date:
    if not raw:
        return default
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        raise InvalidRequestError(f"{name} must be a day like 2026-11-26", param=name) from None


async def _report(request: Request, shown: dict[str, str]) -> usage.Report:
    today = dt.datetime.now(dt.UTC).date()
    end = _day(shown["to"], "to", today)
    start = _day(shown["from"], "from", end - dt.timedelta(days=DEFAULT_DAYS - 1))
    if end < start:
        raise InvalidRequestError("The range ends before it starts.", param="to")
    if (end - start).days >= usage.MAX_DAYS:
        raise InvalidRequestError(f"Choose at most {usage.MAX_DAYS} days.", param="from")
    group = None
    if shown["group"]:
        group = "" if shown["group"] == "-" else shown["group"]  # "-": users without a group
    with redis_errors("reading the statistics"):
        return await usage.report(
            state_of(request).redis, start, end, model=shown["model"], group=group
        )


@page(STATISTICS)
@endpoint("Usage statistics", media=HTML)
async def stats_page(request: Request) -> Response:
    shown = filters_of(request.query_params, FILTERS)
    try:
        report = await _report(request, shown)
    except KuwaError as exc:
        today = dt.datetime.now(dt.UTC).date()
        return await show(
            request,
            "dashboard/stats.html",
            status_code=exc.status,
            error=exc.message,
            filters=shown,
            report=usage.Report(today, today),
            csv_link="",
        )
    shown = {**shown, "from": report.start.isoformat(), "to": report.end.isoformat()}
    return await show(
        request,
        "dashboard/stats.html",
        error="",
        filters=shown,
        report=report,
        chart=report.to_json()["by_day"],
        csv_link=link("/dashboard/stats.csv", shown),
    )


@page(STATISTICS)
@endpoint("Usage statistics as CSV", media="text/csv")
async def stats_csv(request: Request) -> Response:
    report = await _report(request, filters_of(request.query_params, FILTERS))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["kind", "key", *usage.METRICS])
    for kind, rows in (
        ("model", report.by_model),
        ("group", report.by_group),
        ("day", report.by_day),
    ):
        for key, figures in sorted(rows.items()):
            writer.writerow([kind, key, *(getattr(figures, m) for m in usage.METRICS)])
    writer.writerow(["total", "", *(getattr(report.total, m) for m in usage.METRICS)])
    name = f"kuwa-usage-{report.start.isoformat()}-{report.end.isoformat()}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@page(STATISTICS)
@endpoint("Usage statistics as JSON", answer=dict[str, Any])
async def stats_json(request: Request) -> Response:
    report = await _report(request, filters_of(request.query_params, FILTERS))
    return JSONResponse(report.to_json())


def routes() -> list[BaseRoute]:
    return [
        Route("/dashboard/stats", stats_page, methods=["GET"]),
        Route("/dashboard/stats.csv", stats_csv, methods=["GET"]),
        Route("/app/dashboard/usage", stats_json, methods=["GET"]),
    ]
