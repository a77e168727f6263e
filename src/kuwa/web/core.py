"""What every web page shares: who is signed in, who may see the page, and rendering.

Each page handler is declared with :func:`page`, which records who may open it (``PUBLIC``,
``SIGNED_IN`` or one permission name) on the handler itself; a test walks every route and
checks it, so a page cannot be added without saying who may use it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from kuwa.accounts import Store, SystemConfig, UserInfo
from kuwa.accounts.ldap import LdapAuthenticator
from kuwa.errors import AuthenticationError, KuwaError, PermissionDeniedError
from kuwa.gateway.endpoint import ACCESS_ATTR as ACCESS_ATTR
from kuwa.gateway.endpoint import PUBLIC as PUBLIC
from kuwa.gateway.endpoint import SIGNED_IN as SIGNED_IN
from kuwa.mail import Mailer
from kuwa.rooms import Rooms
from kuwa.settings import Settings
from kuwa.web.i18n import Words
from kuwa.web.live import RoomRunner
from kuwa.web.oidc import OidcClient
from kuwa.web.session import Sessions, take_flashes
from kuwa.web.throttle import LoginThrottle

Handler = Callable[[Request], Awaitable[Response]]

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("kuwa.web", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)


def stamp(value: dt.datetime | float | None) -> Markup:
    """A moment as ``<time>``: UTC text that the page's script (base.html) shows in the
    reader's language and time zone."""
    if value is None:
        return Markup("")
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    else:
        moment = dt.datetime.fromtimestamp(value, dt.UTC)
    moment = moment.astimezone(dt.UTC)
    return Markup('<time datetime="{}" data-stamp="{}">{}</time>').format(
        moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        int(moment.timestamp()),
        moment.strftime("%Y-%m-%d %H:%M UTC"),
    )


_env.filters["stamp"] = stamp


@dataclass(slots=True)
class WebState:
    settings: Settings
    store: Store
    sessions: Sessions
    mailer: Mailer
    ldap: LdapAuthenticator | None
    oidc: OidcClient | None
    throttle: LoginThrottle
    rooms: Rooms
    runner: RoomRunner  # answers in rooms, with the gateway's chat machinery
    on_user_changed: Callable[[], None] = lambda: None  # e.g. drop cached API permissions


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


async def current_user(request: Request) -> UserInfo | None:
    """The signed-in user (cached on the request), or None."""
    if "user" in request.scope.get("kuwa", {}):
        cached: UserInfo | None = request.scope["kuwa"]["user"]
        return cached
    web = web_state(request)
    user_id = await web.sessions.user_id(request)
    user = None
    if user_id is not None:
        user = await run_in_threadpool(web.store.accounts.get_user, user_id)
        if user is None:  # the account was deleted
            await web.sessions.end(request)
    request.scope.setdefault("kuwa", {})["user"] = user
    return user


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def page(access: str, *, gated: bool = True) -> Callable[[Handler], Handler]:
    """Declare who may open a page: PUBLIC, SIGNED_IN or a permission name.

    ``gated`` pages first send a user who must change their password or accept new terms
    of service to do that."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request) -> Response:
            if access == PUBLIC:
                return await handler(request)
            user = await current_user(request)
            api = request.url.path.startswith("/app/")
            if api and user is None:
                raise AuthenticationError("Please sign in first.")
            if user is None:
                if request.method == "GET":
                    target = quote(
                        request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    )
                    return RedirectResponse(f"/login?next={target}", status_code=303)
                return error_page(request, 401, "Please sign in first.")
            if gated:
                detour = await _detour(request, user)
                if detour is not None:
                    if api:
                        raise PermissionDeniedError(
                            "Change your password or accept the terms first (reload the page)."
                        )
                    return detour
            if access != SIGNED_IN and not user.can(access):
                if api:
                    raise PermissionDeniedError(
                        f"Your account may not do this (permission {access})."
                    )
                return error_page(
                    request,
                    403,
                    "Your account may not use this page. Ask an administrator if you need it.",
                )
            return await handler(request)

        setattr(wrapper, ACCESS_ATTR, access)
        return wrapper

    return decorate


async def _detour(request: Request, user: UserInfo) -> Response | None:
    if user.must_change_password and request.url.path != "/password":
        return RedirectResponse("/password", status_code=303)
    config = await system_config(request)
    if config.terms and user.terms_accepted < config.terms_version and request.url.path != "/terms":
        return RedirectResponse("/terms", status_code=303)
    return None


async def system_config(request: Request) -> SystemConfig:
    if "system" not in request.scope.get("kuwa", {}):
        config = await run_in_threadpool(web_state(request).store.system.load)
        request.scope.setdefault("kuwa", {})["system"] = config
    result: SystemConfig = request.scope["kuwa"]["system"]
    return result


def csrf_token(request: Request) -> str:
    getter = request.scope.get("csrftoken")
    return str(getter()) if callable(getter) else ""


# The header's sections: (permission, path, UI string key, test id). Chat and the arena are
# the chat app's own (it routes between them without a reload).
NAV = (
    ("tab_Room", "/", "nav_chat", "nav-chat"),
    ("tab_Room", "/arena", "arena", "open-arena"),
    ("tab_Store", "/store", "store", "open-store"),
    ("tab_Dashboard", "/dashboard", "nav_dashboard", "nav-dashboard"),
    ("tab_Manage", "/manage", "nav_manage", "nav-manage"),
    ("tab_Profile", "/profile", "nav_profile", "nav-profile"),
)
CHAT_PATHS = ("/rooms/", "/trash")


def _current(href: str, path: str) -> bool:
    if href == "/":
        return path == "/" or path.startswith(CHAT_PATHS)
    return path == href or path.startswith(href + "/")


def nav_for(user: UserInfo | None, config: SystemConfig, path: str, t: Words) -> list[Any]:
    """The sections this user may open, marked when ``path`` is in one. In blind mode the
    store is left out (every chat is a battle)."""
    if user is None:
        return []
    blind = bool(user.group) and user.group in config.blind_groups
    return [
        (href, t(key), testid, _current(href, path))
        for perm, href, key, testid in NAV
        if user.can(perm) and not (blind and href == "/store")
    ]


def ui_lang(request: Request) -> str:
    """en or zh-TW: the kuwa_lang cookie the chat page sets, else the browser's language."""
    chosen = request.cookies.get("kuwa_lang", "")
    if chosen in ("en", "zh-TW"):
        return chosen
    accept = request.headers.get("accept-language", "").lower()
    return "zh-TW" if accept.startswith("zh") else "en"


async def render(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> Response:
    user = await current_user(request)
    config = await system_config(request)
    lang = context.pop("lang", None) or ui_lang(request)
    t = Words(lang)
    nav = nav_for(user, config, request.url.path, t)
    return templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "nav": nav,
            "csrf": csrf_token(request),
            "flashes": take_flashes(request),
            "announcement": config.announcement,
            "lang": lang,
            "t": t,
            "_": t.text,
            "sign_out": t("sign_out"),
            **context,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def error_page(request: Request, status: int, message: str) -> Response:
    """A page for an error (no session needed): the message in the reader's language when
    the catalog has it (its English text is the key's value, see kuwa.web.i18n)."""
    lang = ui_lang(request)
    t = Words(lang)
    html = _env.get_template("error.html").render(
        status=status,
        message=t.message(message),
        user=None,
        nav=[],
        flashes=[],
        announcement="",
        csrf="",
        lang=lang,
        t=t,
        _=t.text,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def wants_html(request: Request) -> bool:
    """A browser asking for a page (not an API client)."""
    path = request.url.path
    if path.startswith(("/v1/", "/v1.0/", "/metrics", "/healthz")):
        return False
    return "text/html" in request.headers.get("accept", "")


def kuwa_error_page(request: Request, exc: KuwaError) -> Response:
    return error_page(request, exc.status, exc.message)


def app_error(request: Request, exc: KuwaError) -> Response | None:
    """The chat UI's JSON API (``/app/…``) answers errors in the reader's language (the API
    for programs, ``/v1``, stays English); None for other paths."""
    if not request.url.path.startswith("/app/"):
        return None
    body = exc.body()
    body["error"]["message"] = Words(ui_lang(request)).message(exc.message)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def confirm_link(request: Request, title: str, message: str, button: str) -> Response:
    """The page a mailed link opens: one button that POSTs its code back. Opening a link
    changes nothing, so mail scanners that follow links do not use codes up."""
    return await render(
        request,
        "confirm.html",
        title=title,
        message=message,
        button=button,
        action=request.url.path,
        code=request.query_params.get("code", ""),
    )


async def posted_code(request: Request) -> str:
    form = await request.form()
    return str(form.get("code", ""))


_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> Markup:
    """Markdown as HTML that is safe to show: raw HTML is escaped (``html`` off) and
    markdown-it refuses javascript:, vbscript: and data: links (its validateLink)."""
    return Markup(_markdown.render(text))  # noqa: S704 -- escaped by markdown-it, see above
