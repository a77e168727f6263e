"""The UI's words in its languages (en, zh-TW) for server-rendered pages.

The strings are the chat page's catalogs (``static/i18n/{lang}.json``), so a page and its
scripts speak the same words; ``t`` in every template is a :class:`Words`. A key may have
plural forms (``KEY_one``; Chinese has none), picked by the count ``n``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

import orjson

LANGS = ("en", "zh-TW")


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """The UI strings of ``lang`` alone (the files the chat page reads)."""
    folder = resources.files("kuwa.web").joinpath("static", "i18n")
    words: dict[str, str] = orjson.loads(folder.joinpath(f"{lang}.json").read_bytes())
    return words


@functools.cache
def _english_index() -> dict[str, str]:
    """English text -> its key (the first key with that text), for :meth:`Words.message`."""
    index: dict[str, str] = {}
    for key, text in catalog("en").items():
        index.setdefault(text, key)
    return index


_PLACEHOLDER = re.compile(r"\\\{(\w+)\\\}")


@functools.cache
def _english_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """English texts with ``{name}`` values as patterns (the longest first), so a message
    made with values (``f"Saved {name}."``) finds its key too."""
    found = []
    for key, text in catalog("en").items():
        if "{" not in text or key.endswith("_one"):
            continue
        pattern = _PLACEHOLDER.sub(lambda m: f"(?P<{m.group(1)}>.+?)", re.escape(text))
        found.append((len(text), re.compile(pattern + r"\Z", re.DOTALL), key))
    found.sort(key=lambda item: -item[0])
    return tuple((pattern, key) for _, pattern, key in found)


def plural(lang: str, n: int) -> str:
    """The CLDR plural category of ``n``, as the chat page's ``Intl.PluralRules`` gives it for
    the UI's languages: English tells one from other; Chinese has no plural forms."""
    return "one" if n == 1 and not lang.startswith("zh") else "other"


class Words:
    """``t("key", name=…)`` in templates: the string with ``{name}`` filled in; with a count
    ``n``, the catalog's plural form (``KEY_one``, …) when it has one. English fills in what
    the language's catalog lacks (with English plurals)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def _pick(self, lang: str, key: str, n: Any) -> str | None:
        words = catalog(lang)
        if isinstance(n, int) and not isinstance(n, bool):
            form = words.get(f"{key}_{plural(lang, n)}")
            if form is not None:
                return form
        return words.get(key)

    def __call__(self, key: str, **values: Any) -> str:
        n = values.get("n")
        text = self._pick(self.lang, key, n)
        if text is None:
            text = self._pick("en", key, n)
        if text is None:
            text = key
        for name, value in values.items():
            text = text.replace("{" + name + "}", str(value))
        return text

    def message(self, text: str) -> str:
        """A message the server made (an error, a flash) in this language: ``text`` is a
        key, or English that the catalog holds; anything else stays as it is."""
        words = catalog("en")
        if text in words:
            return self(text)
        key = _english_index().get(text)
        if key is not None:
            return self(key)
        for pattern, key in _english_patterns():
            match = pattern.match(text)
            if match:
                return self(key, **match.groupdict())
        return text

    def text(self, english: str, **values: Any) -> str:
        """``_("English text", name=…)`` in templates: the text in this language, looked up
        by its English (the catalog's ``en`` value), with ``{name}`` filled in and the plural
        form for a count ``n``. Text the catalog lacks stays English (a test finds it)."""
        key = _english_index().get(english)
        if key is not None:
            return self(key, **values)
        for name, value in values.items():
            english = english.replace("{" + name + "}", str(value))
        return english
