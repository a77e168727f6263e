"""Pure export builders: the room as DOCX, feedback as preference/OpenAI/DPO/CSV data."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import docx
import pytest

from kuwa.rooms.docx_export import DocMessage, room_docx
from kuwa.rooms.exports import (
    CSV_HEADER,
    FeedbackRecord,
    dpo_pairs_jsonl,
    feedback_csv,
    filter_records,
    openai_chat_jsonl,
    preference_jsonl,
    preference_prompt,
)

T0 = dt.datetime(2026, 11, 26, 10, 0)

ANSWER = """# Result *now*

Some **bold** text, *italic* text and `inline code`.

- first
- second
  - nested
1. one
2. two

```python
def f():
    return "<x>"
```

| Name | Score |
|:-----|------:|
| **Ann** | 10 |
| Bob | `7` |

> a wise quote

Literal <tag> & "quotes", 中文字元 and emoji 😀🎉.
"""


def _doc(messages: list[DocMessage] | None = None) -> docx.document.Document:
    if messages is None:
        messages = [
            DocMessage("user", "Alice", None, "Hello **there**", T0),
            DocMessage("assistant", "Echo", "echo", ANSWER, T0 + dt.timedelta(seconds=30)),
        ]
    data = room_docx("Room <1> & co", T0 + dt.timedelta(minutes=5), ["Alice", "Bob"], messages)
    assert zipfile.is_zipfile(io.BytesIO(data))  # a real OOXML package, not renamed HTML
    return docx.Document(io.BytesIO(data))


def _paragraph(document: docx.document.Document, text: str) -> docx.text.paragraph.Paragraph:
    matches = [p for p in document.paragraphs if p.text == text]
    assert len(matches) == 1, [p.text for p in document.paragraphs]
    return matches[0]


def test_docx_title_participants_and_message_headers() -> None:
    document = _doc()
    first = document.paragraphs[0]
    assert first.style.name == "Title"
    assert first.text == "Room <1> & co"
    assert document.core_properties.title == "Room <1> & co"
    assert document.paragraphs[1].text == (
        "Exported 2026-11-26 10:05 UTC · Participants: Alice, Bob"
    )
    alice = _paragraph(document, "Alice · 2026-11-26 10:00")
    assert all(run.bold for run in alice.runs)
    echo = _paragraph(document, "Echo (echo) · 2026-11-26 10:00")
    assert all(run.bold for run in echo.runs)
    texts = [p.text for p in document.paragraphs]
    assert texts.index("Alice · 2026-11-26 10:00") < texts.index("Hello there")
    assert texts.index("Hello there") < texts.index("Echo (echo) · 2026-11-26 10:00")


def test_docx_markdown_structure() -> None:
    document = _doc()
    heading = _paragraph(document, "Result now")
    assert heading.style.name == "Heading 2"  # "#" ranks below the title
    assert [r.italic for r in heading.runs if r.text == "now"] == [True]

    body = _paragraph(document, "Some bold text, italic text and inline code.")
    runs = {run.text: run for run in body.runs}
    assert runs["bold"].bold is True and not runs["bold"].italic
    assert runs["italic"].italic is True and not runs["italic"].bold
    assert runs["inline code"].font.name == "Consolas"
    assert runs["Some "].font.name is None

    styles = {p.text: p.style.name for p in document.paragraphs}
    assert styles["first"] == "List Bullet"
    assert styles["second"] == "List Bullet"
    assert styles["nested"] == "List Bullet 2"
    assert styles["one"] == "List Number"
    assert styles["two"] == "List Number"
    assert styles["a wise quote"] == "Quote"
    assert all(r.italic for r in _paragraph(document, "a wise quote").runs)

    code = _paragraph(document, 'def f():\n    return "<x>"')
    assert [r.font.name for r in code.runs] == ["Consolas"]
    assert code.runs[0].text == 'def f():\n    return "<x>"'  # leading spaces kept

    (table,) = document.tables
    assert [[cell.text for cell in row.cells] for row in table.rows] == [
        ["Name", "Score"],
        ["Ann", "10"],
        ["Bob", "7"],
    ]
    assert all(r.bold for cell in table.rows[0].cells for r in cell.paragraphs[0].runs)
    assert table.rows[1].cells[0].paragraphs[0].runs[0].bold is True
    assert table.rows[2].cells[1].paragraphs[0].runs[0].font.name == "Consolas"
    assert table.rows[1].cells[1].paragraphs[0].alignment == 2  # right-aligned column


def test_docx_text_is_never_markup() -> None:
    document = _doc()
    literal = _paragraph(document, 'Literal <tag> & "quotes", 中文字元 and emoji 😀🎉.')
    assert literal.style.name == "Normal"
    control = _doc([DocMessage("user", "Zoë <z>", None, "bell\x07 <b>&amp;</b>", T0)])
    _paragraph(control, "Zoë <z> · 2026-11-26 10:00")
    # raw HTML stays text, the markdown entity is decoded, the XML-illegal BEL is dropped
    _paragraph(control, "bell <b>&</b>")


def test_docx_numbered_lists_restart_and_links() -> None:
    document = _doc(
        [
            DocMessage(
                "assistant",
                "Echo",
                "echo",
                "1. a\n2. b\n\ntext\n\n3. c\n\n---\n\nSee [docs](https://example.org/x?a=1&b=2)"
                " and [bad](javascript:alert(1)).",
                T0,
            )
        ]
    )
    numbered = [p for p in document.paragraphs if p.style.name == "List Number"]
    ids = [p._p.pPr.numPr.numId.val for p in numbered]
    assert ids[0] == ids[1] != ids[2]  # the second list is a new numbering instance
    numbering = document.part.numbering_part.element
    starts = [
        numbering.num_having_numId(i).xpath("./w:lvlOverride/w:startOverride/@w:val")
        for i in (ids[0], ids[2])
    ]
    assert starts == [["1"], ["3"]]
    see = next(p for p in document.paragraphs if p.text.startswith("See"))
    assert see.text.startswith("See docs and [bad](javascript:alert(1))")
    (link,) = see.hyperlinks
    assert link.text == "docs" and link.url == "https://example.org/x?a=1&b=2"


# --------------------------------------------------------------------------- feedback


def _record(**kw: object) -> FeedbackRecord:
    base: dict[str, object] = {
        "room_id": 1,
        "prompt_id": 10,
        "answer_id": 100,
        "model": "echo",
        "history": [],
        "prompt": "What is 2+2?",
        "answer": "4",
        "rating": 1,
        "flags": [],
        "comment": "",
        "user": "ann@example.org",
        "created": T0,
        "deleted": False,
    }
    base.update(kw)
    return FeedbackRecord(**base)  # type: ignore[arg-type]


CHAINED = _record(
    prompt_id=12,
    answer_id=120,
    history=[("user", "Hi"), ("assistant", "Hello! 你好"), ("user", "Name?"), ("assistant", "E")],
    prompt="And 2+2?",
    answer="Four",
    rating=-1,
    flags=["incorrect", "language"],
    comment='Wrong, "really",\nsee line 2',
    deleted=True,
    created=dt.datetime(2026, 11, 26, 19, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))),
)
UNRATED = _record(answer_id=101, model="other", rating=0, answer="5")


def test_preference_prompt_joining() -> None:
    assert preference_prompt(_record()) == "Human: What is 2+2?\n\nAssistant:"
    assert preference_prompt(CHAINED) == (
        "Human: Hi\n\nAssistant: Hello! 你好\n\nHuman: Name?\n\nAssistant: E"
        "\n\nHuman: And 2+2?\n\nAssistant:"
    )


def test_preference_jsonl() -> None:
    lines = list(preference_jsonl([_record(), UNRATED, CHAINED]))
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert [json.loads(line) for line in lines] == [
        {
            "prompt": "Human: What is 2+2?\n\nAssistant:",
            "response": "4",
            "chosen": "4",
            "rejected": "",
        },
        {  # soft-deleted, still exported
            "prompt": "Human: Hi\n\nAssistant: Hello! 你好\n\nHuman: Name?\n\nAssistant: E"
            "\n\nHuman: And 2+2?\n\nAssistant:",
            "response": "Four",
            "chosen": "",
            "rejected": "Four",
        },
    ]
    assert "你好" in lines[1]  # UTF-8, not \u escapes


def test_openai_chat_jsonl_liked_only() -> None:
    liked_chain = _record(
        answer_id=130, history=[("user", "Hi"), ("assistant", "Hello")], prompt="Bye", answer="Bye!"
    )
    lines = list(openai_chat_jsonl([_record(), UNRATED, CHAINED, liked_chain]))
    assert [json.loads(line) for line in lines] == [
        {
            "messages": [
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "4"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Bye!"},
            ]
        },
    ]


def test_dpo_pairs() -> None:
    history = [("user", "Hi"), ("assistant", "Hello")]
    good = _record(answer_id=200, prompt_id=20, model="a", history=history, answer="good")
    bad = _record(answer_id=201, prompt_id=20, model="b", rating=-1, answer="bad")
    records = [
        good,
        bad,
        # the same pair rated the same way by a second user: written once
        _record(answer_id=200, prompt_id=20, model="a", user="bob@x", answer="good"),
        _record(answer_id=201, prompt_id=20, model="b", user="bob@x", rating=-1, answer="bad"),
        # same model on both sides (regenerated version): no pair
        _record(answer_id=300, prompt_id=30, model="a", answer="v1"),
        _record(answer_id=301, prompt_id=30, model="a", rating=-1, answer="v2"),
        # liked and disliked by different users: no pair
        _record(answer_id=400, prompt_id=40, model="a", user="ann@x", answer="x"),
        _record(answer_id=401, prompt_id=40, model="b", user="bob@x", rating=-1, answer="y"),
        # unrated answer of a third model: ignored
        _record(answer_id=202, prompt_id=20, model="c", rating=0, answer="meh"),
    ]
    assert [json.loads(line) for line in dpo_pairs_jsonl(records)] == [
        {
            "prompt": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "What is 2+2?"},
            ],
            "chosen": "good",
            "rejected": "bad",
            "chosen_model": "a",
            "rejected_model": "b",
        }
    ]


def test_feedback_csv_round_trip() -> None:
    chunks = list(feedback_csv([_record(), CHAINED, UNRATED]))
    assert len(chunks) == 4  # header + one chunk per record, for streaming
    assert chunks[0] == ",".join(CSV_HEADER) + "\r\n"
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert rows == [
        list(CSV_HEADER),
        [
            "1",
            "10",
            "100",
            "echo",
            "ann@example.org",
            "2026-11-26T10:00:00Z",
            "1",
            "",
            "",
            "false",
            "What is 2+2?",
            "4",
        ],
        [
            "1",
            "12",
            "120",
            "echo",
            "ann@example.org",
            "2026-11-26T11:00:00Z",  # +08:00 converted to UTC
            "-1",
            "incorrect;language",
            'Wrong, "really",\nsee line 2',
            "true",
            "And 2+2?",
            "Four",
        ],
        [
            "1",
            "10",
            "101",
            "other",
            "ann@example.org",
            "2026-11-26T10:00:00Z",
            "0",
            "",
            "",
            "false",
            "What is 2+2?",
            "5",
        ],
    ]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [100, 120, 101]),
        ({"models": {"other"}}, [101]),
        ({"rating": -1}, [120]),
        ({"rating": 0}, [101]),
        ({"since": T0 + dt.timedelta(minutes=1)}, [120]),
        ({"until": T0 + dt.timedelta(hours=1)}, [100, 101]),  # exclusive; CHAINED is at 11:00
        ({"until": dt.datetime(2026, 11, 26, 11, 0, 1, tzinfo=dt.UTC)}, [100, 120, 101]),
        ({"models": {"echo"}, "since": T0, "rating": 1}, [100]),
        ({"include_deleted": False}, [100, 101]),
    ],
)
def test_filter_records(kwargs: dict[str, object], expected: list[int]) -> None:
    records = [_record(), CHAINED, UNRATED]
    got = filter_records(records, **kwargs)  # type: ignore[arg-type]
    assert [r.answer_id for r in got] == expected
