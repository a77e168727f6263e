"""The chat UI's file API (docs/web-app-api.md): a room's conversation exported as JSON, TSV
or Word and a file imported into it (``/app/rooms/{id}/export``, ``/app/rooms/{id}/import``),
and feedback as training data (``/app/feedback/export``). Parse → call → wrap; the database
side is ``kuwa.rooms.Transfer`` and ``kuwa.rooms.training``."""

from __future__ import annotations

from typing import BinaryIO, cast

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from kuwa.errors import (
    InvalidRequestError,
    KuwaError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.rooms import Transfer
from kuwa.rooms.transfer import room_docx_bytes
from kuwa.schemas import app
from kuwa.web.background import enqueue_pending
from kuwa.web.core import page, web_state
from kuwa.web.documents import UPLOAD, import_room_files, room_files_export
from kuwa.web.room_api import (
    SEND,
    not_blinded,
    path_room,
    rooms_of,
    runner_of,
    user_of,
)

EXPORT = "Room_read_export_chat"
IMPORT = "Room_update_import_chat"
EXPORT_TYPES = {
    "json": ("application/json", "json"),
    "tsv": ("text/tab-separated-values; charset=utf-8", "tsv"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
}


@page(EXPORT)
@endpoint(
    query=app.ExportQuery,
    media="application/json, text/tab-separated-values, " + EXPORT_TYPES["docx"][0],
    errors=(400, 404, 409),
)
async def app_export(request: Request) -> Response:
    """A room as a file: Kuwa's JSON (with its documents), TSV or Word"""
    from kuwa.rooms import formats

    user = await user_of(request)
    room_id = await path_room(request, "viewer")
    kind = request.query_params.get("format", "json")
    if kind not in EXPORT_TYPES:
        raise InvalidRequestError("format must be json, tsv or docx", param="format")
    rooms = rooms_of(request)
    room = await run_in_threadpool(lambda: rooms.get(room_id, user.id, with_messages=False))
    not_blinded(room)
    thread = await run_in_threadpool(Transfer(rooms.db).export_thread, room_id)
    rows = [
        formats.Row(
            role=m["role"],
            content=m["content"],
            model=m["model"] if m["role"] == "assistant" else None,
            chain=bool(m["chain"]) if m["role"] == "assistant" else None,
            citations=orjson.loads(m["citations"]) if m.get("citations") else None,
        )
        for m in thread
    ]
    if kind == "json":
        files = await run_in_threadpool(room_files_export, request, room_id)
        body: bytes = formats.export_json(rows, files, room.get("model_settings"))
    elif kind == "tsv":
        body = formats.export_tsv(rows).encode()
    else:
        body = await run_in_threadpool(room_docx_bytes, room, thread)
    media, ext = EXPORT_TYPES[kind]
    name = f"kuwa-room-{room_id}.{ext}"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@page(IMPORT)
@endpoint(
    upload=("application/json", "text/tab-separated-values", "text/plain"),
    answer=app.Imported,
    status=201,
    errors=(400, 404, 413),
)
async def app_import(request: Request) -> Response:
    """Import a conversation into a room; a worker answers its pending prompts

    The request body is the file (Kuwa's JSON, TSV or one prompt per line)."""
    import tempfile

    from kuwa.rooms import formats, formats_parser

    user = await user_of(request)
    room_id = await path_room(request, "participant")
    if not user.can(SEND):
        raise PermissionDeniedError("Your account may not send messages.")
    rooms = rooms_of(request)
    room = await run_in_threadpool(lambda: rooms.get(room_id, user.id, with_messages=False))
    settings = web_state(request).settings
    is_json = request.headers.get("content-type", "").startswith("application/json")
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 -- closed below
    try:
        size = 0
        async for part in request.stream():
            size += len(part)
            if size > settings.import_max_bytes:
                raise PayloadTooLargeError(
                    f"The file is larger than the limit of {settings.import_max_bytes} bytes."
                )
            await run_in_threadpool(spool.write, part)
        spool.seek(0)
        pending: list[tuple[int, str]] = []
        error: formats.FormatError | None = None
        try:
            await run_in_threadpool(
                lambda: Transfer(rooms.db).import_rows(
                    room_id,
                    user.id,
                    formats_parser.parse(
                        cast(BinaryIO, spool),
                        max_rows=settings.import_max_rows,
                        json_only=is_json,
                    ),
                    room["models"],
                    room["chained"],
                    pending,
                )
            )
        except formats.FormatError as exc:
            error = exc
        files: list[dict[str, object]] = []
        file_error: KuwaError | None = None
        if error is None and user.can(UPLOAD):  # a Kuwa JSON export carries the room's files
            try:
                files = await run_in_threadpool(
                    import_room_files, request, user.id, room_id, cast(BinaryIO, spool)
                )
            except KuwaError as exc:
                file_error = exc
    finally:
        spool.close()
    runner = runner_of(request)
    await runner.publish(room_id, {"type": "room"})
    if pending:  # answered by a background worker (RQ), which outlives this request
        await run_in_threadpool(
            enqueue_pending, settings, room_id, user.id, pending, room["chained"]
        )
    if error is not None:
        raise formats.FormatError(
            f"{error.reason}. Everything before that line was imported"
            f"{f' ({len(pending)} answers to generate)' if pending else ''}.",
            line=error.line,
            column=error.column,
        )
    if files:
        await runner.publish(room_id, {"type": "files"})
    if file_error is not None:
        raise file_error
    body: dict[str, int] = {"pending": len(pending)}
    if files:
        body["files"] = len(files)
    return JSONResponse(body, status_code=201)


@page("Dashboard_read_feedbacks")
@endpoint(
    query=app.FeedbackQuery,
    media="application/x-ndjson, text/csv",
    errors=(400,),
)
async def app_feedback_export(request: Request) -> Response:
    """Feedback as training data (JSONL or CSV)

    ?format=preference|openai|dpo|csv&model=…&since=…&until=…&rating=1|-1|0 (soft-deleted
    answers included, as Kuwa did)."""
    from kuwa.rooms import training

    params = request.query_params
    kind = params.get("format", "preference")
    raw_rating = params.get("rating")
    try:
        rating = int(raw_rating) if raw_rating not in (None, "") else None
    except ValueError:
        raise InvalidRequestError("rating must be 1, -1 or 0", param="rating") from None
    lines = training.export_feedback(
        rooms_of(request),
        kind,
        models=set(params.getlist("model")) or None,
        since=training.parse_date(params.get("since"), "since"),
        until=training.parse_date(params.get("until"), "until"),
        rating=rating,
    )
    _, media, ext = training.FORMATS[kind]
    return StreamingResponse(
        lines,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="kuwa-feedback-{kind}.{ext}"'},
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/app/rooms/{room_id:id}/export", app_export, methods=["GET"]),
        Route("/app/rooms/{room_id:id}/import", app_import, methods=["POST"]),
        Route("/app/feedback/export", app_feedback_export, methods=["GET"]),
    ]
