"""Imports flow one way; each test imports in a fresh interpreter and inspects sys.modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest


def loaded_after(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_schemas_import_nothing_of_ours() -> None:
    ours = {m for m in loaded_after("kuwa.schemas") if m.startswith("kuwa.")}
    assert {m.split(".")[1] for m in ours} == {"schemas"}


@pytest.mark.parametrize(
    "module", ["kuwa.executors.runtime", "kuwa.executors.debug", "kuwa.kernel"]
)
def test_executors_and_kernel_never_import_starlette(module: str) -> None:
    mods = loaded_after(module)
    assert not {m for m in mods if m.split(".")[0] in {"starlette", "uvicorn", "kuwa.gateway"}}
    assert "kuwa.gateway" not in mods


def test_gateway_never_imports_torch_or_vllm() -> None:
    mods = loaded_after("kuwa.gateway")
    assert not {m for m in mods if m.split(".")[0] in {"torch", "vllm", "transformers"}}
    assert not {m for m in mods if m.startswith("kuwa.executors")}


def test_cli_start_is_light() -> None:
    """`kuwa-cli --help` must not pay for the gateway, the executors or the database."""
    mods = loaded_after("kuwa.cli")
    heavy = {"starlette", "uvicorn", "peewee", "kuwa.gateway", "kuwa.executors"}
    assert not {m for m in mods if m in heavy or m.split(".")[0] in heavy}


@pytest.mark.parametrize(
    "module", ["kuwa.executors.vllm_backend", "kuwa.executors.transformers_backend"]
)
def test_engine_backends_import_their_engine_only_when_started(module: str) -> None:
    mods = loaded_after(module)
    assert not {m for m in mods if m.split(".")[0] in {"torch", "vllm", "transformers"}}


# --- no import circles ---------------------------------------------------------------------
# What counts as an import of module A by module B: every `import` / `from … import` statement
# in B's source that names a module of ours, wherever it stands — at module level, inside a
# function or method (a "lazy" import still ties B to A), and under `if TYPE_CHECKING:` (an
# annotation still ties B's meaning to A). `from kuwa.x import y` counts as importing the module
# kuwa.x.y when y is a module, else kuwa.x; relative imports are resolved. What does not count:
# the parent packages Python runs implicitly (importing kuwa.web.rooms runs kuwa/web/__init__),
# and names built at run time (importlib.import_module with a computed name). A circle is a
# strongly connected component of that graph with more than one module.
SRC = Path(__file__).resolve().parent.parent / "src"


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            named = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                for a in node.names
            ]
        else:
            continue
        for target in named:
            while target and target not in modules:  # kuwa.x.Name -> kuwa.x
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
    return targets


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(circles)


def test_no_import_circles() -> None:
    circles = import_circles(import_graph(SRC / "kuwa"))
    assert circles == [], "import circles (break each by moving shared code down a floor):\n" + (
        "\n".join(" <-> ".join(c) for c in circles)
    )


def test_the_circle_finder_finds_hidden_circles(tmp_path: Path) -> None:
    """A circle closed by a function-level import or a TYPE_CHECKING import is still one."""
    pkg = tmp_path / "kuwa"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import A\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from kuwa.sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n"
    )
    (pkg / "c.py").write_text("from kuwa import d\n")
    (pkg / "d.py").write_text("import kuwa.c\n")
    (pkg / "e.py").write_text("from kuwa.sub import a\n")  # one way: no circle
    assert import_circles(import_graph(pkg)) == [
        ["kuwa.c", "kuwa.d"],
        ["kuwa.sub.a", "kuwa.sub.b"],
    ]


def test_no_private_names_imported_from_other_modules() -> None:
    """A helper two modules share moves down a floor under a public name; it is not imported
    sideways as another module's `_private` name."""
    sideways = []
    for path in sorted((SRC / "kuwa").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            ours = isinstance(node, ast.ImportFrom) and (
                node.level > 0 or (node.module or "").startswith("kuwa")
            )
            if ours:
                assert isinstance(node, ast.ImportFrom)
                private = [
                    a.name
                    for a in node.names
                    if a.name.startswith("_") and not a.name.endswith("__")
                ]
                if private:
                    where = path.relative_to(SRC)
                    sideways.append(f"{where}:{node.lineno}: {node.module} {private}")
    assert sideways == []
