"""The Manage tab's front page; the pages themselves are in manage_users, manage_groups,
manage_models, manage_system and manage_audit (their shared form handling in manage_forms)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.web.core import page, render

MANAGE = "tab_Manage"


@page(MANAGE)
@endpoint("Administration", media=HTML)
async def index(request: Request) -> Response:
    return await render(request, "manage/index.html")


def routes() -> list[BaseRoute]:
    return [Route("/manage", index, methods=["GET"])]
