"""The gateway: Starlette app serving the OpenAI-style API, Kuwa's v1.0 API and the web UI.

Never imports torch or vLLM. ``create_app`` is imported lazily: the web UI (``kuwa.web``)
uses the gateway's modules, and the app imports the web UI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from kuwa.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings) -> Starlette:
    from kuwa.gateway.app import create_app as build

    return build(settings)
