"""The generated reference pages match the code, and the code keeps the promises they make."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from kuwa.cli import docs, main
from kuwa.settings import PREFIX, Settings, setting_docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def commands(
    cmd: click.Command = main, path: str = "kuwa-cli"
) -> Iterator[tuple[str, click.Command]]:
    """Every command in the click tree with its full path (walked here, not by the generator)."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from commands(sub, f"{path} {name}")


def test_cli_reference_is_generated_from_the_code() -> None:
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == docs.render_cli_reference(), (
        "docs/cli.md is out of date; run: .venv/bin/python -m kuwa.cli.docs"
    )


def test_configuration_reference_is_generated_from_the_code() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert page == docs.render_settings_reference(), (
        "docs/configuration.md is out of date; run: .venv/bin/python -m kuwa.cli.docs"
    )


def test_check_mode_fails_on_a_stale_page_and_passes_after_writing(tmp_path: Path) -> None:
    assert docs.run(tmp_path, check=True) == 1
    assert not list(tmp_path.iterdir()), "--check must not write"
    assert docs.run(tmp_path, check=False) == 0
    assert docs.run(tmp_path, check=True) == 0
    (tmp_path / "cli.md").write_text("edited by hand\n", encoding="utf-8")
    assert docs.run(tmp_path, check=True) == 1


def test_module_entry_point_checks_the_repository_pages() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kuwa.cli.docs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_every_command_has_a_section_in_the_cli_reference() -> None:
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,4} (kuwa-cli.*)$", page, re.M))
    paths = {path for path, _ in commands()}
    assert paths <= headings, f"missing sections: {sorted(paths - headings)}"
    for path in ("kuwa-cli up", "kuwa-cli executor start", "kuwa-cli user token"):
        assert path in paths


def test_every_option_can_come_from_a_kuwa_variable() -> None:
    missing = []
    for path, cmd in commands():
        for param in cmd.params:
            if not isinstance(param, click.Option) or "--version" in param.opts:
                continue
            envvars = [param.envvar] if isinstance(param.envvar, str) else param.envvar or []
            if not envvars or not all(e.startswith(PREFIX) for e in envvars):
                missing.append(f"{path} {'/'.join(param.opts)} (envvar {param.envvar!r})")
    assert not missing, "options without a KUWA_* variable: " + ", ".join(missing)


def test_every_setting_is_documented_with_its_meaning() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    rows = {
        m.group(1): m.group(0) for m in re.finditer(r"^\| `(KUWA_[A-Z0-9_]+)` \|.*$", page, re.M)
    }
    meanings = setting_docs()
    for f in dataclasses.fields(Settings):
        name = PREFIX + f.name.upper()
        assert name in rows, f"{name} is not in docs/configuration.md"
        assert " ".join(meanings[name].split()) in rows[name]


def test_readme_quick_start_is_exactly_make_run_and_make_test() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Quick start" in readme
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```[a-z]*\n(.*?)```", section, re.S)
    assert block is not None, "the Quick start section has no code block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    assert [line for line in lines if line] == ["make run", "make test"]


def test_links_between_doc_pages_resolve() -> None:
    broken = []
    for page in sorted(DOCS.glob("*.md")):
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text("utf-8")):
            if not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert not broken, f"broken links: {broken}"
