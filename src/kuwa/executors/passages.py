"""Documents' passages in a prompt: the PASSAGES-TEMPLATE, and the default one in the
language of the person asking.

``{{ .Passages }}`` becomes the numbered passages (``[n] source, page p`` and the text, each a
block), ``{{ .Prompt }}`` the question; only these two are replaced, once, as plain text:
nothing in a template, a passage or a prompt is ever evaluated. Without a template of the
Modelfile's, :data:`DEFAULT_TEMPLATES` asks the model to answer from the passages and cite
``[n]``, in English or Traditional Chinese (zh-TW).

The language is the job's (the web UI's language of the person who sent the prompt, or an
API request's ``Accept-Language``); a job without one gets zh-TW when its question is mostly
written in Chinese characters, else English. The passages' labels speak it too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kuwa.schemas import Passage

LANGUAGES = ("en", "zh-TW")
DEFAULT_TEMPLATES = {
    "en": """Answer the question from the numbered passages below, which come from the \
documents of this chat. Cite each passage you use by its number in square brackets, like [1] \
or [2][3]. If the passages do not hold the answer, say so.

{{ .Passages }}

Question: {{ .Prompt }}""",
    "zh-TW": """請根據下列編號的段落回答問題，這些段落來自本對話的文件。引用段落時，請在方括號中\
標出它的編號，例如 [1] 或 [2][3]。如果段落中沒有答案，請直接說明。

{{ .Passages }}

問題：{{ .Prompt }}""",
}
DEFAULT_TEMPLATE = DEFAULT_TEMPLATES["en"]
_PAGE = {"en": "{source}, page {page}", "zh-TW": "{source}，第 {page} 頁"}
_PLACEHOLDER = re.compile(r"\{\{\s*\.(Passages|Prompt)\s*\}\}")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")


def language_of(tag: str | None, prompt: str) -> str:
    """``en`` or ``zh-TW``: from the BCP 47 ``tag`` when there is one (any Chinese is
    zh-TW), else from the prompt's script."""
    if tag:
        return "zh-TW" if tag.lower().startswith("zh") else "en"
    letters = len(_LETTER.findall(prompt))
    return "zh-TW" if letters and len(_HAN.findall(prompt)) * 2 >= letters else "en"


def format_passages(passages: Sequence[Passage], language: str = "en") -> str:
    """``[n] source, page p`` (or its zh-TW form) and the passage's text, one block each."""
    page = _PAGE.get(language, _PAGE["en"])
    blocks = []
    for p in passages:
        where = page.format(source=p.source, page=p.page) if p.page is not None else p.source
        blocks.append(f"[{p.n}] {where}\n{p.text}")
    return "\n\n".join(blocks)


def render_passages(
    template: str | None, prompt: str, passages: Sequence[Passage], language: str = "en"
) -> str:
    """``template`` (None: the default one in ``language``) with ``{{ .Passages }}`` and
    ``{{ .Prompt }}`` replaced in one pass (a placeholder inside a passage or the prompt stays
    as it is). A template without ``{{ .Prompt }}`` gets the prompt after it; one without
    ``{{ .Passages }}``, the passages before it."""
    if template is None:
        template = DEFAULT_TEMPLATES.get(language, DEFAULT_TEMPLATE)
    values = {"Passages": format_passages(passages, language), "Prompt": prompt}
    names = {m.group(1) for m in _PLACEHOLDER.finditer(template)}
    if "Passages" not in names:
        template = "{{ .Passages }}\n\n" + template
    if "Prompt" not in names:
        template = template + "\n\n{{ .Prompt }}"
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
