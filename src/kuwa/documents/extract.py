"""Text out of a document, page by page: PDF, DOCX, PPTX, XLSX, CSV, TXT/Markdown and HTML.

Pure reading, no database: it runs in a child process (:mod:`kuwa.documents.sandbox`) with
a time and memory limit, so a hostile file can never stall or exhaust a gateway or a worker.
Nothing in a document is ever run: PDF JavaScript and actions are never looked at (pypdf
only reads the text operators), HTML ``<script>``/``<style>`` content is dropped by a plain
parser that builds no DOM, Office files are read as XML after their zip is checked for bombs.

Libraries: pypdf (pure Python, BSD, actively maintained; no native code to crash on a
malformed file), python-docx, python-pptx and openpyxl (read-only mode streams the rows);
CSV, text and HTML with the standard library.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

KINDS = ("pdf", "docx", "pptx", "xlsx", "csv", "txt", "md", "html")
EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "txt",
    ".text": "txt",
    ".log": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
}
# A zip (DOCX, PPTX, XLSX) may unpack to at most this much, in at most this many members.
ZIP_MAX_UNPACKED = 256 * 1024 * 1024
ZIP_MAX_MEMBERS = 10_000
ZIP_MAX_RATIO = 1000  # unpacked / packed size of one member
NO_TEXT = "No text found in this file (a scan or images only? Kuwa does not read text in images)."
Progress = Callable[[int, int], None]


class ExtractError(Exception):
    """The document cannot be read; ``message`` says why, for the person who uploaded it.
    ``too_large`` marks limits (pages, unpacked size): the upload gets 413."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large


@dataclass(frozen=True, slots=True)
class Page:
    number: int | None  # 1-based page, slide or sheet; None for formats without pages
    text: str


def kind_of(name: str, head: bytes) -> str:
    """The kind of document from its file name and first bytes; :class:`ExtractError` for
    types Kuwa does not read."""
    ext = PurePath(name.lower()).suffix
    kind = EXTENSIONS.get(ext)
    if head.startswith(b"%PDF-"):
        return "pdf"
    if kind is None:
        raise ExtractError(
            f"Kuwa cannot read {ext or 'files without an extension'} files; upload PDF, "
            "DOCX, PPTX, XLSX, CSV, TXT, Markdown or HTML."
        )
    if kind == "pdf":
        raise ExtractError("This is not a PDF file (it does not start with %PDF-).")
    if kind in ("docx", "pptx", "xlsx") and not head.startswith(b"PK"):
        raise ExtractError(f"This is not a {kind.upper()} file (it is not a zip package).")
    return kind


def extract(data: bytes, kind: str, max_pages: int, progress: Progress | None = None) -> list[Page]:
    """The pages of a document with their text (blank pages left out). Raises
    :class:`ExtractError`; a document with no text at all is an error too (:data:`NO_TEXT`)."""
    if kind in ("docx", "pptx", "xlsx"):
        check_zip(data)
    reader = READERS.get(kind)
    if reader is None:
        raise ExtractError(f"unknown document kind {kind!r}")
    report = progress or (lambda done, total: None)
    pages = [Page(p.number, clean(p.text)) for p in reader(data, max_pages, report)]
    pages = [p for p in pages if p.text]
    if not pages:
        raise ExtractError(NO_TEXT)
    return pages


def count_pages(data: bytes, kind: str) -> int:
    """Pages (slides, sheets) of a document, cheaply, to refuse one beyond the limit at once."""
    if kind in ("docx", "pptx", "xlsx"):
        check_zip(data)
    if kind == "pdf":
        return len(_pdf_reader(data).pages)  # type: ignore[attr-defined]
    if kind == "pptx":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return sum(1 for n in zf.namelist() if re.fullmatch(r"ppt/slides/slide\d+\.xml", n))
    if kind == "xlsx":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return sum(1 for n in zf.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n))
    return 1


def check_zip(data: bytes) -> None:
    """Refuse a zip bomb before any library unpacks it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractError(f"The file is damaged (not a readable zip package: {exc}).") from None
    if len(infos) > ZIP_MAX_MEMBERS:
        raise ExtractError(f"The file holds more than {ZIP_MAX_MEMBERS} parts.", too_large=True)
    total = 0
    for info in infos:
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if total > ZIP_MAX_UNPACKED or (info.file_size > 1024 * 1024 and ratio > ZIP_MAX_RATIO):
            raise ExtractError(
                "The file unpacks to far more than it weighs (a zip bomb?); Kuwa does not "
                f"open packages that unpack to more than {ZIP_MAX_UNPACKED // 2**20} MiB.",
                too_large=True,
            )


def clean(text: str) -> str:
    """NFC-normalised text (full-width punctuation kept: the index folds it, NFKC) without
    control characters, runs of blanks squeezed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C")
    text = re.sub(r"[ \t\u3000]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- readers ------------------------------------------------------------------------------
def _too_many(count: int, max_pages: int, what: str = "pages") -> ExtractError:
    return ExtractError(f"The file has {count} {what}; the limit is {max_pages}.", too_large=True)


def _pdf_reader(data: bytes) -> object:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # A PDF locked only against editing opens with the empty password.
            try:
                opened = bool(reader.decrypt(""))
            except Exception:  # pypdf raises several kinds for unknown encryptions
                opened = False
            if not opened:
                raise ExtractError(
                    "The PDF is protected by a password; remove the password and upload it again."
                )
        _ = len(reader.pages)
    except ExtractError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ExtractError(f"The PDF is damaged and cannot be read ({exc}).") from None
    return reader


def _pdf(data: bytes, max_pages: int, progress: Progress) -> Iterator[Page]:
    reader = _pdf_reader(data)
    pages = reader.pages  # type: ignore[attr-defined]
    total = len(pages)
    if total > max_pages:
        raise _too_many(total, max_pages)
    for i, page in enumerate(pages):
        try:
            text = page.extract_text() or ""
        except Exception:  # one broken page: its text is lost, the rest still counts
            text = ""
        progress(i + 1, total)
        yield Page(i + 1, text)


def _docx(data: bytes, max_pages: int, progress: Progress) -> Iterator[Page]:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx: KeyError, ValueError, lxml errors, …
        raise ExtractError(f"The DOCX file is damaged and cannot be read ({exc}).") from None
    lines: list[str] = []
    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append("".join(t.text or "" for t in child.iter() if t.tag.endswith("}t")))
        elif tag == "tbl":
            for row in child.iter():
                if row.tag.endswith("}tr"):
                    cells = [
                        "".join(t.text or "" for t in cell.iter() if t.tag.endswith("}t"))
                        for cell in row
                        if cell.tag.endswith("}tc")
                    ]
                    lines.append(" | ".join(c.strip() for c in cells))
    progress(1, 1)
    yield Page(None, "\n".join(lines))


def _pptx(data: bytes, max_pages: int, progress: Progress) -> Iterator[Page]:
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
        slides = list(deck.slides)
    except Exception as exc:  # python-pptx: KeyError, ValueError, lxml errors, …
        raise ExtractError(f"The PPTX file is damaged and cannot be read ({exc}).") from None
    if len(slides) > max_pages:
        raise _too_many(len(slides), max_pages, "slides")
    for i, slide in enumerate(slides):
        parts: list[str] = []
        for shape in slide.shapes:
            if getattr(shape, "has_text_frame", False):
                parts.append(shape.text_frame.text)
            if getattr(shape, "has_table", False):
                for row in shape.table.rows:
                    parts.append(" | ".join(cell.text for cell in row.cells))
        if slide.has_notes_slide:
            parts.append(slide.notes_slide.notes_text_frame.text)
        progress(i + 1, len(slides))
        yield Page(i + 1, "\n".join(parts))


def _rows_text(rows: Iterator[list[str]]) -> str:
    """Rows as lines; with a header row, each line names its columns (``name: value``)."""
    header: list[str] | None = None
    lines: list[str] = []
    for raw in rows:
        row = [c.strip() for c in raw]
        if not any(row):
            continue
        if header is None:
            header = row
            lines.append(" | ".join(row))
            continue
        pairs = [f"{h}: {v}" if h else v for h, v in zip(header, row, strict=False) if v]
        pairs += [v for v in row[len(header) :] if v]
        lines.append("; ".join(pairs))
    return "\n".join(lines)


def _xlsx(data: bytes, max_pages: int, progress: Progress) -> Iterator[Page]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl: InvalidFileException, KeyError, lxml errors, …
        raise ExtractError(f"The XLSX file is damaged and cannot be read ({exc}).") from None
    sheets = book.worksheets
    if len(sheets) > max_pages:
        raise _too_many(len(sheets), max_pages, "sheets")
    for i, sheet in enumerate(sheets):
        rows = (
            ["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)
        )
        text = _rows_text(rows)
        progress(i + 1, len(sheets))
        yield Page(i + 1, f"{sheet.title}\n{text}" if text else "")
    book.close()


def decode(data: bytes) -> str:
    """Text in UTF-8 (with or without BOM), UTF-16 with BOM, Big5 or, failing those, cp1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    for encoding in ("utf-8-sig", "big5"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("cp1252", errors="replace")


def _csv(data: bytes, max_pages: int, progress: Progress) -> Iterator[Page]:
    text = decode(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], ",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise ExtractError(f"The CSV file cannot be read ({exc}).") from None
    progress(1, 1)
    yield Page(None, _rows_text(iter(rows)))


def _text(data: bytes, max_pages: int, progress: Progress) -> Iterator[Page]:
    progress(1, 1)
    yield Page(None, decode(data))


class _HTMLText(HTMLParser):
    """The visible text of an HTML page: no script, style or other inert containers."""

    SKIP = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg"})
    BLOCK = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
         "article", "table", "ul", "ol", "pre", "blockquote", "title", "header", "footer"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _html(data: bytes, max_pages: int, progress: Progress) -> Iterator[Page]:
    parser = _HTMLText()
    parser.feed(decode(data))
    parser.close()
    progress(1, 1)
    yield Page(None, "".join(parser.parts))


READERS: dict[str, Callable[[bytes, int, Progress], Iterator[Page]]] = {
    "pdf": _pdf,
    "docx": _docx,
    "pptx": _pptx,
    "xlsx": _xlsx,
    "csv": _csv,
    "txt": _text,
    "md": _text,
    "html": _html,
}
