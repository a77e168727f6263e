"""Setting values: a ``KUWA_*`` string turned into the field's type, or
:class:`SettingsError` naming the setting, and the documentation a field carries. The rules a
whole :class:`~kuwa.settings.Settings` must satisfy are its ``validate`` (this module knows no
settings, so the groups of settings and :mod:`.core` import it one way)."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A ``KUWA_*`` variable or option has a bad name or value."""


def doc(text: str) -> dict[str, str]:
    """A field's metadata: its line in docs/configuration.md."""
    return {"doc": text}


def convert(name: str, raw: str, tp: Any) -> Any:
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
        origin = typing.get_origin(tp)
    if optional and raw == "":
        return None
    try:
        if tp is bool:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
        if tp is Path:
            return Path(raw)
        if origin is tuple:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return raw
    except ValueError:
        raise SettingsError(
            f"{name}={raw!r} is not a valid {getattr(tp, '__name__', tp)}"
        ) from None
