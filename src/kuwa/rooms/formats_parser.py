"""Reading Kuwa's chat files (the formats of ``kuwa.rooms.formats``), streamed row by row.

Parsing is lazy: the functions are generators that read one line (JSON: one line or 64 KiB)
at a time and yield each :class:`~kuwa.rooms.formats.Row` as soon as it is complete, so rows
before a bad line have been yielded before :class:`~kuwa.rooms.formats.FormatError` is
raised. :func:`parse` detects the format; :func:`parse_text` reads TSV and prompt lists,
:func:`parse_json` JSON (with ijson). Pure module: no database, no web.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import ijson

from kuwa.rooms.formats import (
    DEFAULT_MAX_CONTENT,
    DEFAULT_MAX_ROWS,
    ROLES,
    FormatError,
    Limits,
    Row,
    json_chain,
    parse_chain,
    unescape_tsv,
)

__all__ = ["parse", "parse_json", "parse_text"]

_TAB = re.compile("\t")
_FOUR_SPACES = re.compile(" {4}")
_JSON_CHUNK = 64 * 1024
_BOM = codecs.BOM_UTF8
_BLANK_BYTES = b" \t\r\n"


# --------------------------------------------------------------------------- text / TSV


def _strip_eol(line: str) -> str:
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    return line


def _split(line: str) -> list[tuple[int, str]]:
    """Fields with their 1-based start column; four spaces separate on a tab-less line."""
    sep = _TAB if "\t" in line else _FOUR_SPACES
    fields: list[tuple[int, str]] = []
    start = 0
    for match in sep.finditer(line):
        fields.append((start + 1, line[start : match.start()]))
        start = match.end()
    fields.append((start + 1, line[start:]))
    return fields


def _header(line: str) -> dict[str, int] | None:
    names = [name.strip().lower() for _, name in _split(line)]
    if "content" not in names:
        return None
    columns: dict[str, int] = {}
    for index, name in enumerate(names):
        columns.setdefault(name, index)
    return columns


def parse_text(
    lines: Iterable[str],
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_content: int = DEFAULT_MAX_CONTENT,
) -> Iterator[Row]:
    """Rows of a TSV with a header, or of a header-less prompt list, one line at a time.

    ``lines`` is any iterable of lines (an open text file, ``io.StringIO``, a generator); it
    is never materialised. Line ends (``\\n``, ``\\r\\n``) and a leading BOM are dropped.
    """
    limits = Limits(max_rows, max_content)
    columns: dict[str, int] | None = None
    decided = False
    for number, raw in enumerate(lines, 1):
        line = _strip_eol(raw)
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if not line.strip():
            continue
        if not decided:
            decided = True
            columns = _header(line)
            if columns is not None:
                continue
        if columns is None:
            limits.content(line, number, 1)
            limits.row(number)
            yield Row("user", line, line=number)
        else:
            row = _tsv_row(line, number, columns, limits)
            limits.row(number)
            yield row


def _tsv_row(line: str, number: int, columns: dict[str, int], limits: Limits) -> Row:
    fields = _split(line)

    def field(name: str) -> tuple[int, str | None]:
        index = columns.get(name)
        if index is None:
            return 0, None
        if index >= len(fields):
            return index + 1, None
        return index + 1, fields[index][1]

    role_col, role_raw = field("role")
    role = (role_raw or "").strip().lower() or "user"
    if role not in ROLES:
        raise FormatError(
            f"role must be user or assistant, not {(role_raw or '').strip()!r}",
            line=number,
            column=role_col,
        )
    content_col, content_raw = field("content")
    content = ""
    if content_raw is not None:
        content = unescape_tsv(content_raw, line=number, column=fields[content_col - 1][0])
    limits.content(content, number, content_col)
    if role == "user":
        return Row("user", content, line=number)
    model_col, model_raw = field("model")
    model = (model_raw or "").strip()
    if not model:
        raise FormatError(
            "an assistant row needs a model", line=number, column=model_col or role_col or 1
        )
    chain_col, chain_raw = field("chain")
    try:
        chain = parse_chain(chain_raw or "")
    except ValueError:
        raise FormatError(
            f"chain must be true or false, not {(chain_raw or '').strip()!r}",
            line=number,
            column=chain_col,
        ) from None
    return Row("assistant", content, model=model, chain=chain, line=number)


# --------------------------------------------------------------------------- JSON


class _Piece:
    __slots__ = ("column", "line", "start", "text")

    def __init__(self, start: int, line: int, column: int, text: str) -> None:
        self.start = start  # char offset of the piece in the decoded document
        self.line = line
        self.column = column  # 1-based column of the piece's first character
        self.text = text

    def first_column(self) -> int:
        """Column of the piece's first non-blank character (where its events most likely are)."""
        stripped = self.text.lstrip(" \t\r\n")
        if not stripped:
            return self.column
        return self.column + len(self.text) - len(stripped)


class _JsonReader:
    """Reads a binary stream in lines (at most 64 KiB each) and keeps their positions."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._first = True
        self.offset = 0
        self.line = 1
        self.column = 1
        self.recent: deque[_Piece] = deque(maxlen=8)
        self.current = _Piece(0, 1, 1, "")

    def read(self) -> bytes:
        data = self._stream.readline(_JSON_CHUNK)
        if self._first:
            self._first = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            good = len(data[: exc.start].decode("utf-8", "ignore"))
            raise FormatError(
                "not valid UTF-8", line=self.line, column=self.column + good
            ) from None
        piece = _Piece(self.offset, self.line, self.column, text)
        self.current = piece
        self.recent.append(piece)
        self.offset += len(text)
        if text.endswith("\n"):
            self.line += 1
            self.column = 1
        else:
            self.column += len(text)
        return data

    def locate(self, offset: int) -> tuple[int, int]:
        for piece in reversed(self.recent):
            if piece.start <= offset:
                return piece.line, piece.column + offset - piece.start
        return self.current.line, self.current.first_column()


_AT = re.compile(r"^(.*) at (\d+)$", re.DOTALL)


def _json_error(exc: Exception, reader: _JsonReader, at_end: bool) -> FormatError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, json.JSONDecodeError):  # a bad string, from the decoder's scanstring
        message = exc.msg
    match = _AT.match(message)
    if match is not None:
        line, column = reader.locate(int(match.group(2)))
        message = match.group(1)
    elif at_end:
        line, column = reader.line, reader.column
    else:
        line, column = reader.current.line, reader.current.first_column()
    message = message[:1].lower() + message[1:]
    return FormatError(f"invalid JSON: {message}", line=line, column=column)


class _JsonRows:
    """Turns positioned ijson events into rows."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.item_prefix: str | None = None
        self.seen_messages = False
        self.index = 0
        self.builder: Any = None
        self.depth = 0
        self.start = (0, 0)
        self.keys: dict[str, tuple[int, int]] = {}

    def event(self, prefix: str, event: str, value: Any, where: tuple[int, int]) -> Row | None:
        if self.item_prefix is None:
            if prefix == "" and event == "start_map":
                self.item_prefix = "messages.item"
            elif prefix == "" and event == "start_array":
                self.item_prefix = "item"
                self.seen_messages = True
            else:
                raise FormatError(
                    'expected {"messages": [...]} or a list of messages',
                    line=where[0],
                    column=where[1],
                )
            return None
        if self.builder is not None:
            if prefix == self.item_prefix and event == "map_key":
                self.keys.setdefault(value, where)
            self.builder.event(event, value)
            if event in ("start_map", "start_array"):
                self.depth += 1
            elif event in ("end_map", "end_array"):
                self.depth -= 1
            if self.depth == 0:
                item = self.builder.value
                self.builder = None
                return self._row(item)
            return None
        if prefix == self.item_prefix:
            self.index += 1
            if event != "start_map":
                raise FormatError(
                    f"message {self.index} must be an object", line=where[0], column=where[1]
                )
            self.builder = ijson.ObjectBuilder()
            self.builder.event(event, value)
            self.depth = 1
            self.start = where
            self.keys = {}
            return None
        if self.item_prefix == "messages.item" and prefix == "messages":
            if event == "start_array":
                self.seen_messages = True
            elif event != "end_array":
                raise FormatError('"messages" must be a list', line=where[0], column=where[1])
        return None

    def _row(self, item: dict[str, Any]) -> Row:
        line, column = self.start

        def at(key: str) -> tuple[int, int]:
            return self.keys.get(key, self.start)

        role = item.get("role", "user")
        if role is None:
            role = "user"
        if not isinstance(role, str) or role.strip().lower() not in ROLES:
            raise FormatError(
                f"role must be user or assistant, not {role!r}",
                line=at("role")[0],
                column=at("role")[1],
            )
        role = role.strip().lower()
        if "content" not in item:
            raise FormatError(f"message {self.index} has no content", line=line, column=column)
        content = item["content"]
        if not isinstance(content, str):
            raise FormatError(
                f"content must be a string, not {type(content).__name__}",
                line=at("content")[0],
                column=at("content")[1],
            )
        self.limits.content(content, *at("content"))
        if role == "user":
            row = Row("user", content, line=line)
        else:
            model = item.get("model")
            if not isinstance(model, str) or not model.strip():
                raise FormatError(
                    "an assistant message needs a model", line=at("model")[0], column=at("model")[1]
                )
            raw_chain = item.get("chain")
            try:
                chain = json_chain(raw_chain)
            except ValueError:
                raise FormatError(
                    f"chain must be true or false, not {raw_chain!r}",
                    line=at("chain")[0],
                    column=at("chain")[1],
                ) from None
            row = Row("assistant", content, model=model.strip(), chain=chain, line=line)
        self.limits.row(line)
        return row


def parse_json(
    stream: BinaryIO,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_content: int = DEFAULT_MAX_CONTENT,
) -> Iterator[Row]:
    """Rows of a Kuwa JSON file, streamed with ijson (a BOM is tolerated).

    Positions: a row's ``line`` is where its object starts; errors from the JSON decoder
    carry its exact position; errors about an item point at the line of the offending key
    (column: first non-blank character of that line).
    """
    backend = ijson.get_backend("python")  # the pure-Python lexer reports error offsets
    events = ijson.sendable_list()
    coro = backend.parse_coro(events)
    reader = _JsonReader(stream)
    rows = _JsonRows(Limits(max_rows, max_content))
    finished = False
    try:
        while True:
            data = reader.read()
            where = (reader.current.line, reader.current.first_column())
            error: Exception | None = None
            try:
                if data:
                    coro.send(data)
                else:
                    finished = True
                    coro.close()
            except (ijson.JSONError, ValueError) as exc:
                finished = True
                error = exc
            for prefix, event, value in events:
                row = rows.event(prefix, event, value, where)
                if row is not None:
                    yield row
            del events[:]
            if error is not None:
                raise _json_error(error, reader, at_end=not data)
            if not data:
                break
    finally:
        if not finished:  # stopped early (an error in a row, or the caller let go)
            with contextlib.suppress(Exception):  # an unfinished document, on purpose
                coro.close()
    if not rows.seen_messages:
        raise FormatError('no "messages" list', line=reader.line, column=reader.column)


# --------------------------------------------------------------------------- dispatch


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``; closing it leaves ``stream`` open."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def _text_lines(wrapper: io.TextIOWrapper) -> Iterator[str]:
    number = 0
    try:
        for line in wrapper:
            number += 1
            yield line
    except UnicodeDecodeError:
        raise FormatError("not valid UTF-8", line=number + 1, column=1) from None


def parse(
    stream: BinaryIO,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_content: int = DEFAULT_MAX_CONTENT,
    json_only: bool = False,
) -> Iterator[Row]:
    """Detect the format (first non-blank byte ``{`` or ``[`` → JSON, else text) and parse.

    ``json_only``: the sender said it is JSON (``Content-Type: application/json``), so
    anything but Kuwa's JSON (an object or a list) is refused rather than read as text."""
    head = b""
    first = b""
    while True:
        chunk = stream.read(4096)
        if not chunk:
            break
        head += chunk
        body = head[len(_BOM) :] if head.startswith(_BOM) else head
        stripped = body.lstrip(_BLANK_BYTES)
        if stripped:
            first = stripped[:1]
            break
    buffered = io.BufferedReader(_Prefixed(head, stream))
    if first in (b"{", b"["):
        yield from parse_json(buffered, max_rows=max_rows, max_content=max_content)
        return
    if json_only:
        raise FormatError(
            "a JSON import must be Kuwa's JSON: an object or a list", line=1, column=1
        )
    wrapper = io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="\n")
    try:
        yield from parse_text(_text_lines(wrapper), max_rows=max_rows, max_content=max_content)
    finally:
        wrapper.detach()
