"""Reading an uploaded file: ``multipart/form-data`` (a ``file`` part and other fields, as
the OpenAI SDKs and HTML forms send it) or the raw body with the name in ``?name=``.

The body is read up to the limit (plus room for multipart's headers) and refused beyond it
with 413 before any of it is parsed or written anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from kuwa.errors import InvalidRequestError, PayloadTooLargeError

MULTIPART_OVERHEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Upload:
    name: str
    data: bytes
    fields: dict[str, str] = field(default_factory=dict)


async def read_upload(request: Request, limit: int) -> Upload:
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    cap = limit + (MULTIPART_OVERHEAD if multipart else 0)
    too_large = PayloadTooLargeError(
        f"The file is larger than the limit of {limit} bytes.", param="file"
    )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise too_large
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > cap:
            raise too_large
    if not multipart:
        name = request.query_params.get("name", "")
        if not name:
            raise InvalidRequestError("Name the file: ?name=report.pdf", param="name")
        return Upload(name, bytes(body))
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    form = await Request(request.scope, replay).form(max_files=1, max_fields=20)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError("Send the file in a form field named 'file'.", param="file")
        data = await upload.read()
        if len(data) > limit:
            raise too_large
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return Upload(upload.filename or fields.get("name", ""), data, fields)
    finally:
        await form.close()
