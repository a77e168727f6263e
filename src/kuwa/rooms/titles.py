"""A room's title from its first prompt: plain text, never the prompt's markdown.

A prompt such as ``| fruit | price |\\n|---|---|\\n| apple | 3 |`` titled its room with the
table's pipes and dashes; the title is the text a reader sees instead ("fruit price apple 3"):
emphasis, links, headings, list and quote markers and table rules go, inline code keeps its
text. A prompt that is only a code block is titled by its code.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

TITLE_LENGTH = 60

_parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def _inline_text(token: Token) -> list[str]:
    words: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            words.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            words.append(" ")
        elif child.type == "image":
            words.extend(_inline_text(child))
    return words


def plain_text(markdown: str) -> str:
    """The words of ``markdown`` as a reader sees them, on one line."""
    tokens = _parser.parse(markdown)
    parts: list[str] = []
    code: list[str] = []
    for token in tokens:
        if token.type == "inline":
            parts.append("".join(_inline_text(token)))
        elif token.type in ("fence", "code_block"):
            code.append(token.content)
    text = " ".join(" ".join(parts).split())
    return text or " ".join(" ".join(code).split())


def make_title(prompt: str) -> str:
    """At most TITLE_LENGTH characters of the prompt's plain text (an ellipsis when cut)."""
    words = plain_text(prompt) or " ".join(prompt.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1].rstrip() + "…"
