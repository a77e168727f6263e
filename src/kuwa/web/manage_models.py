"""Manage pages for the model catalog: the Models page and a model's own page.

Access codes may contain ``/``, so the action comes before the code in every model URL:
``/manage/models/edit/{code}``, ``/manage/models/delete/{code}``,
``/manage/models/restore/{code}``.
"""

from __future__ import annotations

import base64
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import REACT_BUTTONS, ModelInfo
from kuwa.accounts.catalog import MAX_IMAGE_CHARS
from kuwa.broker.connection import redis_errors
from kuwa.errors import InvalidRequestError, KuwaError, NotFoundError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.web import forms
from kuwa.web.core import page, render, web_state
from kuwa.web.manage import MANAGE
from kuwa.web.manage_forms import FRESH, Shown, admin_of, audit, drop_cached, redirect, typed

log = logging.getLogger(__name__)

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
            access_code=typed(form, "access_code").strip(),
            name=typed(form, "name"),
            description=typed(form, "description"),
            image=typed(form, "image").strip(),
            order=typed(form, "order").strip(),
            enabled=bool(form.get("enabled")),
            modelfile=typed(form, "modelfile"),
            react_buttons=[str(b) for b in form.getlist("react_buttons")],
            queue_timeout=typed(form, "queue_timeout").strip(),
            idle_timeout=typed(form, "idle_timeout").strip(),
        )


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


async def _models_page(request: Request, shown: Shown[ModelValues] = FRESH) -> Response:
    store = web_state(request).store
    models = await run_in_threadpool(lambda: store.catalog.list_models(include_deleted=True))
    active = [m for m in models if m.deleted_at is None]
    deleted = [m for m in models if m.deleted_at is not None]
    counts, served = await _live(request, [m.access_code for m in models])
    listed = {m.access_code for m in models}
    return await render(
        request,
        "manage/models.html",
        status_code=shown.status,
        models=active,
        deleted=deleted,
        counts=counts,
        unlisted=[c for c in served if c not in listed],
        error=shown.error,
        values=shown.values or ModelValues(),
        react_buttons=REACT_BUTTONS,
        shown_image=shown_image,
    )


async def _edit_page(
    request: Request, model: ModelInfo, shown: Shown[ModelValues] = FRESH
) -> Response:
    counts, _ = await _live(request, [model.access_code])
    return await render(
        request,
        "manage/models_edit.html",
        status_code=shown.status,
        model=model,
        live=None if counts is None else counts.get(model.access_code, 0),
        error=shown.error,
        values=shown.values or ModelValues.of(model),
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
@endpoint("The model catalog", media=HTML)
async def models_page(request: Request) -> Response:
    return await _models_page(request)


@page(MANAGE)
@endpoint("Add a model", form=forms.ModelFields, redirect=True)
async def create_model(request: Request) -> Response:
    admin = await admin_of(request)
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
            return await _models_page(request, Shown(exc.message, exc.status, values))
    drop_cached(request)
    await audit(request, admin, "model_created", target=model.access_code, detail=model.name)
    return redirect(
        request, "/manage/models", f"Model {model.name} ({model.access_code}) is added."
    )


@page(MANAGE)
@endpoint("A model's settings", media=HTML)
async def edit_model_form(request: Request) -> Response:
    code = str(request.path_params["code"])
    try:
        model = await run_in_threadpool(web_state(request).store.catalog.get, code)
    except NotFoundError:
        return await _no_model(request, code)
    return await _edit_page(request, model)


@page(MANAGE)
@endpoint("Change a model", form=forms.ModelFields, redirect=True)
async def edit_model(request: Request) -> Response:
    admin = await admin_of(request)
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
            return await _edit_page(request, before, Shown(exc.message, exc.status, values))
    changed = _changed(before, after)
    if not changed:
        return redirect(request, "/manage/models", "Nothing changed.")
    drop_cached(request)
    await audit(
        request, admin, "model_updated", target=code, detail="changed: " + ", ".join(changed)
    )
    return redirect(request, "/manage/models", f"Model {after.name} ({code}) is saved.")


@page(MANAGE)
@endpoint("Delete a model (it can be restored)", redirect=True)
async def delete_model(request: Request) -> Response:
    admin = await admin_of(request)
    code = str(request.path_params["code"])
    try:
        await run_in_threadpool(web_state(request).store.catalog.delete, code)
    except NotFoundError:
        return await _no_model(request, code)
    drop_cached(request)
    await audit(request, admin, "model_deleted", target=code)
    return redirect(
        request, "/manage/models", f"Model {code} is deleted; it can be restored below."
    )


@page(MANAGE)
@endpoint("Restore a deleted model", redirect=True)
async def restore_model(request: Request) -> Response:
    admin = await admin_of(request)
    code = str(request.path_params["code"])
    try:
        model = await run_in_threadpool(web_state(request).store.catalog.restore, code)
    except NotFoundError:
        return await _no_model(request, code)
    drop_cached(request)
    await audit(request, admin, "model_restored", target=code)
    return redirect(request, "/manage/models", f"Model {model.name} ({code}) is restored.")


def routes() -> list[BaseRoute]:
    return [
        Route("/manage/models", models_page, methods=["GET"]),
        Route("/manage/models", create_model, methods=["POST"]),
        Route("/manage/models/edit/{code:path}", edit_model_form, methods=["GET"]),
        Route("/manage/models/edit/{code:path}", edit_model, methods=["POST"]),
        Route("/manage/models/delete/{code:path}", delete_model, methods=["POST"]),
        Route("/manage/models/restore/{code:path}", restore_model, methods=["POST"]),
    ]
