"""What every page needs besides itself: the site icon, and UI strings with plural forms.

A real gateway serves them; the chat page's own ``i18n.js`` runs under Node.js and loads the
catalogs from that gateway, as the browser does.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kuwa.web.i18n import Words
from tests.stack import RedisServer, Stack

STATIC = Path(__file__).resolve().parent.parent / "src" / "kuwa" / "web" / "static"
PLURAL_FORMS = ("_zero", "_one", "_two", "_few", "_many")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("assets")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        yield s.gateway()
    finally:
        s.stop()
        server.stop()


def test_every_page_has_an_icon_and_favicon_ico_answers(gateway: str) -> None:
    """/favicon.ico answered 404 on every page (browsers ask for it)."""
    ico = httpx.get(gateway + "/favicon.ico")
    assert ico.status_code == 301 and ico.headers["location"] == "/static/favicon.svg"
    icon = httpx.get(gateway + "/favicon.ico", follow_redirects=True)
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg") and "viewBox" in icon.text
    html = {"accept": "text/html"}
    for path in ("/login", "/signup", "/no-such-page"):
        page = httpx.get(gateway + path, headers=html)
        assert page.headers["content-type"].startswith("text/html"), path
        link = re.search(r'<link rel="icon" href="([^"]+)"', page.text)
        assert link and link.group(1) == "/static/favicon.svg", path


PLURALS_JS = """
const [base, module] = process.argv.slice(2);
const realFetch = globalThis.fetch;
globalThis.fetch = (url, options) => realFetch(new URL(url, base), options);
globalThis.document = { documentElement: {} };
const { loadStrings, t } = await import(module);
const out = {};
for (const lang of ["en", "zh-TW"]) {
  await loadStrings(lang);
  out[lang] = {
    uses: [0, 1, 2].map((n) => t("uses_count", { n })),
    clients: t("dash_clients", { n: 1 }),
    imported: t("imported", { n: 1 }),
    plain: t("uses_title"),
  };
}
console.log(JSON.stringify(out));
"""


def test_counts_take_the_plural_form_of_the_language(gateway: str, tmp_path: Path) -> None:
    """The bot store's cards read "1 uses"."""
    node = shutil.which("node")
    assert node, "node (Node.js 20+) must be on PATH"
    script = tmp_path / "plurals.mjs"
    script.write_text(PLURALS_JS, encoding="utf-8")
    module = (STATIC / "js" / "i18n.js").as_uri()
    run = subprocess.run(
        [node, str(script), gateway, module], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["en"] == {
        "uses": ["0 uses", "1 use", "2 uses"],
        "clients": "1 client",
        "imported": "Imported; 1 answer to write",
        "plain": "How often the bot has been used",
    }
    assert got["zh-TW"] == {  # Chinese has no plural forms: one string for every count
        "uses": ["使用 0 次", "使用 1 次", "使用 2 次"],
        "clients": "1 個連線",
        "imported": "已匯入；還有 1 個回答要產生",  # noqa: RUF001
        "plain": "機器人被使用的次數",
    }


def test_server_rendered_counts_use_the_same_plural_forms() -> None:
    en, zh = Words("en"), Words("zh-TW")
    assert [en("dash_scanned", n=n) for n in (0, 1, 2)] == [
        "0 entries read",
        "1 entry read",
        "2 entries read",
    ]
    assert zh("dash_scanned", n=1) == zh("dash_scanned", n=2).replace("2", "1")
    assert zh("dash_scanned", n=1) != en("dash_scanned", n=1)


def test_both_catalogs_have_the_same_strings() -> None:
    """Every string is in both languages; only plural forms Chinese does not use are English's
    alone, and each belongs to a string."""
    en = json.loads((STATIC / "i18n" / "en.json").read_text(encoding="utf-8"))
    zh = json.loads((STATIC / "i18n" / "zh-TW.json").read_text(encoding="utf-8"))
    forms = {k for k in en if k.endswith(PLURAL_FORMS)}
    assert forms >= {"uses_count_one", "dash_clients_one", "dash_scanned_one", "imported_one"}
    assert all(k.rsplit("_", 1)[0] in en for k in forms)
    assert set(en) - forms == set(zh)


TEMPLATES = STATIC.parent / "templates"
ENGLISH_LITERAL = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
KEY_LITERAL = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_]+)["']\s*[,)]""")


def test_every_template_string_is_in_both_catalogs() -> None:
    """The server's pages say their words with _("English") or t("key"): each must be in the
    English catalog and have its Chinese (the route walk of pages, for words)."""
    en = json.loads((STATIC / "i18n" / "en.json").read_text(encoding="utf-8"))
    zh = json.loads((STATIC / "i18n" / "zh-TW.json").read_text(encoding="utf-8"))
    by_text = {text: key for key, text in en.items()}
    missing = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        source = path.read_text(encoding="utf-8")
        for m in ENGLISH_LITERAL.finditer(source):
            text = (m.group(1) if m.group(1) is not None else m.group(2)).replace('\\"', '"')
            key = by_text.get(text)
            if key is None or key not in zh:
                missing.append(f"{path.name}: _({text!r})")
        for key in KEY_LITERAL.findall(source):
            if key not in en or key not in zh:
                missing.append(f"{path.name}: t({key!r})")
    assert missing == []
    assert not set(en) - set(zh) - {k for k in en if k.endswith("_one")}, "keys without Chinese"
