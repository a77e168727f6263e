"""Imports flow one way; each test imports in a fresh interpreter and inspects sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys

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
