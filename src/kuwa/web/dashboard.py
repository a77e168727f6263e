"""The Dashboard tab: a live overview of queues, executors, kernels and Redis with the last
hour in charts, plus the pages each ``Dashboard_*`` permission opens (job and audit logs,
statistics, inspect, feedback) and the admins' stress runs. See docs/dashboard.md.

This module holds the overview and the list of routes; what the pages share is in
``dashboard_page``, each other page in its own ``dashboard_*`` module.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.broker.connection import redis_errors
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.state import state_of
from kuwa.web import (
    dashboard_data,
    dashboard_inspect,
    dashboard_logs,
    dashboard_stats,
    dashboard_stress,
)
from kuwa.web.core import page
from kuwa.web.dashboard_page import MAX_MINUTES, TAB, sampler_of, show


@page(TAB)
@endpoint("The dashboard: queues, executors, latency, throughput", media=HTML)
async def overview_page(request: Request) -> Response:
    return await show(request, "dashboard/overview.html")


@page(TAB)
@endpoint("The dashboard's figures now", answer=dict[str, Any])
async def overview_json(request: Request) -> Response:
    gateway = state_of(request)
    with redis_errors("reading the dashboard's figures"):
        figures = await dashboard_data.overview(
            gateway.redis, gateway.chat.registry, sampler_of(request)
        )
    return JSONResponse(figures, headers={"Cache-Control": "no-store"})


@page(TAB)
@endpoint("The dashboard's time series (?minutes=)", answer=dict[str, Any])
async def series_json(request: Request) -> Response:
    raw = request.query_params.get("minutes", "60")
    minutes = min(max(int(raw), 1), MAX_MINUTES) if raw.isdigit() else 60
    gateway = state_of(request)
    with redis_errors("reading the dashboard's charts"):
        figures = await dashboard_data.series(
            gateway.redis, gateway.chat.registry, sampler_of(request), minutes=minutes
        )
    return JSONResponse(figures, headers={"Cache-Control": "no-store"})


def routes() -> list[BaseRoute]:
    return [
        Route("/dashboard", overview_page, methods=["GET"]),
        Route("/app/dashboard/overview", overview_json, methods=["GET"]),
        Route("/app/dashboard/series", series_json, methods=["GET"]),
        *dashboard_logs.routes(),
        *dashboard_stats.routes(),
        *dashboard_inspect.routes(),
        *dashboard_stress.routes(),
    ]
