"""A room's conversation as a Word document, over plain data (no database, no web layer).

The message markdown is parsed with markdown-it-py using the same options as the web UI
(``commonmark`` + GFM tables + strikethrough, raw HTML off, soft breaks as spaces) and the
token stream is turned into real Word structure: headings one level below their markdown
level (``#`` → *Heading 2*, so nothing outranks the *Title*), *List Bullet*/*List Number*
styles (``2``/``3`` variants for nesting, each numbered list restarting at its own start),
fenced/indented code as shaded Consolas paragraphs, inline code in Consolas, bold, italic,
strike-through, hyperlinks (http, https and mailto only), block quotes as indented italic
*Quote* paragraphs, pipe tables as *Table Grid* tables with a repeating bold header row,
horizontal rules as bottom borders. Text is only ever passed to python-docx as strings
(it escapes), after dropping the few code points XML 1.0 cannot carry at all.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import docx
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Inches, Pt, RGBColor
from docx.text.paragraph import Paragraph
from docx.text.run import Run
from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = ["DocMessage", "room_docx"]

MONOSPACE = "Consolas"
CODE_SHADE = "F2F2F2"
# Characters XML 1.0 cannot represent even escaped (lxml refuses them): C0 controls other
# than tab/newline/CR, lone surrogates, U+FFFE/U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_ALIGN = {
    "text-align:left": WD_ALIGN_PARAGRAPH.LEFT,
    "text-align:center": WD_ALIGN_PARAGRAPH.CENTER,
    "text-align:right": WD_ALIGN_PARAGRAPH.RIGHT,
}


@dataclass(frozen=True, slots=True)
class DocMessage:
    """One message of a room, in display order."""

    role: str  # user | assistant
    author: str  # the user's name, or the model's name
    model: str | None  # access code for answers
    content: str  # markdown
    created: dt.datetime


def _utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _markdown() -> MarkdownIt:
    # Same as the UI (static/js/markdown.js): no raw HTML, soft breaks are spaces.
    return MarkdownIt("commonmark", {"html": False, "breaks": False}).enable(
        ["table", "strikethrough"]
    )


def _stamp(value: dt.datetime) -> str:
    return _utc(value).strftime("%Y-%m-%d %H:%M")


# Word rejects properties out of schema order, so new children go before their successors.
_PPR_AFTER_SHD = (
    "w:tabs", "w:suppressAutoHyphens", "w:kinsoku", "w:wordWrap", "w:overflowPunct",
    "w:topLinePunct", "w:autoSpaceDE", "w:autoSpaceDN", "w:bidi", "w:adjustRightInd",
    "w:snapToGrid", "w:spacing", "w:ind", "w:contextualSpacing", "w:mirrorIndents",
    "w:suppressOverlap", "w:jc", "w:textDirection", "w:textAlignment", "w:textboxTightWrap",
    "w:outlineLvl", "w:divId", "w:cnfStyle", "w:rPr", "w:sectPr", "w:pPrChange",
)  # fmt: skip
_RPR_AFTER_SHD = (
    "w:fitText", "w:vertAlign", "w:rtl", "w:cs", "w:em", "w:lang", "w:eastAsianLayout",
    "w:specVanish", "w:oMath",
)  # fmt: skip


def _shade_paragraph(paragraph: Paragraph, fill: str) -> None:
    _shade(paragraph._p.get_or_add_pPr(), fill, _PPR_AFTER_SHD)


def _shade_run(run: Run, fill: str) -> None:
    _shade(run._r.get_or_add_rPr(), fill, _RPR_AFTER_SHD)


def _shade(properties: Any, fill: str, successors: tuple[str, ...]) -> None:
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), fill)
    properties.insert_element_before(shd, *successors)


def _monospace(run: Run) -> None:
    run.font.name = MONOSPACE
    rpr = run._r.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), MONOSPACE)


@dataclass(slots=True)
class _ListLevel:
    ordered: bool
    depth: int  # 1-based nesting among lists
    num_id: int | None = None  # ordered lists: a numbering instance that restarts at `start`


@dataclass(slots=True)
class _Table:
    rows: list[list[tuple[Token | None, str]]] = field(default_factory=list)
    header_rows: int = 0
    in_head: bool = False


class _DocxWriter:
    """Walks markdown-it block tokens and appends the matching Word structure."""

    def __init__(self, document: Any) -> None:
        self.doc = document
        self.md = _markdown()

    # -- styles and numbering -------------------------------------------------

    def _style(self, base: str, depth: int) -> str:
        return base if depth <= 1 else f"{base} {min(depth, 3)}"

    def _new_numbering(self, style_name: str, start: int) -> int | None:
        """A fresh numbering instance for an ordered list (so each list restarts)."""
        ppr = self.doc.styles[style_name].element.pPr
        if ppr is None or ppr.numPr is None or ppr.numPr.numId is None:
            return None
        numbering = self.doc.part.numbering_part.element
        base = numbering.num_having_numId(ppr.numPr.numId.val)
        num = numbering.add_num(base.abstractNumId.val)
        num.add_lvlOverride(ilvl=0).add_startOverride(start)
        return int(num.numId)

    # -- inline ------------------------------------------------------------------

    def inline(
        self, paragraph: Paragraph, token: Token | None, *, bold: bool = False, italic: bool = False
    ) -> None:
        children = token.children if token is not None and token.children else []
        state = {"bold": 0, "italic": 0, "strike": 0}
        link: Any = None

        def add(text: str, *, code: bool = False) -> Run:
            run = paragraph.add_run(_clean(text))
            if bold or state["bold"]:
                run.bold = True
            if italic or state["italic"]:
                run.italic = True
            if state["strike"]:
                run.font.strike = True
            if code:
                _monospace(run)
                _shade_run(run, CODE_SHADE)
            if link is not None:
                run.font.underline = True
                run.font.color.rgb = RGBColor(0x05, 0x63, 0xC1)
                link.append(run._r)  # move the run inside the w:hyperlink
            return run

        for child in children:
            kind = child.type
            if kind == "text":
                if child.content:
                    add(child.content)
            elif kind == "code_inline":
                add(child.content, code=True)
            elif kind in ("strong_open", "strong_close"):
                state["bold"] += 1 if kind == "strong_open" else -1
            elif kind in ("em_open", "em_close"):
                state["italic"] += 1 if kind == "em_open" else -1
            elif kind in ("s_open", "s_close"):
                state["strike"] += 1 if kind == "s_open" else -1
            elif kind == "softbreak":
                add(" ")
            elif kind == "hardbreak":
                paragraph.add_run().add_break()
            elif kind == "link_open":
                href = str(child.attrs.get("href", ""))
                if href.lower().startswith(_LINK_SCHEMES):
                    rid = paragraph.part.relate_to(
                        _clean(href), RELATIONSHIP_TYPE.HYPERLINK, is_external=True
                    )
                    link = OxmlElement("w:hyperlink")
                    link.set(qn("r:id"), rid)
                    paragraph._p.append(link)
            elif kind == "link_close":
                link = None
            elif kind == "image":
                alt = child.content or "image"
                src = str(child.attrs.get("src", ""))
                add(f"[{alt}]" if not src else f"[{alt}: {src}]")
            elif child.content:  # html_inline etc. (off): plain text, never markup
                add(child.content)

    # -- blocks ------------------------------------------------------------------

    def paragraph(self, style: str | None = None) -> Paragraph:
        return self.doc.add_paragraph(style=style)  # type: ignore[no-any-return]

    def markdown(self, text: str) -> None:
        tokens = self.md.parse(text)
        lists: list[_ListLevel] = []
        item_started: list[bool] = []  # per open list item: its first paragraph is written
        quote = 0
        table: _Table | None = None
        cell_attr = ""
        heading: int | None = None

        def indent(paragraph: Paragraph, extra: int = 0) -> None:
            level = len(lists) + quote + extra
            if level:
                paragraph.paragraph_format.left_indent = Inches(0.3 * level)

        def block_paragraph() -> tuple[Paragraph, bool]:
            """Paragraph for the current context; True when its runs should be italic."""
            if heading is not None:
                return self.paragraph(f"Heading {min(heading + 1, 9)}"), False
            if lists and item_started and not item_started[-1]:
                item_started[-1] = True
                level = lists[-1]
                base = "List Number" if level.ordered else "List Bullet"
                paragraph = self.paragraph(self._style(base, level.depth))
                if level.num_id is not None:
                    numpr = paragraph._p.get_or_add_pPr().get_or_add_numPr()
                    numpr.get_or_add_numId().val = level.num_id
                    numpr.get_or_add_ilvl().val = 0
                if quote:
                    indent(paragraph)
                return paragraph, quote > 0
            if lists:
                paragraph = self.paragraph(self._style("List Continue", lists[-1].depth))
                if quote:
                    indent(paragraph)
                return paragraph, quote > 0
            if quote:
                paragraph = self.paragraph("Quote")
                indent(paragraph)
                return paragraph, True
            return self.paragraph(), False

        for token in tokens:
            kind = token.type
            if kind == "heading_open":
                heading = int(token.tag[1:])
            elif kind == "heading_close":
                heading = None
            elif kind == "inline":
                if table is not None:
                    if table.rows:
                        table.rows[-1].append((token, cell_attr))
                    continue
                paragraph, italic = block_paragraph()
                self.inline(paragraph, token, italic=italic)
            elif kind in ("bullet_list_open", "ordered_list_open"):
                if item_started and not item_started[-1]:
                    item_started[-1] = True  # "- - a": the outer item has no text of its own
                level = _ListLevel(kind == "ordered_list_open", len(lists) + 1)
                if level.ordered:
                    start = int(str(token.attrs.get("start", 1)))
                    style = self._style("List Number", level.depth)
                    level.num_id = self._new_numbering(style, start)
                lists.append(level)
            elif kind in ("bullet_list_close", "ordered_list_close"):
                lists.pop()
            elif kind == "list_item_open":
                item_started.append(False)
            elif kind == "list_item_close":
                if not item_started.pop():  # an empty item ("-" alone) still shows its marker
                    item_started.append(False)
                    block_paragraph()
                    item_started.pop()
            elif kind == "blockquote_open":
                quote += 1
            elif kind == "blockquote_close":
                quote -= 1
            elif kind in ("fence", "code_block"):
                self.code(token.content, indent)
                if item_started:
                    item_started[-1] = True
            elif kind == "hr":
                self.rule()
            elif kind == "table_open":
                table = _Table()
            elif kind == "thead_open" and table is not None:
                table.in_head = True
            elif kind == "thead_close" and table is not None:
                table.in_head = False
            elif kind == "tr_open" and table is not None:
                table.rows.append([])
                if table.in_head:
                    table.header_rows += 1
            elif kind in ("th_open", "td_open"):
                cell_attr = str(token.attrs.get("style", ""))
            elif kind == "table_close" and table is not None:
                self.table(table)
                table = None
                if item_started:
                    item_started[-1] = True
            elif kind == "html_block" and token.content:  # off; kept as text if enabled
                self.paragraph().add_run(_clean(token.content.rstrip("\n")))

    def code(self, content: str, indent: Any) -> None:
        paragraph = self.paragraph()
        fmt = paragraph.paragraph_format
        fmt.space_before = Pt(4)
        fmt.space_after = Pt(4)
        indent(paragraph, 1)
        _shade_paragraph(paragraph, CODE_SHADE)
        run = paragraph.add_run(_clean(content.removesuffix("\n")))  # \n → w:br, \t → w:tab
        _monospace(run)
        run.font.size = Pt(9)

    def rule(self) -> None:
        paragraph = self.paragraph()
        border = OxmlElement("w:pBdr")
        bottom = OxmlElement("w:bottom")
        for key, value in (("val", "single"), ("sz", "6"), ("space", "1"), ("color", "auto")):
            bottom.set(qn(f"w:{key}"), value)
        border.append(bottom)
        paragraph._p.get_or_add_pPr().insert_element_before(border, "w:shd", *_PPR_AFTER_SHD)

    def table(self, spec: _Table) -> None:
        rows = spec.rows
        columns = max((len(row) for row in rows), default=0)
        if not rows or not columns:
            return
        table = self.doc.add_table(rows=len(rows), cols=columns)
        table.style = self.doc.styles["Table Grid"]
        table.alignment = WD_TABLE_ALIGNMENT.LEFT
        for r, row in enumerate(rows):
            header = r < spec.header_rows
            if header:
                trpr = table.rows[r]._tr.get_or_add_trPr()
                trpr.append(OxmlElement("w:tblHeader"))  # repeat on each page
            for c in range(columns):
                token, attr = row[c] if c < len(row) else (None, "")
                paragraph = table.cell(r, c).paragraphs[0]
                if attr in _ALIGN:
                    paragraph.alignment = _ALIGN[attr]
                self.inline(paragraph, token, bold=header)
        self.paragraph()  # Word merges adjacent tables; keep following content apart


def room_docx(
    title: str,
    exported_at: dt.datetime,
    participants: list[str],
    messages: Sequence[DocMessage],
) -> bytes:
    """The room as a .docx: title, export line, then each message's header line and body.

    Header lines are bold: ``Alice · 2026-11-26 10:00`` for prompts and
    ``Echo (echo) · 2026-11-26 10:00`` for answers (the access code is left out when it is
    missing or equal to the name). Times are UTC (naive values are taken as UTC).
    """
    document = docx.Document()
    document.core_properties.title = _clean(title)
    document.core_properties.created = _utc(exported_at).replace(tzinfo=None)
    writer = _DocxWriter(document)
    document.add_heading(_clean(title), level=0)
    line = f"Exported {_stamp(exported_at)} UTC"
    if participants:
        line += " · Participants: " + ", ".join(participants)
    document.add_paragraph(_clean(line))
    for message in messages:
        who = message.author
        if message.role == "assistant" and message.model and message.model != message.author:
            who = f"{message.author} ({message.model})"
        header = document.add_paragraph()
        header.paragraph_format.space_before = Pt(12)
        header.paragraph_format.keep_with_next = True
        header.add_run(_clean(f"{who} · {_stamp(message.created)}")).bold = True
        writer.markdown(message.content)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
