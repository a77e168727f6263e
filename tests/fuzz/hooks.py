"""schemathesis hooks for Kuwa's OpenAPI document (loaded with ``SCHEMATHESIS_HOOKS``).

A bot file (``POST /app/bots/import``) is a MIME document, ``multipart/related``, sent as the
raw body: schemathesis has no serializer for that media type, so it sends the bytes it
generated as they are.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("multipart/related")
def raw_body(ctx: schemathesis.SerializationContext, value: Any) -> dict[str, Any]:
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": str(value).encode("utf-8")}
