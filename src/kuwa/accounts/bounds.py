"""What a group lets its members' requests ask for: the highest temperature, top-p and
number of tokens to generate (``None``: no bound of the group's own).

Every job a member starts, from the API or a room, is clamped to them
(:meth:`Bounds.clamp`); a room's model settings are checked against them when saved
(:func:`kuwa.rooms.model_settings.check_settings`). An executor's ``--rules`` file may bound
its model further (docs/rules.md); the tighter bound wins, each where it applies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from kuwa.errors import InvalidRequestError
from kuwa.schemas import GenerationParams

# What any request may ask for at all (OpenAI's ranges; max_tokens a sanity cap).
TEMPERATURE_RANGE = (0.0, 2.0)
TOP_P_RANGE = (0.0, 1.0)
MAX_TOKENS_CAP = 1_000_000


@dataclass(frozen=True, slots=True)
class Bounds:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}

    def clamp(self, params: GenerationParams) -> GenerationParams:
        """``params`` within the bounds. An unset value counts as OpenAI's default (1 for
        temperature and top-p), so a bound below it is set; an unset max_tokens gets the
        group's maximum."""
        changes: dict[str, Any] = {}
        temperature = 1.0 if params.temperature is None else params.temperature
        if self.temperature is not None and temperature > self.temperature:
            changes["temperature"] = self.temperature
        top_p = 1.0 if params.top_p is None else params.top_p
        if self.top_p is not None and top_p > self.top_p:
            changes["top_p"] = self.top_p
        if self.max_tokens is not None and (
            params.max_tokens is None or params.max_tokens > self.max_tokens
        ):
            changes["max_tokens"] = self.max_tokens
        return replace(params, **changes) if changes else params


def check_bounds(temperature: float | None, top_p: float | None, max_tokens: int | None) -> Bounds:
    """A group's bounds as an administrator gives them, checked against what requests may
    ask for at all."""
    low, high = TEMPERATURE_RANGE
    if temperature is not None and not low <= temperature <= high:
        raise InvalidRequestError(
            f"The highest temperature must be between {low:g} and {high:g}.",
            param="max_temperature",
        )
    low, high = TOP_P_RANGE
    if top_p is not None and not low < top_p <= high:
        raise InvalidRequestError(
            f"The highest top-p must be more than {low:g} and at most {high:g}.",
            param="max_top_p",
        )
    if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS_CAP:
        raise InvalidRequestError(
            f"The most tokens must be between 1 and {MAX_TOKENS_CAP}.", param="max_tokens"
        )
    return Bounds(temperature, top_p, max_tokens)
