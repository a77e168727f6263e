"""Account pages outside the profile: sign-up, email verification, password reset, the
forced password change and the terms-of-service gate."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import RESET_PASSWORD, VERIFY_EMAIL, UserInfo
from kuwa.errors import ConflictError, KuwaError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.web import forms
from kuwa.web.core import (
    PUBLIC,
    SIGNED_IN,
    client_ip,
    confirm_link,
    current_user,
    page,
    posted_code,
    render,
    ui_lang,
    web_state,
)
from kuwa.web.i18n import Words
from kuwa.web.session import flash
from kuwa.web.signin import sign_in

log = logging.getLogger(__name__)


def link(request: Request, path: str) -> str:
    settings = web_state(request).settings
    base = settings.public_url or str(request.base_url)
    return base.rstrip("/") + path


async def send_mail(request: Request, to: str, kind: str, **values: str) -> bool:
    """Send the mail ``kind`` (catalog keys ``mail_KIND_subject`` and ``mail_KIND_body``, with
    ``{name}`` values) in the language of the page that sent it; False (logged) when it could
    not be sent."""
    words = Words(ui_lang(request))
    subject = words(f"mail_{kind}_subject", **values)
    text = words(f"mail_{kind}_body", **values)
    try:
        await web_state(request).mailer.send_async(to, subject, text)
        return True
    except KuwaError as exc:
        log.warning("could not send mail (%s): %s", subject, exc.message)
        return False


# --- sign-up --------------------------------------------------------------------------------
@page(PUBLIC)
@endpoint("The sign-up page", media=HTML)
async def signup_form(request: Request) -> Response:
    return await _signup_page(request)


async def _signup_page(
    request: Request, *, error: str = "", status: int = 200, **values: str
) -> Response:
    web = web_state(request)
    config = await run_in_threadpool(web.store.system.load)
    if config.registration == "closed":
        return await render(
            request,
            "message.html",
            status_code=403,
            title="Sign-up is closed",
            message="New accounts are not being created here. Ask an administrator.",
        )
    return await render(
        request,
        "signup.html",
        status_code=status,
        error=error,
        invite_only=config.registration == "invite",
        domains=config.allowed_domains,
        mail=web.mailer.enabled,
        values=values,
        invite=values.get("invite", request.query_params.get("invite", "")),
    )


@page(PUBLIC)
@endpoint("Sign up", form=forms.Signup, redirect=True)
async def signup(request: Request) -> Response:
    web = web_state(request)
    store = web.store
    form = await request.form()
    name = str(form.get("name", "")).strip()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    invite = str(form.get("invite", "")).strip()
    config = await run_in_threadpool(store.system.load)
    if config.registration == "closed":
        return await _signup_page(request)
    again = {"name": name, "email": email, "invite": invite}
    group = await run_in_threadpool(store.groups.by_invite_code, invite) if invite else None
    if invite and group is None:
        return await _signup_page(
            request, error="That invite code is not valid.", status=400, **again
        )
    if config.registration == "invite" and group is None:
        return await _signup_page(
            request, error="Sign-up needs an invite code here.", status=400, **again
        )
    if not config.domain_allowed(email):
        allowed = ", ".join("@" + d for d in config.allowed_domains)
        return await _signup_page(
            request,
            error=f"Sign-up is open to addresses at {allowed} only.",
            status=400,
            **again,
        )
    try:
        user = await run_in_threadpool(
            lambda: store.accounts.create_user(
                email,
                name,
                password,
                group=group.name if group else None,
                email_verified=not web.mailer.enabled,
            )
        )
    except ConflictError:
        if web.mailer.enabled:  # answer as for a new account; tell the owner by mail
            await send_mail(
                request,
                email.lower(),
                "signup_taken",
                login=link(request, "/login"),
                forgot=link(request, "/forgot"),
            )
            return await _check_mail(request, email)
        return await _signup_page(
            request,
            error="This email cannot be used to sign up. If it is yours, sign in instead.",
            status=409,
            **again,
        )
    except KuwaError as exc:
        return await _signup_page(request, error=exc.message, status=exc.status, **again)
    await run_in_threadpool(
        store.audit.record,
        "account_created",
        user_id=user.id,
        actor=user.email,
        detail=f"sign-up{' invite ' + group.name if group else ''}",
        ip=client_ip(request),
    )
    if web.mailer.enabled:
        await send_verification(request, user)
        return await _check_mail(request, email)
    await sign_in(request, user, via="sign-up")
    flash(request, "Welcome to Kuwa! (Email verification was skipped: this server sends no mail.)")
    return RedirectResponse("/", status_code=303)


async def send_verification(request: Request, user: UserInfo) -> None:
    code = await run_in_threadpool(web_state(request).store.codes.issue, user.id, VERIFY_EMAIL)
    await send_mail(
        request, user.email, "verify", name=user.name, link=link(request, "/verify?code=" + code)
    )


async def _check_mail(request: Request, email: str) -> Response:
    return await render(
        request,
        "message.html",
        title="Check your mail",
        message=f"We sent a link to {email.lower()}. Open it to finish creating your account.",
    )


@page(PUBLIC)
@endpoint("The page a mailed sign-up link opens", media=HTML)
async def verify_form(request: Request) -> Response:
    return await confirm_link(
        request, "Confirm your email", "One more click to confirm your address.", "Confirm"
    )


@page(PUBLIC)
@endpoint("Confirm an email address (the mailed code)", form=forms.Code, redirect=True)
async def verify(request: Request) -> Response:
    store = web_state(request).store
    code = await posted_code(request)
    redeemed = await run_in_threadpool(store.codes.redeem, code, VERIFY_EMAIL)
    if redeemed is None:
        return await render(
            request,
            "message.html",
            status_code=400,
            title="This link does not work",
            message="It was used already or has expired. Sign in to get a new one.",
        )
    await run_in_threadpool(
        lambda: store.accounts.update_user(redeemed.user_id, email_verified=True)
    )
    flash(request, "Your email is confirmed. Please sign in.")
    return RedirectResponse("/login", status_code=303)


# --- password reset -------------------------------------------------------------------------
@page(PUBLIC)
@endpoint("The forgotten-password page", media=HTML)
async def forgot_form(request: Request) -> Response:
    return await render(request, "forgot.html", mail=web_state(request).mailer.enabled)


@page(PUBLIC)
@endpoint("Mail a password reset link", form=forms.Forgot, redirect=True)
async def forgot(request: Request) -> Response:
    web = web_state(request)
    form = await request.form()
    email = str(form.get("email", "")).strip().lower()
    if not web.mailer.enabled:
        return await render(request, "forgot.html", mail=False, status_code=404)
    user = await run_in_threadpool(web.store.accounts.find_user, email) if "@" in email else None
    if user is not None:
        code = await run_in_threadpool(web.store.codes.issue, user.id, RESET_PASSWORD)
        await send_mail(
            request, user.email, "reset", name=user.name, link=link(request, "/reset?code=" + code)
        )
        await run_in_threadpool(
            web.store.audit.record,
            "password_reset_requested",
            user_id=user.id,
            actor=user.email,
            ip=client_ip(request),
        )
    return await render(
        request,
        "message.html",
        title="Check your mail",
        message=f"If there is an account for {email}, we sent it a link to reset the password.",
    )


@page(PUBLIC)
@endpoint("The page a mailed reset link opens", media=HTML)
async def reset_form(request: Request) -> Response:
    return await render(request, "reset.html", code=request.query_params.get("code", ""))


@page(PUBLIC)
@endpoint("Set a new password (the mailed code)", form=forms.Reset, redirect=True)
async def reset(request: Request) -> Response:
    web = web_state(request)
    form = await request.form()
    code = str(form.get("code", ""))
    password = str(form.get("password", ""))
    if password != str(form.get("password2", "")):
        return await render(
            request, "reset.html", code=code, error="The two passwords differ.", status_code=400
        )
    try:
        from kuwa.accounts.service import check_password_rules

        check_password_rules(password)
    except KuwaError as exc:
        return await render(request, "reset.html", code=code, error=exc.message, status_code=400)
    redeemed = await run_in_threadpool(web.store.codes.redeem, code, RESET_PASSWORD)
    if redeemed is None:
        return await render(
            request,
            "message.html",
            status_code=400,
            title="This link does not work",
            message="It was used already or has expired. Ask for a new one.",
            link="/forgot",
            link_text="Reset your password",
        )
    await run_in_threadpool(web.store.accounts.set_password, redeemed.user_id, password)
    await run_in_threadpool(
        lambda: web.store.accounts.update_user(redeemed.user_id, email_verified=True)
    )
    await web.sessions.end_all(redeemed.user_id)
    await run_in_threadpool(
        web.store.audit.record,
        "password_reset",
        user_id=redeemed.user_id,
        ip=client_ip(request),
    )
    flash(request, "Your password is changed. Please sign in.")
    return RedirectResponse("/login", status_code=303)


# --- forced password change and terms -------------------------------------------------------
@page(SIGNED_IN, gated=False)
@endpoint("The page to change a password that must be changed", media=HTML)
async def password_form(request: Request) -> Response:
    return await render(request, "password.html")


@page(SIGNED_IN, gated=False)
@endpoint("Change the password you must change", form=forms.PasswordChange, redirect=True)
async def password(request: Request) -> Response:
    web = web_state(request)
    user = await current_user(request)
    assert user is not None
    form = await request.form()
    current = str(form.get("current", ""))
    new = str(form.get("password", ""))
    error = ""
    has_password = await run_in_threadpool(web.store.accounts.has_password, user.id)
    if (
        has_password
        and await run_in_threadpool(web.store.accounts.check_password, user.email, current) is None
    ):
        error = "Your current password is wrong."
    elif new != str(form.get("password2", "")):
        error = "The two new passwords differ."
    elif new == current:
        error = "Choose a password different from the current one."
    if not error:
        try:
            await run_in_threadpool(web.store.accounts.set_password, user.id, new)
        except KuwaError as exc:
            error = exc.message
    if error:
        return await render(request, "password.html", error=error, status_code=400)
    await web.sessions.end_all(user.id, keep=request)
    await run_in_threadpool(
        web.store.audit.record,
        "password_changed",
        user_id=user.id,
        actor=user.email,
        ip=client_ip(request),
    )
    flash(request, "Your password is changed.")
    return RedirectResponse("/", status_code=303)


@page(SIGNED_IN, gated=False)
@endpoint("The terms of service to accept", media=HTML)
async def terms_form(request: Request) -> Response:
    config = await run_in_threadpool(web_state(request).store.system.load)
    return await render(request, "terms.html", terms=config.terms)


@page(SIGNED_IN, gated=False)
@endpoint("Accept the terms of service", form=forms.Terms, redirect=True)
async def terms(request: Request) -> Response:
    web = web_state(request)
    user = await current_user(request)
    assert user is not None
    form = await request.form()
    if form.get("accept") != "yes":
        await web.sessions.end(request)
        flash(request, "You need to accept the terms to use Kuwa.", "error")
        return RedirectResponse("/login", status_code=303)
    config = await run_in_threadpool(web.store.system.load)
    await run_in_threadpool(web.store.accounts.accept_terms, user.id, config.terms_version)
    await run_in_threadpool(
        web.store.audit.record,
        "terms_accepted",
        user_id=user.id,
        actor=user.email,
        detail=f"version {config.terms_version}",
        ip=client_ip(request),
    )
    return RedirectResponse("/", status_code=303)


def routes() -> list[BaseRoute]:
    return [
        Route("/signup", signup_form, methods=["GET"]),
        Route("/signup", signup, methods=["POST"]),
        Route("/verify", verify_form, methods=["GET"]),
        Route("/verify", verify, methods=["POST"]),
        Route("/forgot", forgot_form, methods=["GET"]),
        Route("/forgot", forgot, methods=["POST"]),
        Route("/reset", reset_form, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/password", password_form, methods=["GET"]),
        Route("/password", password, methods=["POST"]),
        Route("/terms", terms_form, methods=["GET"]),
        Route("/terms", terms, methods=["POST"]),
    ]
