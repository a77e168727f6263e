"""Cutting a document's pages into passages: the pieces that are ranked, put into prompts
and cited. A passage never spans two pages (so its citation names one page), ends at a
paragraph or sentence where it can, and holds at most :data:`MAX_CHARS` characters."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kuwa.documents.extract import Page

MAX_CHARS = 800
MIN_CHARS = 200  # a shorter last piece of a page joins the one before it
_SENTENCE_END = re.compile(r"(?<=[.!?;\u3002\uff01\uff1f\uff1b])\s*")  # CJK full stops too


@dataclass(frozen=True, slots=True)
class Piece:
    page: int | None
    text: str


def split_pages(pages: Iterable[Page], max_chars: int = MAX_CHARS) -> list[Piece]:
    out: list[Piece] = []
    for page in pages:
        out += [Piece(page.number, text) for text in split_text(page.text, max_chars)]
    return out


def split_text(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            units.append(paragraph)
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > max_chars:  # no sentence end in sight: cut hard
                units.append(sentence[:max_chars])
                sentence = sentence[max_chars:]
            if sentence.strip():
                units.append(sentence.strip())
    pieces: list[str] = []
    current = ""
    for unit in units:
        joined = f"{current}\n{unit}" if current else unit
        if len(joined) <= max_chars:
            current = joined
        else:
            pieces.append(current)
            current = unit
    if current:
        if pieces and len(current) < MIN_CHARS and len(pieces[-1]) + len(current) < max_chars * 1.3:
            pieces[-1] = f"{pieces[-1]}\n{current}"
        else:
            pieces.append(current)
    return pieces
