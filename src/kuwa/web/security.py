"""The middleware in front of the whole app: forwarded headers (only from trusted proxies),
the client-address allow-list, the session cookie and CSRF protection.

Cookies are marked Secure when the request came over HTTPS (directly, or as a trusted proxy
says), so the app builds its cookie layers twice and picks one per request.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any

import asgi_csrf as _asgi_csrf
import orjson
from asgi_csrf import asgi_csrf
from python_multipart import FormParser
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from kuwa.errors import PermissionDeniedError, error_body
from kuwa.settings import Settings

API_PREFIXES = ("/v1/", "/v1.0/", "/metrics", "/healthz")
SESSION_COOKIE = "kuwa_session"
CSRF_COOKIE = "kuwa_csrf"


async def _multipart_token(boundary: bytes, receive: Receive) -> tuple[str | None, Receive]:
    """asgi-csrf's search for the token in a multipart form, for python-multipart >= 0.0.26.

    asgi-csrf 0.11 passes ``FileClass=`` to python-multipart's FormParser, which no longer
    takes it (simonw/asgi-csrf#38, fix pending upstream), so every upload failed with a 500.
    Same contract: the ``csrftoken`` field must come before any file, and the body read so
    far is replayed to the app."""
    messages: list[Message] = []

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    def on_field(field: Any) -> None:
        if field.field_name == b"csrftoken":
            raise _asgi_csrf.TokenFound(field.value.decode("utf-8"))

    def on_file(file: Any) -> None:
        raise _asgi_csrf.FileBeforeToken

    parser = FormParser("multipart/form-data", on_field, on_file, boundary=boundary)
    more = True
    try:
        while more:
            message = await receive()
            messages.append(message)
            parser.write(message.get("body", b""))
            more = message.get("more_body", False)
        parser.finalize()
    except _asgi_csrf.TokenFound as found:
        return str(found.args[0]), replay
    return None, replay


_asgi_csrf._parse_multipart_form_data = _multipart_token


def derive_secret(secret_key: str, label: str) -> str:
    """A key for one purpose, so the session and CSRF keys never equal the Fernet key."""
    return hmac.new(secret_key.encode(), f"kuwa/{label}".encode(), hashlib.sha256).hexdigest()


def is_api(scope: Scope) -> bool:
    return str(scope.get("path", "")).startswith(API_PREFIXES)


class _EveryWebPath:
    """asgi-csrf's ``always_protect``: every page, even a POST that carries no cookie yet
    (a login form posted from another site must fail too)."""

    def __contains__(self, path: object) -> bool:
        return not str(path).startswith(API_PREFIXES)


async def _csrf_failed(scope: Scope, send: Send, message_id: object) -> None:
    """403 for a request without a matching CSRF token: a page for a form, and Kuwa's JSON
    error for the UI's ``/app`` API, whose callers read JSON."""
    message = (
        "This form has expired or came from another site. Go back, reload the page and try again."
    )
    if str(scope.get("path", "")).startswith("/app/"):
        kind, body = (
            b"application/json",
            orjson.dumps(error_body(message, PermissionDeniedError.type, code="csrf_failed")),
        )
    else:
        kind = b"text/html; charset=utf-8"
        body = (
            b"<!doctype html><meta charset=utf-8><title>Form expired</title><p>"
            + message.encode()
            + b"</p>"
        )
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", kind), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SchemeSplit:
    """Route each request to the ``secure`` or plain build of the same stack by its scheme."""

    def __init__(self, build: Callable[[bool], ASGIApp], app: ASGIApp) -> None:
        self.plain = build(False)
        self.secure = build(True)
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function handing on the callee's coroutine: no frame of its own stays
        # suspended for as long as a stream lasts (every open stream pays for each layer).
        if scope["type"] != "http" or is_api(scope):
            return self.app(scope, receive, send)  # the API uses tokens, never cookies
        readable = _readable(_cookies_only(scope))
        if readable is None:
            return _bad_request(send, "The request's multipart/form-data body names no boundary.")
        secure = scope.get("scheme") == "https"
        return (self.secure if secure else self.plain)(readable, receive, send)


_BOUNDARY = re.compile(rb';\s*boundary="?([^";]+)"?', re.IGNORECASE)


def _readable(scope: Scope) -> Scope | None:
    """The request as asgi-csrf can read it, or None when it cannot be (a multipart body
    without a boundary). asgi-csrf answered two kinds of request with a 500: a ``Cookie``
    header with one pair Python's ``SimpleCookie`` refuses (another site's cookie on the same
    domain, say), and a multipart content type without ``; boundary=`` spelled just so. The
    first loses its unreadable pairs; the second has its boundary spelled that way."""
    headers = scope["headers"]
    fixed: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b"cookie":
            value = _readable_cookies(value)
        elif name == b"content-type" and value[:19].lower() == b"multipart/form-data":
            boundary = _BOUNDARY.search(value)
            if boundary is None:
                return None
            value = b"multipart/form-data; boundary=" + boundary.group(1)
        fixed.append((name, value))
    return scope if fixed == headers else {**scope, "headers": fixed}


def _readable_cookies(value: bytes) -> bytes:
    text = value.decode("latin-1")
    try:
        SimpleCookie().load(text)
        return value
    except CookieError:
        pass
    kept: list[str] = []
    for pair in text.split(";"):  # keep each pair that the ones kept so far still read with
        try:
            SimpleCookie().load("; ".join([*kept, pair.strip()]))
        except CookieError:
            continue
        kept.append(pair.strip())
    return "; ".join(kept).encode("latin-1")


async def _bad_request(send: Send, message: str) -> None:
    body = orjson.dumps(error_body(message, "invalid_request_error", code="invalid_request"))
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _cookies_only(scope: Scope) -> Scope:
    """A web request that carries cookies, without its ``Authorization`` header: pages go
    by the session cookie alone, and asgi-csrf skips its check for any ``Authorization:
    Bearer`` request, so a forged request carrying the session cookie would otherwise escape
    the check by adding one. A bearer request without cookies keeps it (an API client that
    took a wrong path gets the 404 it expects, not a CSRF refusal); the API paths, the other
    way round, never see the session: bearer requests ignore cookies."""
    headers = scope["headers"]
    names = {name for name, _ in headers}
    if b"authorization" not in names or b"cookie" not in names:
        return scope
    return {**scope, "headers": [(n, v) for n, v in headers if n != b"authorization"]}


class AllowList:
    """Refuse clients outside ``networks`` with 403 (``/healthz`` stays open)."""

    def __init__(self, app: ASGIApp, networks: tuple[str, ...]) -> None:
        self.app = app
        self.networks = [ipaddress.ip_network(n.strip(), strict=False) for n in networks]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") != "/healthz" and not self._allowed(scope):
            body = orjson.dumps(
                error_body(
                    "Your address may not use this Kuwa server.",
                    "permission_error",
                    code="ip_not_allowed",
                )
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in net for net in self.networks)


class WebSecurity:
    """:func:`wrap` as a Starlette middleware class."""

    def __init__(self, app: ASGIApp, settings: Settings, secret_key: str) -> None:
        self.app = wrap(app, settings, secret_key)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return self.app(scope, receive, send)  # no frame of its own (see SchemeSplit)


def wrap(app: ASGIApp, settings: Settings, secret_key: str) -> ASGIApp:
    session_secret = derive_secret(secret_key, "session")
    csrf_secret = derive_secret(secret_key, "csrf")

    def build(secure: bool) -> ASGIApp:
        inner = asgi_csrf(
            app,
            signing_secret=csrf_secret,
            cookie_name=CSRF_COOKIE,
            always_protect=_EveryWebPath(),
            skip_if_scope=is_api,
            cookie_secure=secure,
            cookie_samesite="Lax",
            send_csrf_failed=_csrf_failed,
        )
        return SessionMiddleware(
            inner,
            secret_key=session_secret,
            session_cookie=SESSION_COOKIE,
            max_age=settings.session_max_age,
            same_site="lax",  # strict would drop the cookie on the way back from OIDC
            https_only=secure,
        )

    outer: ASGIApp = SchemeSplit(build, app)
    if settings.ip_allowlist:
        outer = AllowList(outer, settings.ip_allowlist)
    if settings.trusted_proxies:
        proxied: Any = ProxyHeadersMiddleware(
            outer,  # type: ignore[arg-type]  # uvicorn types ASGI more narrowly than Starlette
            trusted_hosts=list(settings.trusted_proxies),
        )
        outer = proxied
    return outer
