"""Signing in and out: email + password, LDAP (with local fallback), OIDC, throttling.

Sign-in answers never tell whether an account exists: a wrong password and an unknown
address get the same message, after the same password-hashing work.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kuwa.accounts import UserInfo
from kuwa.accounts.ldap import LdapIdentity, LdapUnavailable
from kuwa.errors import ConflictError, KuwaError, RateLimitError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.web import forms
from kuwa.web.core import PUBLIC, client_ip, current_user, page, render, web_state
from kuwa.web.session import flash

log = logging.getLogger(__name__)

WRONG = "The email or password is wrong."  # one message: no account enumeration


def safe_next(target: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


@page(PUBLIC)
@endpoint("The sign-in page", media=HTML)
async def login_form(request: Request) -> Response:
    if await current_user(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return await _login_page(request)


async def _login_page(
    request: Request, *, error: str = "", email: str = "", status: int = 200
) -> Response:
    web = web_state(request)
    return await render(
        request,
        "login.html",
        status_code=status,
        error=error,
        email=email,
        next=safe_next(request.query_params.get("next")),
        ldap=web.ldap is not None,
        oidc_label=web.oidc.label if web.oidc else None,
        can_reset=web.mailer.enabled,
        registration=(await run_in_threadpool(web.store.system.load)).registration,
    )


@page(PUBLIC)
@endpoint("Sign in", form=forms.Login, redirect=True)
async def login(request: Request) -> Response:
    web = web_state(request)
    form = await request.form()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    ip = client_ip(request)
    try:
        await web.throttle.check(email, ip)
    except RateLimitError as exc:
        await run_in_threadpool(
            web.store.audit.record, "login_throttled", actor=email, ip=ip, ok=False
        )
        return await _login_page(request, error=exc.message, email=email, status=429)
    user = await _authenticate(request, email, password)
    if user is None:
        await web.throttle.failed(email, ip)
        await run_in_threadpool(
            web.store.audit.record, "login_failed", actor=email, ip=ip, ok=False
        )
        return await _login_page(request, error=WRONG, email=email, status=401)
    if web.mailer.enabled and user.source == "local" and not user.email_verified:
        return await render(
            request,
            "message.html",
            status_code=403,
            title="Please verify your email",
            message=f"We sent a link to {user.email} when you signed up. Open it, then sign "
            "in again. No mail? Use 'Forgot your password?' to get a new link.",
        )
    await web.throttle.succeeded(email)
    await sign_in(request, user, via="password")
    return RedirectResponse(target, status_code=303)


async def sign_in(request: Request, user: UserInfo, *, via: str) -> None:
    web = web_state(request)
    await web.sessions.start(request, user.id, via=via)
    await run_in_threadpool(web.store.accounts.record_login, user.id)
    await run_in_threadpool(
        web.store.audit.record,
        "login",
        user_id=user.id,
        actor=user.email,
        detail=via,
        ip=client_ip(request),
    )


async def _authenticate(request: Request, login: str, password: str) -> UserInfo | None:
    web = web_state(request)
    if not login or not password:
        return None
    if web.ldap is not None:
        try:
            identity = await run_in_threadpool(web.ldap.authenticate, login, password)
        except LdapUnavailable as exc:
            log.warning("LDAP unavailable, trying local accounts: %s", exc)
            identity = None
        if identity is not None:
            return await run_in_threadpool(_ldap_account, request, identity, password)
    if "@" not in login:
        return None
    return await run_in_threadpool(web.store.accounts.check_password, login, password)


def _ldap_account(request: Request, identity: LdapIdentity, password: str) -> UserInfo:
    """The Kuwa account of a directory user, created on first sign-in. The password is kept
    (hashed) so the person can still sign in while the directory is down, as Kuwa did."""
    store = web_state(request).store
    settings = web_state(request).settings
    user = store.accounts.find_user(identity.email)
    if user is None:
        try:
            user = store.accounts.create_user(
                identity.email,
                identity.name,
                password if len(password) >= 8 else None,
                group=settings.ldap_group,
                source="ldap",
                email_verified=True,
            )
            store.audit.record("account_created", user_id=user.id, actor=user.email, detail="ldap")
            return user
        except ConflictError:
            user = store.accounts.find_user(identity.email)
            assert user is not None
    if len(password) >= 8:
        store.accounts.set_password(user.id, password, must_change=False)
    return user


@page(PUBLIC)
@endpoint("Sign out", redirect=True)
async def logout(request: Request) -> Response:
    web = web_state(request)
    user = await current_user(request)
    await web.sessions.end(request)
    request.session.clear()
    if user is not None:
        await run_in_threadpool(
            web.store.audit.record,
            "logout",
            user_id=user.id,
            actor=user.email,
            ip=client_ip(request),
        )
    flash(request, "You are signed out.")
    return RedirectResponse("/login", status_code=303)


# --- OIDC -----------------------------------------------------------------------------------
@page(PUBLIC)
@endpoint("Sign in with the OpenID Connect provider (a redirect to it)", redirect=True)
async def oidc_login(request: Request) -> Response:
    web = web_state(request)
    if web.oidc is None:
        return await render(
            request,
            "message.html",
            status_code=404,
            title="Not available",
            message="Single sign-on is not set up on this server.",
        )
    base = web.settings.public_url.rstrip("/") if web.settings.public_url else None
    redirect_uri = f"{base}/auth/oidc/callback" if base else str(request.url_for("oidc_callback"))
    try:
        return await web.oidc.login_redirect(request, redirect_uri)
    except KuwaError as exc:
        return await _login_page(request, error=exc.message, status=exc.status)


@page(PUBLIC)
@endpoint("Where the OpenID Connect provider sends you back", redirect=True)
async def oidc_callback(request: Request) -> Response:
    web = web_state(request)
    if web.oidc is None:
        return RedirectResponse("/login", status_code=303)
    ip = client_ip(request)
    try:
        identity = await web.oidc.finish(request)
    except KuwaError as exc:
        await run_in_threadpool(
            web.store.audit.record, "login_failed", detail=f"oidc: {exc.message}", ip=ip, ok=False
        )
        return await _login_page(request, error=exc.message, status=exc.status)
    store = web.store
    user_id = await run_in_threadpool(
        store.identities.user_for, identity.provider, identity.subject
    )
    user = None if user_id is None else await run_in_threadpool(store.accounts.get_user, user_id)
    if user is None:
        if not identity.email:
            return await _login_page(
                request, error="The provider did not tell us your email address.", status=401
            )
        existing = await run_in_threadpool(store.accounts.find_user, identity.email)
        if existing is not None and not identity.email_verified:
            return await _login_page(
                request,
                error="An account with this email exists, but the provider has not verified "
                "the address, so it cannot be linked. Sign in with your password.",
                status=401,
            )
        if existing is not None:
            user = existing
        else:
            groups = {g.name for g in await run_in_threadpool(store.groups.list_groups)}
            group = identity.group if identity.group in groups else web.settings.oidc_group
            user = await run_in_threadpool(
                lambda: store.accounts.create_user(
                    identity.email or "",
                    identity.name,
                    None,
                    group=group,
                    source="oidc",
                    email_verified=identity.email_verified,
                )
            )
            await run_in_threadpool(
                store.audit.record,
                "account_created",
                user_id=user.id,
                actor=user.email,
                detail=f"oidc:{identity.provider}",
                ip=ip,
            )
        await run_in_threadpool(store.identities.link, user.id, identity.provider, identity.subject)
    await sign_in(request, user, via=f"oidc:{identity.provider}")
    return RedirectResponse("/", status_code=303)
