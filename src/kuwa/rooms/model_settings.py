"""Each model's settings in a room, as Open WebUI has them: a system prompt, temperature,
top-p and the most tokens to generate.

Stored with the room (``rooms.model_settings``, JSON ``{code: {...}}``), exported with its
JSON, applied to every answer the model gives there (:func:`apply`), and kept within the
room owner's group's bounds when saved (:func:`check_settings`); every job is also clamped to
its user's bounds when it starts (``kuwa.gateway.start``). An arena battle has none: its
settings would name its models before the vote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from kuwa.accounts.bounds import MAX_TOKENS_CAP, TEMPERATURE_RANGE, TOP_P_RANGE, Bounds
from kuwa.errors import InvalidRequestError
from kuwa.schemas import ChatRequest
from kuwa.schemas.chat import Message

MAX_SYSTEM = 20_000
FIELDS = ("system", "temperature", "top_p", "max_tokens")


def _number(value: Any, name: str, code: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"{name} of {code} must be a number.", param="model_settings")
    return float(value)


def _bad(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="model_settings")


def check_one(code: str, raw: Any, bounds: Bounds) -> dict[str, Any]:
    """One model's settings, checked; unset fields left out."""
    if not isinstance(raw, Mapping):
        raise _bad(f"The settings of {code} must be an object.")
    unknown = set(raw) - set(FIELDS)
    if unknown:
        raise _bad(f"Unknown setting {sorted(unknown)[0]!r}: use {', '.join(FIELDS)}.")
    out: dict[str, Any] = {}
    system = raw.get("system")
    if system is not None:
        if not isinstance(system, str):
            raise _bad(f"The system prompt of {code} must be text.")
        if len(system) > MAX_SYSTEM:
            raise _bad(f"The system prompt is too long (at most {MAX_SYSTEM} characters).")
        if system.strip():
            out["system"] = system
    for name, (low, high), limit in (
        ("temperature", TEMPERATURE_RANGE, bounds.temperature),
        ("top_p", TOP_P_RANGE, bounds.top_p),
    ):
        value = raw.get(name)
        if value is None:
            continue
        number = _number(value, name, code)
        if not low <= number <= high or (name == "top_p" and number == 0):
            raise _bad(f"{name} must be between {low:g} and {high:g}, not {number:g}.")
        if limit is not None and number > limit:
            raise _bad(f"Your group allows {name} up to {limit:g}, not {number:g}.")
        out[name] = number
    tokens = raw.get("max_tokens")
    if tokens is not None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise _bad(f"max_tokens of {code} must be a whole number of at least 1.")
        cap = bounds.max_tokens if bounds.max_tokens is not None else MAX_TOKENS_CAP
        if tokens > cap:
            raise _bad(f"Your group allows at most {cap} tokens, not {tokens}.")
        out["max_tokens"] = tokens
    return out


def check_settings(raw: Any, models: Iterable[str], bounds: Bounds) -> dict[str, dict[str, Any]]:
    """Every model's settings for a room with ``models``; models without any left out."""
    if not isinstance(raw, Mapping):
        raise _bad("model_settings must be an object of model codes.")
    codes = set(models)
    out: dict[str, dict[str, Any]] = {}
    for code, settings in raw.items():
        if code not in codes:
            raise _bad(f"{code!r} is not a model of this room.")
        checked = check_one(str(code), settings, bounds)
        if checked:
            out[str(code)] = checked
    return out


def apply(request: ChatRequest, settings: Mapping[str, Any] | None) -> ChatRequest:
    """The request with a model's room settings: its system prompt first, its parameters."""
    if not settings:
        return request
    messages = request.messages
    if settings.get("system"):
        messages = (Message("system", str(settings["system"])), *messages)
    params = request.params
    changes = {
        name: settings[name] for name in ("temperature", "top_p", "max_tokens") if name in settings
    }
    if changes:
        params = replace(params, **changes)
    return replace(request, messages=messages, params=params)
