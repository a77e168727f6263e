"""The web UI: sign-in, account pages, management. Pages are server-rendered (Jinja2,
autoescaped) forms protected by CSRF tokens; sessions live in Redis.

``routes()`` lists every page; ``start()`` builds what they share for one app; ``wrap()``
puts the session, CSRF, allow-list and proxy middleware around the whole app.
"""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from kuwa.accounts import Store
from kuwa.accounts.ldap import LdapAuthenticator
from kuwa.mail import Mailer
from kuwa.settings import Settings
from kuwa.web import account, manage, manage_system, manage_users, profile, signin
from kuwa.web.core import (
    ACCESS_ATTR,
    PUBLIC,
    SIGNED_IN,
    WebState,
    current_user,
    error_page,
    kuwa_error_page,
    page,
    render,
    wants_html,
)
from kuwa.web.oidc import OidcClient
from kuwa.web.security import WebSecurity, wrap
from kuwa.web.session import Sessions
from kuwa.web.throttle import LoginThrottle

__all__ = [
    "ACCESS_ATTR",
    "PUBLIC",
    "SIGNED_IN",
    "WebSecurity",
    "error_page",
    "kuwa_error_page",
    "routes",
    "start",
    "wants_html",
    "wrap",
]


@page(PUBLIC)
async def index(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return await home(request)


@page("tab_Room")
async def home(request: Request) -> Response:
    user = await current_user(request)
    assert user is not None
    from starlette.concurrency import run_in_threadpool

    from kuwa.web.core import web_state

    models = [
        m
        for m in await run_in_threadpool(web_state(request).store.catalog.list_models)
        if m.enabled and user.can_use_model(m.access_code)
    ]
    base = str(request.base_url).rstrip("/")
    return await render(request, "home.html", models=models, base=base)


def routes() -> list[BaseRoute]:
    static = resources.files("kuwa.web").joinpath("static")
    return [
        Route("/", index, methods=["GET"]),
        Route("/login", signin.login_form, methods=["GET"]),
        Route("/login", signin.login, methods=["POST"]),
        Route("/logout", signin.logout, methods=["POST"]),
        Route("/auth/oidc/login", signin.oidc_login, methods=["GET"]),
        Route("/auth/oidc/callback", signin.oidc_callback, methods=["GET"], name="oidc_callback"),
        *account.routes(),
        *profile.routes(),
        *manage.routes(),
        *manage_users.routes(),
        *manage_system.routes(),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]


def start(app: Starlette, settings: Settings, redis: aioredis.Redis, store: Store) -> WebState:
    state = WebState(
        settings=settings,
        store=store,
        sessions=Sessions(redis, max_age=settings.session_max_age),
        mailer=Mailer(settings),
        ldap=LdapAuthenticator.from_settings(settings),
        oidc=OidcClient.from_settings(settings),
        throttle=LoginThrottle(
            redis,
            max_failures=settings.login_max_failures,
            ip_max_failures=settings.login_ip_max_failures,
            window=settings.login_window,
        ),
    )
    app.state.web = state
    return state
