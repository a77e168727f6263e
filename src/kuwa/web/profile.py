"""The Profile tab: a user's own name, email, password, API token, provider keys, and
deleting the account.

Every section has its own permission (the ``Profile_*`` names Kuwa GenAI OS used): the page
shows a section only to users who hold it, and each form's POST route checks it again.

Changing the email, the password or deleting the account asks for the current password
(accounts without one, e.g. OIDC, type their email to delete). Those checks count towards the
same per-account and per-address throttle as sign-in, so a stolen session cannot be used to
guess the password. Secrets never leave the server in a page they were not asked for: the
API token appears only with ``Profile_read_api_token``, provider keys never (only which
providers have one stored), and neither ever goes into the audit log.

The email-change confirmation link (``/profile/email/confirm``) is PUBLIC, like ``/verify``:
it is usually opened from a mail app, often on another device where nobody is signed in, and
the single-use code (sent only to the new address, issued only after the password was
checked, stored only as a digest, valid for a day) is the credential. It changes only the
account the code was issued for.
"""

from __future__ import annotations

from types import SimpleNamespace

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import CHANGE_EMAIL, PROVIDERS, UserInfo
from kuwa.accounts.identities import MAX_KEY_LENGTH
from kuwa.accounts.service import check_password_rules, normalize_email
from kuwa.errors import ConflictError, KuwaError, RateLimitError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.gateway.state import state_of
from kuwa.web import forms
from kuwa.web.account import link, send_mail
from kuwa.web.core import (
    PUBLIC,
    client_ip,
    confirm_link,
    current_user,
    page,
    posted_code,
    render,
    system_config,
    web_state,
)
from kuwa.web.session import flash

TAB = "tab_Profile"
UPDATE_NAME = "Profile_update_name"
UPDATE_EMAIL = "Profile_update_email"
UPDATE_PASSWORD = "Profile_update_password"  # noqa: S105 -- a permission name
READ_TOKEN = "Profile_read_api_token"  # noqa: S105 -- a permission name
RENEW_TOKEN = "Profile_update_api_token"  # noqa: S105 -- a permission name
UPDATE_KEYS = "Profile_update_external_api_token"
DELETE_ACCOUNT = "Profile_delete_account"

PROVIDER_LABELS = {"openai": "OpenAI", "google": "Google", "other": "Other"}


class _Refused(Exception):
    """A form that cannot be carried out: re-render the page with ``message``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- the page -------------------------------------------------------------------------------
@page(TAB)
@endpoint("Your profile", media=HTML)
async def show(request: Request) -> Response:
    return await _page(request)


async def _page(
    request: Request,
    *,
    error: str = "",
    status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:
    web = web_state(request)
    store = web.store
    user = await _user(request)
    has_password = await run_in_threadpool(store.accounts.has_password, user.id)
    token: str | None = None
    token_error = ""
    if user.can(READ_TOKEN):
        try:
            token = await run_in_threadpool(store.accounts.ensure_token, user.id)
        except KuwaError as exc:
            token_error = exc.message
    stored: list[str] = []
    if user.can(UPDATE_KEYS):
        stored = await run_in_threadpool(store.identities.key_providers, user.id)
    return await render(
        request,
        "profile.html",
        status_code=status,
        error=error,
        values=values or {},
        has_password=has_password,
        token=token,
        token_error=token_error,
        providers=[(p, PROVIDER_LABELS.get(p, p.title()), p in stored) for p in PROVIDERS],
        mail=web.mailer.enabled,
        # A namespace, not a dict: in Jinja ``can.keys`` of a dict is the method (truthy).
        can=SimpleNamespace(
            name=user.can(UPDATE_NAME),
            email=user.can(UPDATE_EMAIL),
            password=user.can(UPDATE_PASSWORD),
            read_token=user.can(READ_TOKEN),
            renew_token=user.can(RENEW_TOKEN),
            provider_keys=user.can(UPDATE_KEYS),
            delete=user.can(DELETE_ACCOUNT),
        ),
    )


async def _user(request: Request) -> UserInfo:
    user = await current_user(request)
    assert user is not None  # page() let only signed-in users through
    return user


async def _refused(
    request: Request, refused: _Refused, values: dict[str, str] | None = None
) -> Response:
    return await _page(request, error=refused.message, status=refused.status, values=values)


def _from_error(exc: KuwaError) -> _Refused:
    """A client-side KuwaError (bad input, conflict) as a refusal; others propagate."""
    if exc.status >= 500:
        raise exc
    message = exc.message[:1].upper() + exc.message[1:]
    return _Refused(message if message.endswith(".") else message + ".", exc.status)


async def _require_password(request: Request, user: UserInfo, password: str) -> None:
    """Refuse unless ``password`` is the user's (accounts without a password pass).

    Wrong guesses count towards the sign-in throttle of the account and the address."""
    web = web_state(request)
    if not await run_in_threadpool(web.store.accounts.has_password, user.id):
        return
    if not password:
        raise _Refused("Please type your current password.")
    ip = client_ip(request)
    try:
        await web.throttle.check(user.email, ip)
    except RateLimitError as exc:
        raise _Refused(exc.message, 429) from None
    if await run_in_threadpool(web.store.accounts.check_password, user.email, password) is None:
        await web.throttle.failed(user.email, ip)
        await _audit(request, "password_check_failed", user, ok=False)
        raise _Refused("Your current password is wrong.", 401)


async def _audit(
    request: Request,
    action: str,
    user: UserInfo,
    *,
    detail: str = "",
    target: str = "",
    ok: bool = True,
    keep_user: bool = True,
) -> None:
    await run_in_threadpool(
        lambda: web_state(request).store.audit.record(
            action,
            user_id=user.id if keep_user else None,
            actor=user.email,
            target=target,
            detail=detail,
            ip=client_ip(request),
            ok=ok,
        )
    )


def _back() -> Response:
    return RedirectResponse("/profile", status_code=303)


# --- name -----------------------------------------------------------------------------------
@page(UPDATE_NAME)
@endpoint("Change your name", form=forms.Name, redirect=True)
async def update_name(request: Request) -> Response:
    store = web_state(request).store
    user = await _user(request)
    form = await request.form()
    name = str(form.get("name", "")).strip()
    try:
        updated = await run_in_threadpool(lambda: store.accounts.update_user(user.id, name=name))
    except KuwaError as exc:
        return await _refused(request, _from_error(exc), {"name": name})
    if updated.name != user.name:
        await _audit(request, "name_changed", user, detail=f"{user.name} -> {updated.name}")
    flash(request, "Your name is saved.")
    return _back()


# --- email ----------------------------------------------------------------------------------
@page(UPDATE_EMAIL)
@endpoint(
    "Change your email (a confirmation link is mailed)", form=forms.EmailChange, redirect=True
)
async def update_email(request: Request) -> Response:
    web = web_state(request)
    store = web.store
    user = await _user(request)
    form = await request.form()
    typed = str(form.get("email", "")).strip()
    values = {"email": typed}
    try:
        if user.source == "ldap":
            raise _Refused(
                "Your address comes from the directory (LDAP). Ask an administrator to "
                "change it there."
            )
        try:
            new = normalize_email(typed)
        except KuwaError as exc:
            raise _from_error(exc) from None
        if new == user.email:
            raise _Refused("That is your address already.")
        config = await system_config(request)
        if not config.domain_allowed(new):
            allowed = ", ".join("@" + d for d in config.allowed_domains)
            raise _Refused(f"Accounts here use addresses at {allowed} only.")
        await _require_password(request, user, str(form.get("password", "")))
    except _Refused as refused:
        return await _refused(request, refused, values)

    if web.mailer.enabled:
        # The same answer whether or not the address is taken; its owner hears of it by mail.
        taken = await run_in_threadpool(store.accounts.find_user, new)
        if taken is not None:
            sent = await send_mail(request, new, "email_taken", login=link(request, "/login"))
        else:
            code = await run_in_threadpool(store.codes.issue, user.id, CHANGE_EMAIL, new)
            sent = await send_mail(
                request,
                new,
                "change_email",
                name=user.name,
                new=new,
                old=user.email,
                link=link(request, "/profile/email/confirm?code=" + code),
            )
        if not sent:
            return await _refused(
                request,
                _Refused("We could not send mail just now. Please try again later.", 503),
                values,
            )
        await _audit(request, "email_change_requested", user, target=new)
        flash(
            request,
            f"We sent a link to {new}. Open it to finish the change; until then your address "
            f"stays {user.email}.",
        )
        return _back()

    try:
        await run_in_threadpool(
            lambda: store.accounts.update_user(user.id, email=new, email_verified=False)
        )
    except ConflictError:
        return await _refused(
            request, _Refused("That address belongs to another account.", 409), values
        )
    except KuwaError as exc:
        return await _refused(request, _from_error(exc), values)
    await _audit(request, "email_changed", user, target=new, detail=f"{user.email} -> {new}")
    web.on_user_changed()
    flash(
        request,
        f"Your email is now {new}. It is not verified: this server sends no mail.",
    )
    return _back()


@page(PUBLIC)
@endpoint("The page a mailed email-change link opens", media=HTML)
async def confirm_email_form(request: Request) -> Response:
    return await confirm_link(
        request, "Confirm your new email", "One more click to change your address.", "Confirm"
    )


@page(PUBLIC)
@endpoint("Confirm the new email (the mailed code)", form=forms.Code, redirect=True)
async def confirm_email(request: Request) -> Response:
    web = web_state(request)
    store = web.store
    code = await posted_code(request)
    redeemed = await run_in_threadpool(store.codes.redeem, code, CHANGE_EMAIL)
    owner = None
    if redeemed is not None:
        owner = await run_in_threadpool(store.accounts.get_user, redeemed.user_id)
    if redeemed is None or owner is None:
        return await _link_message(
            request,
            400,
            "This link does not work",
            "It was used already, has expired, or a newer one was sent. Ask for the change "
            "again on your profile.",
        )
    if not owner.can(UPDATE_EMAIL):
        return await _link_message(
            request, 403, "Not allowed", "Your account may not change its email any more."
        )
    old, new = owner.email, redeemed.data
    try:
        await run_in_threadpool(
            lambda: store.accounts.update_user(owner.id, email=new, email_verified=True)
        )
    except ConflictError:
        return await _link_message(
            request,
            409,
            "This address is taken",
            f"Another account uses {new} now, so your address stays {old}.",
        )
    await run_in_threadpool(
        lambda: store.audit.record(
            "email_changed",
            user_id=owner.id,
            actor=old,
            target=new,
            detail=f"{old} -> {new} (confirmed by mail)",
            ip=client_ip(request),
        )
    )
    web.on_user_changed()
    await send_mail(request, old, "email_changed", name=owner.name, old=old, new=new)
    signed_in = await current_user(request)
    if signed_in is not None and signed_in.id == owner.id:
        flash(request, f"Your email is now {new}.")
        return _back()
    flash(request, f"Your email is now {new}. Sign in with it.")
    return RedirectResponse("/login", status_code=303)


async def _link_message(request: Request, status: int, title: str, message: str) -> Response:
    signed_in = await current_user(request) is not None
    return await render(
        request,
        "message.html",
        status_code=status,
        title=title,
        message=message,
        link="/profile" if signed_in else "/login",
        link_text="Go to your profile" if signed_in else "Go to sign-in",
    )


# --- password -------------------------------------------------------------------------------
@page(UPDATE_PASSWORD)
@endpoint("Change your password", form=forms.PasswordChange, redirect=True)
async def update_password(request: Request) -> Response:
    web = web_state(request)
    user = await _user(request)
    form = await request.form()
    current = str(form.get("current", ""))
    new = str(form.get("password", ""))
    try:
        if new != str(form.get("password2", "")):
            raise _Refused("The two new passwords differ.")
        try:
            check_password_rules(new)
        except KuwaError as exc:
            raise _from_error(exc) from None
        await _require_password(request, user, current)
        if new == current:
            raise _Refused("Choose a password different from the current one.")
        try:
            await run_in_threadpool(web.store.accounts.set_password, user.id, new)
        except KuwaError as exc:
            raise _from_error(exc) from None
    except _Refused as refused:
        return await _refused(request, refused)
    await web.sessions.end_all(user.id, keep=request)
    await _audit(request, "password_changed", user, detail="profile")
    flash(request, "Your password is changed. Other sign-ins of your account were ended.")
    return _back()


# --- API token ------------------------------------------------------------------------------
@page(RENEW_TOKEN)
@endpoint("A new API token (the old one stops working)", redirect=True)
async def renew_token(request: Request) -> Response:
    web = web_state(request)
    user = await _user(request)
    await run_in_threadpool(web.store.accounts.renew_token, user.id)
    web.on_user_changed()  # gateways' token caches must forget the old token now
    await _audit(request, "token_renewed", user)
    flash(request, "Your API token is renewed. The old one no longer works.")
    return _back()


# --- provider keys --------------------------------------------------------------------------
@page(UPDATE_KEYS)
@endpoint("Save or remove your own provider API keys", form=forms.ProviderKeys, redirect=True)
async def update_keys(request: Request) -> Response:
    web = web_state(request)
    store = web.store
    user = await _user(request)
    form = await request.form()
    stored = set(await run_in_threadpool(store.identities.key_providers, user.id))
    plan: list[tuple[str, str]] = []  # (provider, key); "" removes
    try:
        for provider in PROVIDERS:
            label = PROVIDER_LABELS.get(provider, provider.title())
            key = str(form.get(f"key_{provider}", "")).strip()
            remove = form.get(f"remove_{provider}") == "yes"
            if remove and key:
                raise _Refused(f"Either type a new {label} key or remove it, not both.")
            if remove:
                if provider in stored:
                    plan.append((provider, ""))
            elif key:
                if len(key) > MAX_KEY_LENGTH or any(ch.isspace() for ch in key):
                    raise _Refused(f"The {label} key does not look like an API key.")
                plan.append((provider, key))
    except _Refused as refused:
        return await _refused(request, refused)
    if not plan:
        flash(request, "Nothing to change: type a key, or tick 'remove'.")
        return _back()
    for provider, key in plan:
        try:
            await run_in_threadpool(store.identities.set_key, user.id, provider, key)
        except KuwaError as exc:
            return await _refused(request, _from_error(exc))
        state_of(request).provider_keys.forget(user.id)
        # Only the provider's name goes to the audit log, never the key.
        action = "provider_key_set" if key else "provider_key_removed"
        await _audit(request, action, user, target=provider)
    names = ", ".join(PROVIDER_LABELS.get(p, p) for p, _ in plan)
    flash(request, f"Your provider keys are saved ({names}).")
    return _back()


# --- delete the account ---------------------------------------------------------------------
@page(DELETE_ACCOUNT)
@endpoint("Delete your account", form=forms.DeleteAccount, redirect=True)
async def delete_account(request: Request) -> Response:
    web = web_state(request)
    store = web.store
    user = await _user(request)
    form = await request.form()
    try:
        if form.get("confirm") != "yes":
            raise _Refused("Tick the box to confirm that you want to delete your account.")
        if await run_in_threadpool(store.accounts.has_password, user.id):
            await _require_password(request, user, str(form.get("password", "")))
        elif str(form.get("confirm_email", "")).strip().lower() != user.email:
            raise _Refused(f"Type your email address ({user.email}) to confirm.")
        if user.group == "Admins":
            admins = await run_in_threadpool(store.groups.get, "Admins")
            if admins.members <= 1:
                raise _Refused(
                    "You are the last administrator: make someone else an administrator "
                    "before you delete your account."
                )
    except _Refused as refused:
        return await _refused(request, refused)
    await run_in_threadpool(store.accounts.delete_user, user.id)
    await web.sessions.end_all(user.id)
    request.session.clear()
    request.scope.setdefault("kuwa", {})["user"] = None
    web.on_user_changed()  # the API must refuse the account's tokens at once
    # The row is gone, so the event names the account by its address only.
    await _audit(request, "account_deleted", user, target=user.email, keep_user=False)
    flash(request, "Your account is deleted. Goodbye!")
    return RedirectResponse("/login", status_code=303)


def routes() -> list[BaseRoute]:
    return [
        Route("/profile", show, methods=["GET"]),
        Route("/profile/name", update_name, methods=["POST"]),
        Route("/profile/email", update_email, methods=["POST"]),
        Route("/profile/email/confirm", confirm_email_form, methods=["GET"]),
        Route("/profile/email/confirm", confirm_email, methods=["POST"]),
        Route("/profile/password", update_password, methods=["POST"]),
        Route("/profile/token", renew_token, methods=["POST"]),
        Route("/profile/keys", update_keys, methods=["POST"]),
        Route("/profile/delete", delete_account, methods=["POST"]),
    ]
