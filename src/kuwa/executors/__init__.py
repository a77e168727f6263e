"""Executors: one runtime (queues, slots, heartbeat, cancel, drain) and pluggable backends.

Backends register under the ``kuwa.executors`` entry-point group; heavy imports are lazy.
This package never imports Starlette.
"""

from __future__ import annotations

from importlib.metadata import entry_points

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


__all__ = ["Backend", "BackendError", "Completion", "Emit", "backend_names", "load_backend"]
