"""The Manage tab's System page: sign-up, allowed email domains, the announcement, the
terms of service, the arena's pool and blind mode, and what the server was started with
(mail, LDAP, OIDC, proxies, …). The model catalog is in ``manage_models``, the audit log in
``manage_audit``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import REGISTRATION_MODES, SystemConfig
from kuwa.errors import InvalidRequestError, KuwaError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.web import forms
from kuwa.web.core import page, render, web_state
from kuwa.web.manage import MANAGE
from kuwa.web.manage_forms import FRESH, Shown, admin_of, audit, redirect, typed

MAX_ANNOUNCEMENT = 4000
MAX_TERMS = 100_000
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def _domains(raw: str) -> list[str]:
    """Allowed email domains from a comma or newline separated list (as System.update reads
    them); InvalidRequestError names the first that is not a domain."""
    domains = [d.strip().lower().lstrip("@") for d in raw.replace("\n", ",").split(",")]
    domains = [d for d in domains if d]
    for domain in domains:
        if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
            raise InvalidRequestError(
                f"{domain!r} is not an email domain (like example.org).", param="allowed_domains"
            )
    return list(dict.fromkeys(domains))


def _without_login(url: str | None) -> str:
    """A URL without any user:password part, for display."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def _status(request: Request) -> dict[str, Any]:
    web = web_state(request)
    s = web.settings
    return {
        "smtp": (
            {
                "server": f"{s.smtp_host}:{s.smtp_port}",
                "security": s.smtp_security,
                "login": "yes" if s.smtp_username else "no",
                "from": s.smtp_from,
            }
            if s.smtp_host
            else None
        ),
        "ldap": (
            {
                "server": _without_login(s.ldap_url),
                "base_dn": s.ldap_base_dn,
                "start_tls": "yes" if s.ldap_start_tls else "no",
                "group": s.ldap_group,
            }
            if s.ldap_url
            else None
        ),
        "oidc": (
            {
                "provider": s.oidc_provider,
                "label": web.oidc.label if web.oidc is not None else (s.oidc_label or ""),
                "group": s.oidc_group,
            }
            if s.oidc_provider
            else None
        ),
        "trusted_proxies": ", ".join(s.trusted_proxies),
        "ip_allowlist": ", ".join(s.ip_allowlist),
        "auto_register_models": s.auto_register_models,
        "public_url": s.public_url or "",
    }


async def _system_page(
    request: Request,
    config: SystemConfig,
    shown: Shown[dict[str, str]] = FRESH,
    blind: list[str] | None = None,
) -> Response:
    groups = await run_in_threadpool(web_state(request).store.groups.list_groups)
    values = shown.values or {
        "registration": config.registration,
        "allowed_domains": "\n".join(config.allowed_domains),
        "announcement": config.announcement,
        "terms": config.terms,
        "arena_pool": ", ".join(f"{c}:{w:g}" for c, w in config.arena_pool),
        "trash_days": str(config.trash_days),
    }
    return await render(
        request,
        "manage/system.html",
        status_code=shown.status,
        config=config,
        values=values,
        modes=REGISTRATION_MODES,
        groups=[g.name for g in groups],
        blind=set(config.blind_groups if blind is None else blind),
        status=_status(request),
        error=shown.error,
    )


@page(MANAGE)
@endpoint("System settings", media=HTML)
async def system_page(request: Request) -> Response:
    config = await run_in_threadpool(web_state(request).store.system.load)
    return await _system_page(request, config)


@page(MANAGE)
@endpoint("Change the system settings", form=forms.SystemFields, redirect=True)
async def update_system(request: Request) -> Response:
    admin = await admin_of(request)
    store = web_state(request).store
    async with request.form(max_files=0, max_fields=1000) as form:
        values = {
            key: typed(form, key)
            for key in (
                "registration",
                "allowed_domains",
                "announcement",
                "terms",
                "arena_pool",
                "trash_days",
            )
        }
        blind = [str(g) for g in form.getlist("blind_groups")]
    before = await run_in_threadpool(store.system.load)
    try:
        if values["registration"] not in REGISTRATION_MODES:
            raise InvalidRequestError("Choose open, invite or closed sign-up.")
        domains = _domains(values["allowed_domains"])
        if len(values["announcement"].strip()) > MAX_ANNOUNCEMENT:
            raise InvalidRequestError(
                f"The announcement is too long (at most {MAX_ANNOUNCEMENT} characters)."
            )
        if len(values["terms"].strip()) > MAX_TERMS:
            raise InvalidRequestError(
                f"The terms of service are too long (at most {MAX_TERMS} characters)."
            )
        days = values["trash_days"].strip()
        if days and not days.isdigit():
            raise InvalidRequestError("Keep the trash a whole number of days.", param="trash_days")
        after = await run_in_threadpool(
            lambda: store.system.update(
                registration=values["registration"],
                allowed_domains=",".join(domains),
                announcement=values["announcement"],
                terms=values["terms"],
                arena_pool=values["arena_pool"],
                blind_groups=blind,
                trash_days=int(days) if days else None,
            )
        )
    except KuwaError as exc:
        return await _system_page(
            request, before, Shown(exc.message, exc.status, values), blind=blind
        )
    changed = [
        name
        for name in (
            "registration",
            "allowed_domains",
            "announcement",
            "terms",
            "arena_pool",
            "blind_groups",
            "trash_days",
        )
        if getattr(before, name) != getattr(after, name)
    ]
    if not changed:
        return redirect(request, "/manage/system", "Nothing changed.")
    detail = "changed: " + ", ".join(changed)
    if after.terms_version != before.terms_version:
        detail += f" (terms version {after.terms_version})"
    await audit(request, admin, "system_updated", detail=detail)
    message = "The system settings are saved."
    if "terms" in changed and after.terms:
        message += " Everyone accepts the new terms of service at their next page."
    return redirect(request, "/manage/system", message)


def routes() -> list[BaseRoute]:
    return [
        Route("/manage/system", system_page, methods=["GET"]),
        Route("/manage/system", update_system, methods=["POST"]),
    ]
