"""The gateway: Starlette app serving the OpenAI-style API, Kuwa's v1.0 API and the web UI.

Never imports torch or vLLM.
"""

from kuwa.gateway.app import create_app

__all__ = ["create_app"]
