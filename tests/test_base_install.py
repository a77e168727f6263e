"""Every command works with a plain ``pip install kuwa``: no test extras, no engines.

A plain install is simulated by a ``sitecustomize`` module that makes every module this
environment has but the base dependencies (``pyproject.toml``'s ``[project] dependencies``
and what they require) fail to import, as if it were not installed. Processes started with
its folder first on ``PYTHONPATH`` run as on a plain install: ``--help`` of every command, and a
gateway, an executor and ``kuwa-cli batch`` against them. A static check adds the imports no
run reaches: every ``import`` in ``src/kuwa``, inside functions too, names the standard library,
kuwa or a base dependency, except the engines of the vllm and transformers backends (extras).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.stack import RedisServer, Stack

ROOT = Path(__file__).resolve().parent.parent
ENGINES = {  # the extras these modules exist to drive; they import them when started
    "src/kuwa/executors/vllm_backend.py": {"vllm"},
    "src/kuwa/executors/transformers_backend.py": {"torch", "transformers"},
    "src/kuwa/executors/embeddings_backend.py": {"torch", "transformers"},
}
MARK = "not in a plain install of kuwa"


def base_distributions() -> set[str]:
    """The distributions a plain install brings: the base dependencies, recursively, with the
    extras they ask for (``redis[hiredis]``, ``uvicorn[standard]``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(d) for d in project["dependencies"]]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(req.name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not for this platform
        for line in requires:
            sub = Requirement(line)
            extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return {name for name, _ in seen}


def plain_modules() -> tuple[set[str], set[str]]:
    """(top-level modules a plain install has, installed ones it lacks), standard library and
    kuwa aside."""
    base = base_distributions()
    have: set[str] = set()
    lack: set[str] = set()
    for module, dists in metadata.packages_distributions().items():
        if not module.isidentifier() or module == "kuwa" or module in sys.stdlib_module_names:
            continue
        if any(canonicalize_name(d) in base for d in dists):
            have.add(module)
        else:
            lack.add(module)
    return have, lack - have


SITECUSTOMIZE = f'''"""Modules a plain install of kuwa lacks fail to import."""
import importlib.abc
import sys

BLOCKED = frozenset(%r)


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} ({MARK})", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
'''


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables under which Python runs as on a plain install."""
    folder = tmp_path_factory.mktemp("plain-install")
    _, lack = plain_modules()
    assert {"openai", "pytest", "requests", "playwright"} <= lack
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE % sorted(lack))
    path = [str(folder), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in path if p)}


def run(plain: dict[str, str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **plain, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_simulated_plain_install_lacks_the_test_extras(plain: dict[str, str]) -> None:
    for module in ("openai", "pytest", "psutil", "requests"):
        r = run(plain, "-c", f"import {module}")
        assert r.returncode != 0 and MARK in r.stderr, r.stderr
    assert run(plain, "-c", "import httpx, httpx_sse, redis, click").returncode == 0


def _imports(node: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every absolute import, except under ``if TYPE_CHECKING:``."""
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        for child in node.orelse:
            yield from _imports(child)
        return
    if isinstance(node, ast.Import):
        yield from ((node.lineno, alias.name) for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        yield node.lineno, node.module
    for child in ast.iter_child_nodes(node):
        yield from _imports(child)


def test_every_import_in_the_package_is_a_base_dependency() -> None:
    have, _ = plain_modules()
    wrong = []
    for path in sorted((ROOT / "src" / "kuwa").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        allowed = have | ENGINES.get(name, set()) | {"kuwa"} | set(sys.stdlib_module_names)
        for line, module in _imports(ast.parse(path.read_text(), name)):
            if module.partition(".")[0] not in allowed:
                wrong.append(f"{name}:{line} imports {module}")
    assert not wrong, "not a base dependency (pyproject.toml [project] dependencies):\n" + (
        "\n".join(wrong)
    )


HELP_EVERY_COMMAND = """
import json, click
from click.testing import CliRunner
from kuwa.cli import main

def walk(command, path):
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, [*path, name])

results = []
for path in walk(main, []):
    r = CliRunner().invoke(main, [*path, "--help"])
    results.append({"path": path, "code": r.exit_code, "output": r.output,
                    "error": None if r.exception is None else repr(r.exception)})
print(json.dumps(results))
"""


def test_every_command_shows_its_help_in_a_plain_install(plain: dict[str, str]) -> None:
    r = run(plain, "-c", HELP_EVERY_COMMAND)
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert len(results) > 30  # the groups and their commands
    paths = {" ".join(x["path"]) for x in results}
    assert {"batch", "up", "executor start", "user create", "stress"} <= paths
    failed = [x for x in results if x["code"] != 0 or "Usage:" not in x["output"]]
    assert not failed, failed


@pytest.fixture(scope="module")
def plain_stack(plain: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway and an ``echo`` executor, both running as on a plain install."""
    folder = tmp_path_factory.mktemp("plain-stack")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.token = s.create_user()
        s.executor("echo", env=plain)
        s.gateway(extra_env=plain)
        yield s
    finally:
        s.stop()
        server.stop()


def test_batch_runs_in_a_plain_install(
    plain: dict[str, str], plain_stack: Stack, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hello there\nSecond prompt\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["batch", str(prompts), "-m", "echo", "-o", str(out), "--url", plain_stack.base_url]
    r = run(plain, "-m", "kuwa", *args, KUWA_TOKEN=plain_stack.token)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted((x["prompt"], x["answer"], x["error"]) for x in records) == [
        ("Hello there", "Hello there", None),
        ("Second prompt", "Second prompt", None),
    ]
    assert all(x["usage"]["completion_tokens"] > 0 for x in records)
