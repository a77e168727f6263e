"""Kuwa chat-file formats: JSON / TSV / prompt lists, streaming, errors with positions."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from kuwa.errors import InvalidRequestError
from kuwa.rooms.formats import (
    DEFAULT_MAX_CONTENT,
    DEFAULT_MAX_ROWS,
    FormatError,
    Row,
    escape_tsv,
    export_json,
    export_tsv,
    unescape_tsv,
)
from kuwa.rooms.formats_parser import parse, parse_json, parse_text

TRICKY = [
    Row("user", "tab\there\nnewline and a backslash \\ and a literal \\n and \\t"),
    Row("assistant", "中文回答 😀 emoji", model="taide", chain=True),
    Row("user", ""),
    Row("assistant", "", model="gpt-4o", chain=False),
    Row("user", "ends with backslash \\"),
    Row("assistant", "code:\n    indented    four\r\nspaces", model="llama", chain=None),
]


def _strip_lines(rows: list[Row]) -> list[Row]:
    return [Row(r.role, r.content, r.model, r.chain) for r in rows]


def _text(text: str, **kwargs: int) -> list[Row]:
    return list(parse_text(io.StringIO(text), **kwargs))


def _bytes(data: bytes, **kwargs: int) -> list[Row]:
    return list(parse(io.BytesIO(data), **kwargs))


def _error(call: object) -> FormatError:
    assert callable(call)
    with pytest.raises(FormatError) as info:
        call()
    return info.value


# --------------------------------------------------------------------------- round trips


def test_a_body_said_to_be_json_must_be_json() -> None:
    assert [r.content for r in parse(io.BytesIO(b"false"))] == ["false"]  # a prompt, as text
    with pytest.raises(InvalidRequestError, match="must be Kuwa's JSON"):
        list(parse(io.BytesIO(b"false"), json_only=True))
    rows = list(parse(io.BytesIO(b'[{"role": "user", "content": "hi"}]'), json_only=True))
    assert [r.content for r in rows] == ["hi"]


def test_defaults() -> None:
    assert DEFAULT_MAX_ROWS == 10_000
    assert DEFAULT_MAX_CONTENT == 200_000


def test_json_round_trip() -> None:
    data = export_json(TRICKY)
    assert data.endswith(b"}\n")
    assert "中文回答 😀".encode() in data  # ensure_ascii=False
    doc = json.loads(data)
    assert doc["messages"][0] == {"role": "user", "content": TRICKY[0].content}
    assert "chain" not in doc["messages"][5]
    rows = list(parse_json(io.BytesIO(data)))
    assert _strip_lines(rows) == TRICKY
    assert export_json(rows) == data
    assert _strip_lines(_bytes(data)) == TRICKY  # through the dispatcher too


def test_tsv_round_trip() -> None:
    text = export_tsv(TRICKY)
    lines = text.split("\n")
    assert lines[0] == "role\tmodel\tcontent\tchain"
    assert lines[1] == (
        "user\t\ttab\\there\\nnewline and a backslash \\\\ and a literal \\\\n and \\\\t\t"
    )
    assert lines[2] == "assistant\ttaide\t中文回答 😀 emoji\ttrue"
    assert lines[3] == "user\t\t\t"
    assert len(lines) == len(TRICKY) + 2 and lines[-1] == ""
    rows = _text(text)
    assert _strip_lines(rows) == TRICKY
    assert [r.line for r in rows] == [2, 3, 4, 5, 6, 7]
    assert export_tsv(rows) == text
    assert export_tsv(_bytes(text.encode())) == text


def test_escape_literal_backslash_n() -> None:
    assert escape_tsv("a\\nb") == "a\\\\nb"
    assert unescape_tsv("a\\\\nb") == "a\\nb"
    assert unescape_tsv("a\\nb") == "a\nb"
    assert unescape_tsv(escape_tsv("\\\t\n\\\\n")) == "\\\t\n\\\\n"


# --------------------------------------------------------------------------- Kuwa fixtures


def test_kuwa_tsv_other_order_four_spaces_crlf_blank_lines() -> None:
    data = (
        b"\r\n"
        b"content    role    chain    model    extra\r\n"
        b"hello\\tworld    user\r\n"
        b"\r\n"
        b"   \r\n"
        b"answer\\nline two    assistant    TRUE    taide    ignored\r\n"
        b"second    assistant    0    taide\r\n"
        b"no role column given\r\n"
    )
    assert _bytes(data) == [
        Row("user", "hello\tworld", line=3),
        Row("assistant", "answer\nline two", model="taide", chain=True, line=6),
        Row("assistant", "second", model="taide", chain=False, line=7),
        Row("user", "no role column given", line=8),
    ]


def test_tsv_chain_spellings_and_missing_role_column() -> None:
    text = "model\tcontent\tchain\tROLE\n\ta\t\t\nm\tb\tYes\tassistant\nm\tc\tno\tAssistant\n"
    assert _text(text) == [
        Row("user", "a", line=2),
        Row("assistant", "b", model="m", chain=True, line=3),
        Row("assistant", "c", model="m", chain=False, line=4),
    ]
    assert _text("content\nonly content\n") == [Row("user", "only content", line=2)]


def test_kuwa_json_file() -> None:
    data = b"""\xef\xbb\xbf
{
  "messages": [
    {"role": "user", "content": "What is Kuwa?"},
    {"role": "assistant", "model": "taide", "content": "An OS for GenAI.", "chain": false},
    {"role": "user", "content": "\\u4e2d\\u6587 and a\\ttab"},
    {"role": "assistant", "model": "gemini", "content": "ok", "chain": true}
  ],
  "other": {"ignored": [1, 2]}
}
"""
    assert _bytes(data) == [
        Row("user", "What is Kuwa?", line=4),
        Row("assistant", "An OS for GenAI.", model="taide", chain=False, line=5),
        Row("user", "中文 and a\ttab", line=6),
        Row("assistant", "ok", model="gemini", chain=True, line=7),
    ]


def test_json_top_level_list() -> None:
    data = (
        b'  \n[{"role": "user", "content": "hi"},\n'
        b' {"role": "assistant", "model": "m", "content": "yo"}]'
    )
    assert _bytes(data) == [
        Row("user", "hi", line=2),
        Row("assistant", "yo", model="m", line=3),
    ]
    assert list(parse_json(io.BytesIO(b"[]"))) == []
    assert list(parse_json(io.BytesIO(b'{"messages": []}'))) == []


def test_json_minified_one_line() -> None:
    doc = json.loads(export_json(TRICKY))
    data = json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode()
    assert b"\n" not in data
    rows = _bytes(data)
    assert _strip_lines(rows) == TRICKY
    assert {r.line for r in rows} == {1}


# --------------------------------------------------------------------------- prompt lists


def test_headerless_prompt_list_verbatim() -> None:
    text = (
        "first prompt\n\n  \nwith\ta literal tab\n"
        "keeps \\n and \\q verbatim\r\n    indented    prompt\n"
    )
    assert _text(text) == [
        Row("user", "first prompt", line=1),
        Row("user", "with\ta literal tab", line=4),
        Row("user", "keeps \\n and \\q verbatim", line=5),
        Row("user", "    indented    prompt", line=6),
    ]
    assert _bytes(("\ufeff" + text).encode())[0] == Row("user", "first prompt", line=1)


def test_header_only_on_first_non_blank_line() -> None:
    assert _text("hello\nrole\tcontent\n") == [
        Row("user", "hello", line=1),
        Row("user", "role\tcontent", line=2),
    ]
    assert _text("") == []
    assert _bytes(b"") == []
    assert _bytes(b"\n\n  \n") == []


# --------------------------------------------------------------------------- errors


HEADER = "role\tmodel\tcontent\tchain\n"


def test_format_error_shape() -> None:
    err = _error(lambda: _text(HEADER + "user\t\tok\t\nbot\tm\tx\t\n"))
    assert isinstance(err, InvalidRequestError)
    assert (err.line, err.column) == (3, 1)
    assert str(err) == "line 3, column 1: role must be user or assistant, not 'bot'"
    assert err.message == str(err)
    assert err.code == "import_format"
    assert err.status == 400
    assert err.body()["error"]["code"] == "import_format"


def test_unknown_role_column_is_role_column_index() -> None:
    err = _error(lambda: _text("content\tmodel\trole\n\n\nhi\t\tsystem\n"))
    assert (err.line, err.column) == (4, 3)
    assert err.reason == "role must be user or assistant, not 'system'"


def test_assistant_without_model() -> None:
    err = _error(lambda: _text(HEADER + "assistant\t\thi\ttrue\n"))
    assert (err.line, err.column) == (2, 2)
    assert "needs a model" in str(err)
    err = _error(lambda: _text("role\tcontent\nassistant\thi\n"))  # no model column at all
    assert (err.line, err.column) == (2, 1)


def test_unknown_escape_position() -> None:
    err = _error(lambda: _text(HEADER + "user\t\tab\\qc\t\n"))
    assert (err.line, err.column) == (2, 9)
    assert "unknown escape '\\q'" in str(err)
    # four-space separators: the column is still the character position in the line
    err = _error(lambda: _text("role    content\nuser    x\\\n"))
    assert (err.line, err.column) == (2, 10)
    err = _error(lambda: unescape_tsv("ok\\z", line=7, column=5))
    assert (err.line, err.column) == (7, 7)


def test_bad_chain() -> None:
    err = _error(lambda: _text(HEADER + "assistant\tm\thi\tmaybe\n"))
    assert (err.line, err.column) == (2, 4)
    assert err.reason == "chain must be true or false, not 'maybe'"


def test_too_many_and_too_few_fields_are_fine() -> None:
    assert _text(HEADER + "user\n" + "assistant\tm\thi\ttrue\textra\tmore\n") == [
        Row("user", "", line=2),
        Row("assistant", "hi", model="m", chain=True, line=3),
    ]


def test_malformed_json_positions() -> None:
    err = _error(
        lambda: _bytes(b'{"messages": [\n  {"role": "user", "content": "x"},\n  {"role": x}]}')
    )
    assert (err.line, err.column) == (3, 12)
    assert err.reason.startswith("invalid JSON")
    err = _error(lambda: _bytes(b'{"messages": [\n {"role": "user", "content": "x"}'))
    assert (err.line, err.column) == (2, 34)  # premature end: where the file ends
    assert "incomplete" in err.reason.lower()
    err = _error(lambda: _bytes('{"messages": [\n  {"content": "中文"} }'.encode()))
    assert (err.line, err.column) == (2, 21)  # columns count characters, not bytes


def test_json_item_errors() -> None:
    err = _error(lambda: _bytes(b'{"messages": [\n  {"content": "a"},\n  "just a string"\n]}'))
    assert (err.line, err.column) == (3, 3)
    assert err.reason == "message 2 must be an object"
    err = _error(lambda: _bytes(b'[\n  {"role": "user",\n   "text": "no content"}\n]'))
    assert (err.line, err.column) == (2, 3)
    assert err.reason == "message 1 has no content"
    err = _error(lambda: _bytes(b'[{"content": "a"},\n {"content": 5}]'))
    assert (err.line, err.column) == (2, 2)
    assert "content must be a string" in err.reason
    err = _error(lambda: _bytes(b'[\n  {\n    "role": "bot",\n    "content": "x"\n  }\n]'))
    assert (err.line, err.column) == (3, 5)
    assert err.reason == "role must be user or assistant, not 'bot'"
    err = _error(lambda: _bytes(b'[\n {"role": "assistant", "content": "x"}\n]'))
    assert (err.line, err.reason) == (2, "an assistant message needs a model")
    err = _error(
        lambda: _bytes(b'[{"role": "assistant", "model": "m", "content": "x", "chain": 7}]')
    )
    assert (err.line, err.reason) == (1, "chain must be true or false, not 7")
    err = _error(lambda: _bytes(b'{"data": []}\n'))
    assert err.reason == 'no "messages" list'
    err = _error(lambda: _bytes(b'{\n  "messages": {"role": "user"}}'))
    assert (err.line, err.reason) == (2, '"messages" must be a list')


def test_invalid_utf8() -> None:
    err = _error(lambda: _bytes(b"role\tcontent\nuser\tok\nuser\t\xff\xfe\n"))
    assert err.reason == "not valid UTF-8"
    err = _error(lambda: _bytes(b'[{"content": "ok"},\n {"content": "\xff"}]'))
    assert (err.line, err.column, err.reason) == (2, 15, "not valid UTF-8")


# --------------------------------------------------------------------------- streaming


def _collect(rows: Iterator[Row]) -> tuple[list[Row], FormatError]:
    got: list[Row] = []
    with pytest.raises(FormatError) as info:
        for row in rows:
            got.append(row)
    return got, info.value


def test_rows_before_a_bad_line_are_yielded_first() -> None:
    text = HEADER + "user\t\tone\t\nassistant\tm\ttwo\ttrue\nrobot\t\tthree\t\nuser\t\tfour\t\n"
    got, err = _collect(parse_text(io.StringIO(text)))
    assert [r.content for r in got] == ["one", "two"]
    assert err.line == 4
    data = (
        b'[{"content": "one"},\n {"content": "two"},\n'
        b' {"content": "three", "role": 1},\n {"content": "four"}]'
    )
    got, err = _collect(parse(io.BytesIO(data)))
    assert [r.content for r in got] == ["one", "two"]
    assert err.line == 3
    data = b'[{"content": "one"},\n {"content": "two"}, !'
    got, err = _collect(parse(io.BytesIO(data)))
    assert [r.content for r in got] == ["one", "two"]
    assert (err.line, err.column) == (2, 22)


def test_parse_text_is_lazy() -> None:
    pulled = 0

    def lines() -> Iterator[str]:
        nonlocal pulled
        for i in range(1_000_000):
            pulled += 1
            yield f"prompt {i}\n"

    rows = parse_text(lines())
    assert next(rows) == Row("user", "prompt 0", line=1)
    assert pulled == 1


def test_ten_thousand_prompts_bounded_memory() -> None:
    filler = "x" * 500

    def lines() -> Iterator[str]:
        yield HEADER
        for i in range(10_000):
            if i % 2:
                yield f"assistant\tm\tanswer {i} {filler}\\n\ttrue\n"
            else:
                yield f"user\t\tprompt {i} {filler}\\t\t\n"

    tracemalloc.start()
    try:
        count = 0
        total = 0
        for row in parse_text(lines()):
            count += 1
            total += len(row.content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert total > 5_000_000  # the file was bigger than the memory ceiling below
    assert peak < 1_000_000


def test_big_json_bounded_memory() -> None:
    body = b"".join(
        b'  {"role": "user", "content": "prompt %d %s"},\n' % (i, b"y" * 500) for i in range(9_999)
    )
    data = b'{"messages": [\n' + body + b'  {"role": "user", "content": "last"}\n]}\n'
    stream = io.BytesIO(data)
    tracemalloc.start()
    try:
        count = sum(1 for _ in parse(stream))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < 2_000_000 < len(data)


# --------------------------------------------------------------------------- limits


def test_max_rows() -> None:
    text = "".join(f"p{i}\n" for i in range(5))
    assert len(_text(text, max_rows=5)) == 5
    got, err = _collect(parse_text(io.StringIO(text), max_rows=3))
    assert len(got) == 3
    assert (err.line, err.column, err.reason) == (4, 1, "more than 3 rows")
    data = export_json([Row("user", str(i)) for i in range(4)])
    got, err = _collect(parse(io.BytesIO(data), max_rows=2))
    assert len(got) == 2
    assert err.reason == "more than 2 rows"
    assert err.line == 11  # the third message object starts there


def test_max_content() -> None:
    assert _text("12345\n", max_content=5) == [Row("user", "12345", line=1)]
    err = _error(lambda: _text("ok\n123456\n", max_content=5))
    assert (err.line, err.column) == (2, 1)
    assert err.reason == "content is 6 characters long, more than 5"
    # escapes count as the characters they stand for
    assert _text(HEADER + "user\t\t\\n\\n\\n\t\n", max_content=3)[0].content == "\n\n\n"
    err = _error(lambda: _text(HEADER + "user\t\tabcdef\t\n", max_content=5))
    assert (err.line, err.column) == (2, 3)
    err = _error(lambda: _bytes(b'[\n {"content": "abcdef"}]', max_content=5))
    assert err.line == 2
