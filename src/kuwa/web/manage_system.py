"""Manage pages for the model catalog, the system settings and the audit log.

Access codes may contain ``/``, so the action comes before the code in every model URL:
``/manage/models/edit/{code}``, ``/manage/models/delete/{code}``,
``/manage/models/restore/{code}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import REACT_BUTTONS, REGISTRATION_MODES, ModelInfo, SystemConfig, UserInfo
from kuwa.accounts.catalog import MAX_IMAGE_CHARS
from kuwa.broker.connection import redis_errors
from kuwa.errors import InvalidRequestError, KuwaError, NotFoundError
from kuwa.web.core import client_ip, current_user, page, render, web_state
from kuwa.web.manage import MANAGE
from kuwa.web.session import flash

log = logging.getLogger(__name__)

# --- models ---------------------------------------------------------------------------------
# Bytes of an uploaded image: as a data: URL it must fit the catalog's limit (192 KiB).
MAX_UPLOAD = (MAX_IMAGE_CHARS - len("data:image/jpeg;base64,")) // 4 * 3
MAX_MODELFILE = 200_000
MAX_DESCRIPTION = 20_000
MAX_TIMEOUT = 7 * 24 * 3600.0
DEFAULT_REACT = (
    "copy",
    "quote",
    "translate",
    "feedback",
    "regenerate",
)  # the catalog's default for new models
IMAGE_PREFIXES = ("https://", "http://", "/", "data:image/")
_IMAGE_KINDS = "PNG, JPEG, GIF or WebP"


@dataclass(slots=True)
class ModelValues:
    """What a model form shows (as typed, so a refused form comes back as it was sent)."""

    access_code: str = ""
    name: str = ""
    description: str = ""
    image: str = ""
    order: str = "0"
    enabled: bool = True
    modelfile: str = ""
    react_buttons: list[str] = field(default_factory=lambda: list(DEFAULT_REACT))
    queue_timeout: str = ""
    idle_timeout: str = ""

    @classmethod
    def of(cls, model: ModelInfo) -> ModelValues:
        return cls(
            access_code=model.access_code,
            name=model.name,
            description=model.description,
            image="" if model.image.startswith("data:") else model.image,
            order=str(model.order),
            enabled=model.enabled,
            modelfile=model.modelfile,
            react_buttons=list(model.react_buttons),
            queue_timeout=_seconds(model.queue_timeout),
            idle_timeout=_seconds(model.idle_timeout),
        )

    @classmethod
    def sent(cls, form: FormData) -> ModelValues:
        return cls(
            access_code=_text(form, "access_code").strip(),
            name=_text(form, "name"),
            description=_text(form, "description"),
            image=_text(form, "image").strip(),
            order=_text(form, "order").strip(),
            enabled=bool(form.get("enabled")),
            modelfile=_text(form, "modelfile"),
            react_buttons=[str(b) for b in form.getlist("react_buttons")],
            queue_timeout=_text(form, "queue_timeout").strip(),
            idle_timeout=_text(form, "idle_timeout").strip(),
        )


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def shown_image(image: str) -> str:
    """The image to put in ``<img src>``, or "" (only what the catalog accepts)."""
    return image if image.startswith(IMAGE_PREFIXES) else ""


def sniff_image(data: bytes) -> str | None:
    """The MIME type of a PNG, JPEG, GIF or WebP image by its first bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def uploaded_image(form: FormData) -> str | None:
    """The uploaded image as a data: URL; None when no file was chosen."""
    upload = form.get("image_file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    data = await upload.read(MAX_UPLOAD + 1)
    if not data:
        return None
    if len(data) > MAX_UPLOAD:
        raise InvalidRequestError(
            f"The image is too large: at most {round(MAX_UPLOAD / 1024)} KiB.", param="image"
        )
    kind = sniff_image(data)
    if kind is None:
        raise InvalidRequestError(
            f"The uploaded file is not a {_IMAGE_KINDS} image.", param="image"
        )
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def check_modelfile(text: str) -> None:
    """Raise the parser's error (``Modelfile line N: …``) for a Modelfile that cannot be read."""
    if not text.strip():
        return
    # Imported here, not at the top: the gateway loads no kuwa.executors module when it starts
    # (tests/test_imports.py). The parser is pure Python (kuwa.executors.base, kuwa.schemas).
    from kuwa.executors.modelfile import Modelfile

    Modelfile.parse(text)


def _number(raw: str, what: str, *, default: float | None) -> float | None:
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequestError(f"{what} must be a number of seconds, not {raw!r}.") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_TIMEOUT:
        raise InvalidRequestError(
            f"{what} must be more than 0 and at most {int(MAX_TIMEOUT)} seconds."
        )
    return value


async def _model_fields(
    form: FormData, values: ModelValues, current: ModelInfo | None
) -> dict[str, Any]:
    """The catalog fields a model form asks for (InvalidRequestError when they are wrong)."""
    try:
        order = int(values.order or "0")
    except ValueError:
        raise InvalidRequestError(
            f"The order must be a whole number, not {values.order!r}."
        ) from None
    if abs(order) > 1_000_000:
        raise InvalidRequestError("The order must be between -1000000 and 1000000.")
    if len(values.description) > MAX_DESCRIPTION:
        raise InvalidRequestError(f"The description is too long (at most {MAX_DESCRIPTION}).")
    if len(values.modelfile) > MAX_MODELFILE:
        raise InvalidRequestError(f"The Modelfile is too long (at most {MAX_MODELFILE}).")
    bad = [b for b in values.react_buttons if b not in REACT_BUTTONS]
    if bad:
        raise InvalidRequestError(f"Unknown react button {bad[0]!r}.")
    check_modelfile(values.modelfile)
    fields: dict[str, Any] = {
        "name": values.name.strip(),  # empty: the access code when creating, an error after
        "description": values.description.strip(),
        "order": order,
        "enabled": values.enabled,
        "modelfile": values.modelfile.rstrip("\n"),  # as checked: its line numbers hold
        "react_buttons": values.react_buttons,
    }
    for key, label in (
        ("queue_timeout", "The queue timeout"),
        ("idle_timeout", "The idle timeout"),
    ):
        raw = getattr(values, key)
        value = _number(raw, label, default=None)
        fields[key] = 0 if value is None else value  # 0 (empty): the server's default
    uploaded = await uploaded_image(form)
    if uploaded is not None:
        fields["image"] = uploaded
    elif form.get("remove_image"):
        fields["image"] = ""
    elif values.image:
        if not values.image.startswith(IMAGE_PREFIXES):
            raise InvalidRequestError(
                "The image must be an http(s) URL, a path starting with / or an uploaded file.",
                param="image",
            )
        fields["image"] = values.image
    elif current is None or not current.image.startswith("data:"):
        fields["image"] = ""  # an uploaded image stays unless removed; a URL can be cleared
    return fields


def _changed(before: ModelInfo, after: ModelInfo) -> list[str]:
    names = (
        "name",
        "description",
        "image",
        "order",
        "enabled",
        "modelfile",
        "react_buttons",
        "queue_timeout",
        "idle_timeout",
    )
    return [n for n in names if getattr(before, n) != getattr(after, n)]


async def _admin(request: Request) -> UserInfo:
    user = await current_user(request)
    assert user is not None  # @page let only a signed-in user with tab_Manage through
    return user


async def _audit(
    request: Request, action: str, admin: UserInfo, *, target: str = "", detail: str = ""
) -> None:
    await run_in_threadpool(
        web_state(request).store.audit.record,
        action,
        user_id=admin.id,
        actor=admin.email,
        target=target,
        detail=detail,
        ip=client_ip(request),
    )


async def _live(request: Request, codes: list[str]) -> tuple[dict[str, int] | None, list[str]]:
    """Live executors per access code (None when Redis cannot say), and every served code."""
    kuwa = getattr(request.app.state, "kuwa", None)
    if kuwa is None:
        return None, []
    registry = kuwa.chat.registry
    try:
        with redis_errors("listing executors"):
            served = sorted({c for e in await registry.executors() for c in e.access_codes})
            counts: dict[str, int] = await registry.live_counts(sorted({*codes, *served}))
    except KuwaError as exc:
        log.warning("could not count live executors: %s", exc.message)
        return None, []
    return counts, served


async def _models_page(
    request: Request,
    *,
    error: str = "",
    status: int = 200,
    values: ModelValues | None = None,
) -> Response:
    store = web_state(request).store
    models = await run_in_threadpool(lambda: store.catalog.list_models(include_deleted=True))
    active = [m for m in models if m.deleted_at is None]
    deleted = [m for m in models if m.deleted_at is not None]
    counts, served = await _live(request, [m.access_code for m in models])
    listed = {m.access_code for m in models}
    return await render(
        request,
        "manage/models.html",
        status_code=status,
        models=active,
        deleted=deleted,
        counts=counts,
        unlisted=[c for c in served if c not in listed],
        error=error,
        values=values or ModelValues(),
        react_buttons=REACT_BUTTONS,
        shown_image=shown_image,
    )


async def _edit_page(
    request: Request,
    model: ModelInfo,
    *,
    error: str = "",
    status: int = 200,
    values: ModelValues | None = None,
) -> Response:
    counts, _ = await _live(request, [model.access_code])
    return await render(
        request,
        "manage/models_edit.html",
        status_code=status,
        model=model,
        live=None if counts is None else counts.get(model.access_code, 0),
        error=error,
        values=values or ModelValues.of(model),
        react_buttons=REACT_BUTTONS,
        shown_image=shown_image,
    )


async def _no_model(request: Request, code: str) -> Response:
    return await render(
        request,
        "message.html",
        status_code=404,
        title="No such model",
        message=f"There is no model with the access code {code!r}.",
        link="/manage/models",
        link_text="Back to the models",
    )


@page(MANAGE)
async def models_page(request: Request) -> Response:
    return await _models_page(request)


@page(MANAGE)
async def create_model(request: Request) -> Response:
    admin = await _admin(request)
    store = web_state(request).store
    async with request.form(max_files=1, max_fields=50) as form:
        values = ModelValues.sent(form)
        code = values.access_code
        try:
            if not code:
                raise InvalidRequestError("Enter an access code.", param="access_code")
            if form.get("quick"):  # "Add" a served code: the defaults, as auto-registration
                fields: dict[str, Any] = {}
            else:
                fields = await _model_fields(form, values, None)
            model = await run_in_threadpool(lambda: store.catalog.create(code, **fields))
        except KuwaError as exc:
            return await _models_page(request, error=exc.message, status=exc.status, values=values)
    web_state(request).on_user_changed()
    await _audit(request, "model_created", admin, target=model.access_code, detail=model.name)
    flash(request, f"Model {model.name} ({model.access_code}) is added.")
    return RedirectResponse("/manage/models", status_code=303)


@page(MANAGE)
async def edit_model_form(request: Request) -> Response:
    code = str(request.path_params["code"])
    try:
        model = await run_in_threadpool(web_state(request).store.catalog.get, code)
    except NotFoundError:
        return await _no_model(request, code)
    return await _edit_page(request, model)


@page(MANAGE)
async def edit_model(request: Request) -> Response:
    admin = await _admin(request)
    store = web_state(request).store
    code = str(request.path_params["code"])
    try:
        before = await run_in_threadpool(store.catalog.get, code)
    except NotFoundError:
        return await _no_model(request, code)
    async with request.form(max_files=1, max_fields=50) as form:
        values = ModelValues.sent(form)
        values.access_code = code
        try:
            fields = await _model_fields(form, values, before)
            after = await run_in_threadpool(lambda: store.catalog.update(code, **fields))
        except NotFoundError:
            return await _no_model(request, code)
        except KuwaError as exc:
            return await _edit_page(
                request, before, error=exc.message, status=exc.status, values=values
            )
    changed = _changed(before, after)
    if not changed:
        flash(request, "Nothing changed.")
        return RedirectResponse("/manage/models", status_code=303)
    web_state(request).on_user_changed()
    await _audit(
        request, "model_updated", admin, target=code, detail="changed: " + ", ".join(changed)
    )
    flash(request, f"Model {after.name} ({code}) is saved.")
    return RedirectResponse("/manage/models", status_code=303)


@page(MANAGE)
async def delete_model(request: Request) -> Response:
    admin = await _admin(request)
    code = str(request.path_params["code"])
    try:
        await run_in_threadpool(web_state(request).store.catalog.delete, code)
    except NotFoundError:
        return await _no_model(request, code)
    web_state(request).on_user_changed()
    await _audit(request, "model_deleted", admin, target=code)
    flash(request, f"Model {code} is deleted; it can be restored below.")
    return RedirectResponse("/manage/models", status_code=303)


@page(MANAGE)
async def restore_model(request: Request) -> Response:
    admin = await _admin(request)
    code = str(request.path_params["code"])
    try:
        model = await run_in_threadpool(web_state(request).store.catalog.restore, code)
    except NotFoundError:
        return await _no_model(request, code)
    web_state(request).on_user_changed()
    await _audit(request, "model_restored", admin, target=code)
    flash(request, f"Model {model.name} ({code}) is restored.")
    return RedirectResponse("/manage/models", status_code=303)


# --- system settings ------------------------------------------------------------------------
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
    *,
    error: str = "",
    status: int = 200,
    values: dict[str, str] | None = None,
    blind: list[str] | None = None,
) -> Response:
    groups = await run_in_threadpool(web_state(request).store.groups.list_groups)
    shown = values or {
        "registration": config.registration,
        "allowed_domains": "\n".join(config.allowed_domains),
        "announcement": config.announcement,
        "terms": config.terms,
        "arena_pool": ", ".join(f"{c}:{w:g}" for c, w in config.arena_pool),
    }
    return await render(
        request,
        "manage/system.html",
        status_code=status,
        config=config,
        values=shown,
        modes=REGISTRATION_MODES,
        groups=[g.name for g in groups],
        blind=set(config.blind_groups if blind is None else blind),
        status=_status(request),
        error=error,
    )


@page(MANAGE)
async def system_page(request: Request) -> Response:
    config = await run_in_threadpool(web_state(request).store.system.load)
    return await _system_page(request, config)


@page(MANAGE)
async def update_system(request: Request) -> Response:
    admin = await _admin(request)
    store = web_state(request).store
    async with request.form(max_files=0, max_fields=1000) as form:
        values = {
            key: _text(form, key)
            for key in ("registration", "allowed_domains", "announcement", "terms", "arena_pool")
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
        after = await run_in_threadpool(
            lambda: store.system.update(
                registration=values["registration"],
                allowed_domains=",".join(domains),
                announcement=values["announcement"],
                terms=values["terms"],
                arena_pool=values["arena_pool"],
                blind_groups=blind,
            )
        )
    except KuwaError as exc:
        return await _system_page(
            request, before, error=exc.message, status=exc.status, values=values, blind=blind
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
        )
        if getattr(before, name) != getattr(after, name)
    ]
    if not changed:
        flash(request, "Nothing changed.")
        return RedirectResponse("/manage/system", status_code=303)
    detail = "changed: " + ", ".join(changed)
    if after.terms_version != before.terms_version:
        detail += f" (terms version {after.terms_version})"
    await _audit(request, "system_updated", admin, detail=detail)
    message = "The system settings are saved."
    if "terms" in changed and after.terms:
        message += " Everyone accepts the new terms of service at their next page."
    flash(request, message)
    return RedirectResponse("/manage/system", status_code=303)


# --- audit log ------------------------------------------------------------------------------
PAGE_SIZE = 50
OUTCOMES = {"ok": True, "failed": False}


@page(MANAGE)
async def audit_page(request: Request) -> Response:
    store = web_state(request).store
    q = request.query_params
    action = q.get("action", "").strip()[:64]
    actor = q.get("actor", "").strip()[:254]
    ip = q.get("ip", "").strip()[:64]
    outcome = q.get("ok", "")
    outcome = outcome if outcome in OUTCOMES else ""
    raw_page = q.get("page", "1")
    page_no = min(int(raw_page), 100_000) if raw_page.isdigit() and int(raw_page) > 0 else 1
    entries = await run_in_threadpool(
        lambda: store.audit.query(
            action=action,
            actor=actor,
            ip=ip,
            ok=OUTCOMES.get(outcome),
            limit=PAGE_SIZE + 1,
            offset=(page_no - 1) * PAGE_SIZE,
        )
    )
    actions = sorted(await run_in_threadpool(store.audit.actions))
    filters = {"action": action, "actor": actor, "ip": ip, "ok": outcome}

    def link(number: int) -> str:
        query = {k: v for k, v in filters.items() if v}
        if number > 1:
            query["page"] = str(number)
        return "/manage/audit" + ("?" + urlencode(query) if query else "")

    return await render(
        request,
        "manage/audit.html",
        entries=entries[:PAGE_SIZE],
        actions=actions,
        filters=filters,
        page_no=page_no,
        previous=link(page_no - 1) if page_no > 1 else "",
        next=link(page_no + 1) if len(entries) > PAGE_SIZE else "",
        utc=_utc,
    )


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def routes() -> list[BaseRoute]:
    return [
        Route("/manage/models", models_page, methods=["GET"]),
        Route("/manage/models", create_model, methods=["POST"]),
        Route("/manage/models/edit/{code:path}", edit_model_form, methods=["GET"]),
        Route("/manage/models/edit/{code:path}", edit_model, methods=["POST"]),
        Route("/manage/models/delete/{code:path}", delete_model, methods=["POST"]),
        Route("/manage/models/restore/{code:path}", restore_model, methods=["POST"]),
        Route("/manage/system", system_page, methods=["GET"]),
        Route("/manage/system", update_system, methods=["POST"]),
        Route("/manage/audit", audit_page, methods=["GET"]),
    ]
