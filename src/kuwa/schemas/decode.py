"""Request bodies decoded into typed structs (msgspec), and their errors in Kuwa's words.

Every request body is a :class:`msgspec.Struct`: msgspec decodes JSON bytes straight into it,
checking types, bounds and required fields in one pass, and writes its JSON Schema for the
OpenAPI document. A body that does not fit raises :class:`SchemaError`, whose ``param`` names
the field at fault the way clients read it (``messages[2].content``), and whose message says
what was expected in a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

# How msgspec names JSON types, and how an error message says them.
_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}
_AT = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`(?:, got `(?P<got>[^`]+)`)?(?P<bound>.*)$")
_BOUND = re.compile(r"^ (?:of length )?(?P<op>[<>]=?) (?P<value>[-\d.e+]+)$")
_ENUM = re.compile(r"^Invalid (?:enum )?value (?P<value>.+)$")


class SchemaError(ValueError):
    """The request does not match the schema; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _words(kinds: str) -> str:
    names = [k.strip() for k in kinds.split("|") if k.strip() != "null"] or ["null"]
    return " or ".join(_TYPE_WORDS.get(n, n) for n in names)


def schema_error(
    exc: msgspec.ValidationError, messages: Mapping[str, str] | None = None
) -> SchemaError:
    """A msgspec validation error as a :class:`SchemaError` naming the field.

    ``messages`` may give a better sentence for a field (keyed by its param with list
    indexes as ``[]``, e.g. ``messages[].role``); ``{param}`` and ``{value}`` are filled in."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    text, path = match["text"], (match["path"] or "").lstrip(".")
    value = ""
    missing = _MISSING.match(text)
    if missing:
        path = f"{path}.{missing['field']}".lstrip(".")
    enum = _ENUM.match(text)
    if enum and path.endswith(".type") and text.startswith("Invalid value"):
        path = path.removesuffix(".type")  # a tagged union's tag: the part itself is wrong
    if enum:
        value = enum["value"]
    param = path or None
    if param is not None and messages:
        custom = messages.get(re.sub(r"\[\d+\]", "[]", param))
        if custom is not None:
            return SchemaError(custom.format(param=param, value=value), param)
    return SchemaError(_sentence(text, param, missing is not None, value), param)


def _sentence(text: str, param: str | None, missing: bool, value: str) -> str:
    if param is None:
        return "The request body must be a JSON object."
    name = f"'{param}'"
    if missing:
        return f"{name} is required."
    if value:
        return f"{name} may not be {value}."
    expected = _EXPECTED.match(text)
    if expected is None:
        return f"{name}: {text}."
    if expected["got"]:
        got = _TYPE_WORDS.get(expected["got"], expected["got"])
        return f"{name} must be {_words(expected['want'])}, not {got}."
    bound = _BOUND.match(expected["bound"])
    if bound is None:
        return f"{name} must be {_words(expected['want'])}{expected['bound']}."
    n = _number(bound["value"])
    if expected["want"] in ("str", "array", "object"):
        unit = {"str": "character", "array": "item", "object": "field"}[expected["want"]]
        units = unit if n == "1" else unit + "s"
        if bound["op"] == ">=" and n == "1":
            return f"{name} must not be empty."
        most = "at least" if bound["op"].startswith(">") else "at most"
        return f"{name} must have {most} {n} {units}."
    word = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}[bound["op"]]
    return f"{name} must be {word} {n}."


def decode(raw: bytes | bytearray | memoryview | str, type: type[T], **kw: Any) -> T:
    """JSON bytes decoded into ``type``; SchemaError (with ``param``) when they do not fit.

    ``messages`` (keyword) as for :func:`schema_error`."""
    messages = kw.pop("messages", None)
    try:
        result: T = msgspec.json.decode(raw, type=type, **kw)
    except msgspec.ValidationError as exc:
        return whole_numbers(raw, type, exc, messages)
    except msgspec.DecodeError as exc:
        raise SchemaError(f"The request body is not valid JSON: {exc}") from None
    return result


_EXACT = 2**53  # past this, a float no longer spells one integer


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and -_EXACT <= value <= _EXACT:
        return int(value)
    if isinstance(value, list):
        return [_whole(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    return value


def whole_numbers(
    raw: bytes | bytearray | memoryview | str,
    type: type[T],
    exc: msgspec.ValidationError,
    messages: Mapping[str, str] | None = None,
) -> T:
    """A body that failed its strict decoding, read again with whole numbers written as floats
    (``2.0``) taken as integers, as JSON Schema counts them (and pydantic, behind vLLM's own
    server); else the SchemaError. Only on the error path: a good body stays one strict pass."""
    first = schema_error(exc, messages)
    if "got `float`" not in str(exc):
        raise first from None
    try:
        result: T = msgspec.convert(_whole(msgspec.json.decode(raw)), type, strict=True)
    except msgspec.ValidationError as again:
        second = schema_error(again, messages)
        raise (first if second.param == first.param else second) from None
    return result


def convert(obj: Any, type: type[T], *, strict: bool = True, **kw: Any) -> T:
    """Decoded data (a dict from JSON, or a form's strings with ``strict=False``) converted to
    ``type``; SchemaError (with ``param``) when it does not fit."""
    messages = kw.pop("messages", None)
    try:
        result: T = msgspec.convert(obj, type, strict=strict, **kw)
    except msgspec.ValidationError as exc:
        raise schema_error(exc, messages) from None
    return result
