"""Kuwa's chat-file formats: the rows, their rules and errors, and writing them (JSON, TSV).

The formats are the contract of the original Kuwa GenAI OS, so its files import unchanged:

* JSON: ``{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "model":
  ACCESS_CODE, "content": ..., "chain": true}, ...]}``; a top-level list of messages is
  accepted too.
* TSV: header ``role<TAB>model<TAB>content<TAB>chain`` (any column order, unknown columns
  ignored); inside content ``\\t``, ``\\n`` and ``\\\\`` stand for a tab, a newline and a
  backslash. Four spaces count as a tab on a line that has no real tab.
* A text file whose first non-blank line is not such a header is a prompt list: every
  non-blank line is one user prompt, verbatim.

Reading them, streamed row by row, is ``kuwa.rooms.formats_parser``. Pure module: no
database, no web.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kuwa.errors import InvalidRequestError

__all__ = [
    "DEFAULT_MAX_CONTENT",
    "DEFAULT_MAX_ROWS",
    "FormatError",
    "Row",
    "escape_tsv",
    "export_json",
    "export_tsv",
    "unescape_tsv",
]

DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_CONTENT = 200_000

ROLES = ("user", "assistant")
TSV_HEADER = ("role", "model", "content", "chain")

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_ESCAPES = {"t": "\t", "n": "\n", "\\": "\\", "r": "\r"}


class FormatError(InvalidRequestError):
    """An import file breaks the format; ``line`` and ``column`` are 1-based."""

    code = "import_format"

    def __init__(self, reason: str, *, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {reason}", code="import_format")
        self.reason = reason
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Row:
    role: str  # "user" | "assistant"
    content: str
    model: str | None = None
    chain: bool | None = None
    line: int = 0  # where it was read (1-based), 0 when built in code
    citations: list[dict[str, Any]] | None = None  # an answer's cited passages (JSON export)


# --------------------------------------------------------------------------- escapes


def escape_tsv(text: str) -> str:
    """Backslash first, then tab, newline and carriage return."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def unescape_tsv(text: str, *, line: int = 0, column: int = 0) -> str:
    """Undo :func:`escape_tsv`; ``column`` is where ``text`` starts in its line (1-based).

    An unknown escape (``\\q``) or a lone trailing backslash raises :class:`FormatError`
    at the backslash's position.
    """
    if "\\" not in text:
        return text
    base = column or 1
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find("\\", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if j + 1 >= n:
            raise FormatError("unfinished escape '\\' at end of field", line=line, column=base + j)
        char = text[j + 1]
        replacement = _ESCAPES.get(char)
        if replacement is None:
            raise FormatError(
                f"unknown escape '\\{char}' (use \\t, \\n or \\\\)", line=line, column=base + j
            )
        out.append(replacement)
        i = j + 2
    return "".join(out)


# --------------------------------------------------------------------------- rules for readers


def parse_chain(value: str) -> bool | None:
    """``true``/``false``, 1/0, yes/no (any case); empty = not given; else ValueError."""
    folded = value.strip().lower()
    if not folded:
        return None
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError(value)


def json_chain(value: object) -> bool | None:
    """JSON ``chain``: a boolean or null; the TSV spellings and 0/1 are tolerated."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return parse_chain(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(value)


class Limits:
    """How many rows and how long a content one file may have (counted while reading)."""

    __slots__ = ("count", "max_content", "max_rows")

    def __init__(self, max_rows: int, max_content: int) -> None:
        self.max_rows = max_rows
        self.max_content = max_content
        self.count = 0

    def content(self, content: str, line: int, column: int) -> None:
        if len(content) > self.max_content:
            raise FormatError(
                f"content is {len(content)} characters long, more than {self.max_content}",
                line=line,
                column=column,
            )

    def row(self, line: int) -> None:
        self.count += 1
        if self.count > self.max_rows:
            raise FormatError(f"more than {self.max_rows} rows", line=line, column=1)


# --------------------------------------------------------------------------- export


def _json_message(row: Row) -> dict[str, Any]:
    if row.role != "assistant":
        return {"role": row.role, "content": row.content}
    message: dict[str, Any] = {"role": "assistant"}
    if row.model is not None:
        message["model"] = row.model
    message["content"] = row.content
    if row.chain is not None:
        message["chain"] = row.chain
    if row.citations:
        message["citations"] = row.citations
    return message


def export_json(
    rows: Iterable[Row],
    files: list[dict[str, Any]] | None = None,
    model_settings: Mapping[str, Any] | None = None,
) -> bytes:
    """``{"messages": [...]}``, indented 2, UTF-8 (not ASCII-escaped), trailing newline; with
    ``files``, the room's documents after the messages (``"files": [...]``), and with the
    room's ``model_settings`` (``{code: {...}}``) when it has any."""
    document: dict[str, Any] = {"messages": [_json_message(row) for row in rows]}
    if files:
        document["files"] = files
    if model_settings:
        document["model_settings"] = dict(model_settings)
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def export_tsv(rows: Iterable[Row]) -> str:
    """Header ``role model content chain`` and one escaped line per row."""
    out = ["\t".join(TSV_HEADER) + "\n"]
    for row in rows:
        if row.role == "assistant":
            model = row.model or ""
            chain = "" if row.chain is None else ("true" if row.chain else "false")
        else:
            model = chain = ""
        out.append(f"{row.role}\t{model}\t{escape_tsv(row.content)}\t{chain}\n")
    return "".join(out)
