"""Every curl, Python and JavaScript example of docs/api.md, run against a live gateway.

Each code block is preceded by ``<!-- run: expect "TEXT" … -->`` (run it; its output must
contain each TEXT) or ``<!-- not run: why -->``; a block with neither fails the first test, so
no example escapes. The examples read the token from ``KUWA_TOKEN``; the test replaces the
URL ``http://127.0.0.1:8000`` with its gateway's. JavaScript runs on Node.js with the packages
of ``tests/js/package.json`` (``npm ci --prefix tests/js``, done by ``make test``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stack import Stack

ROOT = Path(__file__).parent.parent
DOC = ROOT / "docs" / "api.md"
JS_MODULES = Path(__file__).parent / "js" / "node_modules"
URL = "http://127.0.0.1:8000"
LANGUAGES = {"bash": ".sh", "python": ".py", "javascript": ".mjs"}
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- (run: (?P<expect>.*?)|not run: .+?) -->\n\Z")


@dataclass(frozen=True)
class Example:
    language: str
    code: str
    line: int
    run: bool
    expect: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.language}-line{self.line}"


def examples() -> list[Example]:
    text = DOC.read_text(encoding="utf-8")
    out = []
    for block in BLOCK.finditer(text):
        language, code = block.group(1), block.group(2)
        if language not in LANGUAGES:
            continue
        line = text.count("\n", 0, block.start()) + 1
        marker = MARKER.search(text, 0, block.start())
        if marker is None:
            out.append(Example(language, code, line, False, ()))
            continue
        expect = marker.group("expect")
        wanted = tuple(
            s.replace('\\"', '"') for s in re.findall(r'"((?:[^"\\]|\\.)*)"', expect or "")
        )
        out.append(Example(language, code, line, expect is not None, wanted))
    return out


EXAMPLES = examples()
RUNNABLE = [e for e in EXAMPLES if e.run]


def test_every_example_is_marked_and_checks_something() -> None:
    text = DOC.read_text(encoding="utf-8")
    for block in BLOCK.finditer(text):
        if block.group(1) in LANGUAGES:
            assert MARKER.search(text, 0, block.start()), (
                f"docs/api.md line {text.count(chr(10), 0, block.start()) + 1}: mark the "
                'example with <!-- run: expect "…" --> or <!-- not run: why -->'
            )
    for example in RUNNABLE:
        assert example.expect, f"{example.id} expects nothing"
        assert URL in example.code or "not-a-token" in example.code, example.id
    languages = {e.language for e in RUNNABLE}
    assert languages == set(LANGUAGES)
    sdk = [e for e in RUNNABLE if "openai" in e.code]
    assert {e.language for e in sdk} == {"python", "javascript"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the examples are written; JavaScript finds the packages through node_modules."""
    path = tmp_path_factory.mktemp("examples")
    if JS_MODULES.is_dir():
        (path / "node_modules").symlink_to(JS_MODULES)
    return path


def command(example: Example, script: Path) -> list[str]:
    if example.language == "bash":
        assert shutil.which("curl"), "curl must be installed"
        return ["bash", "-eu", str(script)]
    if example.language == "python":
        return [sys.executable, str(script)]
    node = shutil.which("node")
    assert node, "node (Node.js 20+) must be on PATH"
    assert (JS_MODULES / "eventsource-parser").is_dir() and (JS_MODULES / "openai").is_dir(), (
        "the JavaScript examples need their packages: npm ci --prefix tests/js"
    )
    return [node, str(script)]


@pytest.fixture(scope="module")
def examples_stack(stack: Stack) -> Stack:
    """The shared stack plus what the examples ask besides: ``embed``, a debug embedding
    model (``--debug-transform embed``)."""
    stack.executor("embed", transform="embed")
    return stack


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.id for e in RUNNABLE])
def test_example_runs_against_a_live_gateway(
    example: Example, examples_stack: Stack, folder: Path
) -> None:
    stack = examples_stack
    script = folder / f"{example.id}{LANGUAGES[example.language]}"
    script.write_text(example.code.replace(URL, stack.base_url), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUWA_", "OPENAI_"))}
    env["KUWA_TOKEN"] = stack.token
    result = subprocess.run(
        command(example, script),
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=folder,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"docs/api.md line {example.line}:\n{result.stderr}"
    for wanted in example.expect:
        assert wanted in result.stdout, (
            f"docs/api.md line {example.line}: {wanted!r} not in\n{result.stdout}"
        )
    assert "Traceback" not in result.stderr, result.stderr
