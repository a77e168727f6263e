"""The web UI: sign-in, account pages, management. Pages are server-rendered (Jinja2,
autoescaped) forms protected by CSRF tokens; sessions live in Redis.

``routes()`` lists every page; ``start()`` builds what they share for one app; ``wrap()``
puts the session, CSRF, allow-list and proxy middleware around the whole app.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from kuwa.accounts import Store
from kuwa.accounts.ldap import LdapAuthenticator
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.state import GatewayState
from kuwa.mail import Mailer
from kuwa.rooms import Rooms
from kuwa.settings import Settings
from kuwa.web import (
    account,
    arena,
    dashboard,
    documents,
    manage,
    manage_audit,
    manage_groups,
    manage_models,
    manage_system,
    manage_users,
    paths,  # noqa: F401  (registers the {name:id} path convertor before routes() runs)
    profile,
    rooms,
    sharing,
    signin,
    store,
    transfer,
    trash,
)
from kuwa.web.core import (
    ACCESS_ATTR,
    PUBLIC,
    SIGNED_IN,
    WebState,
    app_error,
    error_page,
    kuwa_error_page,
    page,
    wants_html,
)
from kuwa.web.live import RoomRunner
from kuwa.web.oidc import OidcClient
from kuwa.web.security import WebSecurity, wrap
from kuwa.web.session import Sessions
from kuwa.web.throttle import LoginThrottle

__all__ = [
    "ACCESS_ATTR",
    "PUBLIC",
    "SIGNED_IN",
    "WebSecurity",
    "app_error",
    "error_page",
    "kuwa_error_page",
    "routes",
    "start",
    "wants_html",
    "wrap",
]


VENDOR = {  # /vendor/NAME -> a file of an npm package (src/kuwa/web/assets, `make assets`)
    "markdown-it.min.js": "markdown-it/dist/markdown-it.min.js",
    "purify.min.js": "dompurify/dist/purify.min.js",
    "highlight.min.js": "@highlightjs/cdn-assets/highlight.min.js",
    "hljs-light.css": "@highlightjs/cdn-assets/styles/github.min.css",
    "hljs-dark.css": "@highlightjs/cdn-assets/styles/github-dark.min.css",
    "uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",  # the dashboard's charts
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
}


@page(PUBLIC)
@endpoint("A front-end library (from node_modules)", media="text/javascript, text/css")
async def vendor(request: Request) -> Response:
    """The front-end libraries, from node_modules (installed by npm, not kept in git)."""
    name = request.path_params["name"]
    if name not in VENDOR:
        return error_page(request, 404, "There is no such file.")
    path = Path(str(resources.files("kuwa.web").joinpath("assets", "node_modules", VENDOR[name])))
    if not await run_in_threadpool(path.is_file):
        return error_page(
            request, 404, f"{name} is not installed: run `make assets` (npm ci) first."
        )
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


@page(PUBLIC)
@endpoint("The site icon (a redirect to /static/favicon.svg)", redirect=301)
async def favicon(request: Request) -> Response:
    """Browsers (and pages without the base template's icon link) ask for /favicon.ico."""
    return RedirectResponse(
        "/static/favicon.svg", status_code=301, headers={"Cache-Control": "public, max-age=86400"}
    )


def routes() -> list[BaseRoute]:
    static = resources.files("kuwa.web").joinpath("static")
    return [
        *rooms.routes(),
        *documents.routes(),
        *sharing.routes(),
        *transfer.routes(),
        *trash.routes(),
        *store.routes(),
        *arena.routes(),
        Route("/login", signin.login_form, methods=["GET"]),
        Route("/login", signin.login, methods=["POST"]),
        Route("/logout", signin.logout, methods=["POST"]),
        Route("/auth/oidc/login", signin.oidc_login, methods=["GET"]),
        Route("/auth/oidc/callback", signin.oidc_callback, methods=["GET"], name="oidc_callback"),
        *account.routes(),
        *profile.routes(),
        *manage.routes(),
        *manage_users.routes(),
        *manage_groups.routes(),
        *manage_models.routes(),
        *manage_system.routes(),
        *manage_audit.routes(),
        *dashboard.routes(),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
        Route("/vendor/{name}", vendor, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
    ]


def start(
    app: Starlette, settings: Settings, redis: aioredis.Redis, store: Store, gateway: GatewayState
) -> WebState:
    """What the pages share, over the gateway's ``state`` (its chat machinery answers in rooms,
    and a change to users, groups or models drops its cached permissions)."""
    rooms = Rooms(store.db)
    state = WebState(
        settings=settings,
        store=store,
        sessions=Sessions(redis, max_age=settings.session_max_age),
        mailer=Mailer(settings),
        ldap=LdapAuthenticator.from_settings(settings),
        oidc=OidcClient.from_settings(settings),
        rooms=rooms,
        throttle=LoginThrottle(
            redis,
            max_failures=settings.login_max_failures,
            ip_max_failures=settings.login_ip_max_failures,
            window=settings.login_window,
        ),
        runner=RoomRunner(gateway, rooms),
        on_user_changed=gateway.forget_cached,
    )
    app.state.web = state
    return state
