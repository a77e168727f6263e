"""The model catalog: what people may chat with, by access code, and how it shows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import peewee

from kuwa import keys
from kuwa.accounts import permissions as perms
from kuwa.accounts.groups import Groups
from kuwa.accounts.models import Model, utcnow
from kuwa.accounts.repo import Repo, aware_or_none, db_errors
from kuwa.errors import ConflictError, InvalidRequestError, NotFoundError

REACT_BUTTONS = ("copy", "quote", "translate", "feedback", "regenerate")
MAX_IMAGE_CHARS = 256 * 1024


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: int
    access_code: str
    name: str
    description: str
    image: str
    order: int
    enabled: bool
    modelfile: str
    react_buttons: tuple[str, ...]
    queue_timeout: float | None
    idle_timeout: float | None
    deleted_at: dt.datetime | None = None

    @property
    def permission(self) -> str:
        return perms.model_permission(self.access_code)


_FIELDS = (
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


class Catalog(Repo):
    def list_models(
        self, *, include_disabled: bool = True, include_deleted: bool = False
    ) -> list[ModelInfo]:
        query = Model.select()
        if not include_deleted:
            query = query.where(Model.deleted_at.is_null())
        if not include_disabled:
            query = query.where(Model.enabled == True)  # noqa: E712 -- peewee expression
        with db_errors("listing models"):
            rows = self._rows(query.order_by(Model.order, Model.name))
        return [_info(row) for row in rows]

    def get(self, access_code: str, *, include_deleted: bool = False) -> ModelInfo:
        query = Model.select().where(Model.access_code == access_code)
        if not include_deleted:
            query = query.where(Model.deleted_at.is_null())
        with db_errors("finding a model"):
            rows = self._rows(query.limit(1))
        if not rows:
            raise NotFoundError(f"there is no model {access_code!r}", param="model")
        return _info(rows[0])

    def create(self, access_code: str, name: str = "", **fields: Any) -> ModelInfo:
        """A new model, open to every group (Kuwa's rule); admins then narrow it."""
        code = access_code.strip()
        if not keys.valid_access_code(code):
            raise InvalidRequestError(
                f"{access_code!r} is not a valid access code: use letters, digits and "
                ". _ : / @ + - (up to 128 characters, starting with a letter or digit)",
                param="access_code",
            )
        values = _check(name=name.strip() or code, **fields)
        with db_errors("creating a model"):
            try:
                with self._db.atomic():
                    existing = self._rows(Model.select().where(Model.access_code == code))
                    if existing and existing[0]["deleted_at"] is None:
                        raise ConflictError(
                            f"a model with access code {code!r} already exists",
                            param="access_code",
                        )
                    if existing:  # re-creating a soft-deleted model restores it
                        self._q(
                            Model.update(deleted_at=None, **values).where(Model.access_code == code)
                        ).execute()
                    else:
                        self._q(
                            Model.insert(access_code=code, created_at=utcnow(), **values)
                        ).execute()
                    Groups(self._db).grant_to_all(perms.model_permission(code))
            except peewee.IntegrityError:
                raise ConflictError(
                    f"a model with access code {code!r} already exists", param="access_code"
                ) from None
        return self.get(code)

    def ensure(self, access_codes: list[str]) -> list[str]:
        """Register the access codes not in the catalog yet (executors announced them)."""
        with db_errors("registering models"):
            known = {
                code
                for (code,) in self._q(
                    Model.select(Model.access_code)
                    .where(Model.access_code.in_(access_codes))
                    .tuples()
                )
            }
        added = []
        for code in access_codes:
            if code in known or not keys.valid_access_code(code):
                continue
            try:
                self.create(code)
            except ConflictError:
                continue  # another process registered it first
            added.append(code)
        return added

    def update(self, access_code: str, **fields: Any) -> ModelInfo:
        values = _check(**fields)
        self.get(access_code)
        with db_errors("updating a model"):
            if values:
                self._q(Model.update(**values).where(Model.access_code == access_code)).execute()
        return self.get(access_code)

    def delete(self, access_code: str) -> None:
        """Soft delete: hidden from everyone, restorable by an admin."""
        self.get(access_code)
        with db_errors("deleting a model"):
            self._q(
                Model.update(deleted_at=utcnow()).where(Model.access_code == access_code)
            ).execute()

    def restore(self, access_code: str) -> ModelInfo:
        with db_errors("restoring a model"):
            n = self._q(
                Model.update(deleted_at=None).where(Model.access_code == access_code)
            ).execute()
        if not n:
            raise NotFoundError(f"there is no model {access_code!r}", param="model")
        return self.get(access_code)


def _check(**fields: Any) -> dict[str, Any]:
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise InvalidRequestError(f"unknown model field {sorted(unknown)[0]!r}")
    values = {k: v for k, v in fields.items() if v is not None}
    if "name" in values:
        values["name"] = str(values["name"]).strip()
        if not values["name"] or len(values["name"]) > 200:
            raise InvalidRequestError("a model name must be 1 to 200 characters", param="name")
    if "image" in values:
        image = str(values["image"]).strip()
        if image and not image.startswith(("https://", "http://", "/", "data:image/")):
            raise InvalidRequestError(
                "the image must be an http(s) URL, a path or a data:image/ URL", param="image"
            )
        if len(image) > MAX_IMAGE_CHARS:
            raise InvalidRequestError("the image is too large (at most 192 KiB)", param="image")
        values["image"] = image
    if "react_buttons" in values:
        buttons = values["react_buttons"]
        if isinstance(buttons, str):
            buttons = [b.strip() for b in buttons.split(",") if b.strip()]
        bad = [b for b in buttons if b not in REACT_BUTTONS]
        if bad:
            raise InvalidRequestError(
                f"unknown react button {bad[0]!r}; choose from {', '.join(REACT_BUTTONS)}",
                param="react_buttons",
            )
        values["react_buttons"] = ",".join(dict.fromkeys(buttons))
    for key in ("queue_timeout", "idle_timeout"):
        if key in values:
            if float(values[key]) < 0:
                raise InvalidRequestError(f"{key} must be 0 (the default) or more", param=key)
            values[key] = float(values[key]) or None  # 0: back to the server's default
    return values


def _info(row: dict[str, Any]) -> ModelInfo:
    return ModelInfo(
        id=int(row["id"]),
        access_code=row["access_code"],
        name=row["name"],
        description=row["description"],
        image=row["image"],
        order=int(row["order"]),
        enabled=bool(row["enabled"]),
        modelfile=row["modelfile"],
        react_buttons=tuple(b for b in row["react_buttons"].split(",") if b),
        queue_timeout=row["queue_timeout"],
        idle_timeout=row["idle_timeout"],
        deleted_at=aware_or_none(row["deleted_at"]),
    )
