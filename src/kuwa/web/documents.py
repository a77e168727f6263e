"""The chat UI's JSON API for documents (docs/web-app-api.md): a room's files and a bot's
knowledge — upload, list, look at, download, delete — and the passages a prompt sends to
each model. Parse → call → wrap; who may do what is decided by ``Documents.require`` and
the room's roles."""

from __future__ import annotations

import base64
import binascii
from typing import Any, BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import UserInfo
from kuwa.accounts.models import Document
from kuwa.bots import Knowledge
from kuwa.bots.store import Bots, bot_id_of
from kuwa.documents import Documents, Embedder, document_json, enqueue_indexing, retrieve
from kuwa.errors import DocumentError
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.uploads import read_upload
from kuwa.rooms import Rooms
from kuwa.schemas import app
from kuwa.web.core import page, web_state
from kuwa.web.room_api import TAB, user_of

UPLOAD = "Room_update_upload_file"
KNOWLEDGE = "Store_update_modify_bot"


def documents_of(request: Request) -> Documents:
    web = web_state(request)
    return Documents(web.rooms.db, web.settings)


async def _add(
    request: Request, user: UserInfo, *, room_id: int | None = None, bot_id: int | None = None
) -> Response:
    docs = documents_of(request)
    upload = await read_upload(request, docs.settings.files_max_bytes)
    row = await run_in_threadpool(
        lambda: docs.add(user.id, upload.name, upload.data, room_id=room_id, bot_id=bot_id)
    )
    await run_in_threadpool(enqueue_indexing, docs.settings, int(row["id"]))
    if room_id is not None:
        await web_state(request).runner.publish(room_id, {"type": "files"})
    return JSONResponse(document_json(row), status_code=201)


# A document uploaded to a room or to a bot's knowledge: the file as the body or as a form.
_upload_endpoint = endpoint(
    form=app.RoomUpload,
    upload=("application/octet-stream",),
    query=app.UploadQuery,
    answer=app.AppFile,
    status=201,
    errors=(400, 404, 413),
)


# --- a room's files -------------------------------------------------------------------------
@page(UPLOAD)
@_upload_endpoint
async def app_room_upload(request: Request) -> Response:
    """Add a document to a room (participants)

    The body is the file (``?name=``) or a multipart form with a ``file`` part. Every model
    of the room answers from the room's documents."""
    user = await user_of(request)
    room_id = int(request.path_params["room_id"])
    rooms: Rooms = web_state(request).rooms
    await run_in_threadpool(rooms.require, room_id, user.id, user.group, "participant")
    return await _add(request, user, room_id=room_id)


@page(TAB)
@endpoint(answer=app.FileListing, errors=(404,))
async def app_room_files(request: Request) -> Response:
    """A room's documents, oldest first (viewers)"""
    user = await user_of(request)
    room_id = int(request.path_params["room_id"])
    rooms: Rooms = web_state(request).rooms
    await run_in_threadpool(rooms.require, room_id, user.id, user.group, "viewer")
    rows = await run_in_threadpool(documents_of(request).of_room, room_id)
    return JSONResponse({"files": [document_json(r) for r in rows]})


def delete_room_files(request: Request, room_id: int) -> int:
    """A deleted room's documents go with it (they stop counting against the quota)."""
    docs = documents_of(request)
    rows = docs.of_room(room_id)
    for row in rows:
        docs.delete(row)
    return len(rows)


# --- a bot's knowledge ----------------------------------------------------------------------
async def _editable_bot(request: Request, user: UserInfo) -> int:
    bot_id = int(request.path_params["bot_id"])
    await run_in_threadpool(Bots(web_state(request).rooms.db).check_editable, bot_id, user)
    return bot_id


@page(KNOWLEDGE)
@_upload_endpoint
async def app_bot_upload(request: Request) -> Response:
    """Add a document to a bot's knowledge (its owner)"""
    user = await user_of(request)
    bot_id = await _editable_bot(request, user)
    return await _add(request, user, bot_id=bot_id)


@page(KNOWLEDGE)
@endpoint(answer=app.FileListing, errors=(404,))
async def app_bot_files(request: Request) -> Response:
    """A bot's knowledge: its documents"""
    user = await user_of(request)
    bot_id = await _editable_bot(request, user)
    rows = await run_in_threadpool(documents_of(request).of_bot, bot_id)
    return JSONResponse({"files": [document_json(r) for r in rows]})


def bot_knowledge(request: Request, bot_id: int) -> tuple[Knowledge, ...]:
    """The bot's knowledge as a .bot file carries it (its documents as uploaded)."""
    docs = documents_of(request)
    return tuple(Knowledge(str(r["name"]), docs.content(r)) for r in docs.of_bot(bot_id))


def _add_knowledge(docs: Documents, owner: int, item: Knowledge, bot_id: int) -> dict[str, Any]:
    return docs.add(owner, item.name, item.data, bot_id=bot_id)


async def add_knowledge(
    request: Request, user: UserInfo, bot_id: int, knowledge: tuple[Knowledge, ...]
) -> None:
    """Store and index an imported bot's knowledge (all of it is checked before any is kept)."""
    docs = documents_of(request)
    rows: list[dict[str, Any]] = []
    try:
        for item in knowledge:
            rows.append(await run_in_threadpool(_add_knowledge, docs, user.id, item, bot_id))
    except BaseException:
        for row in rows:
            await run_in_threadpool(docs.delete, row)
        raise
    for row in rows:
        await run_in_threadpool(enqueue_indexing, docs.settings, int(row["id"]))


def room_files_export(request: Request, room_id: int) -> list[dict[str, Any]]:
    """The room's documents as its JSON export carries them (the bytes in base64)."""
    docs = documents_of(request)
    return [
        {
            "id": r["uid"],
            "name": r["name"],
            "kind": r["kind"],
            "bytes": r["size"],
            "pages": r["pages"],
            "status": r["status"],
            "content_base64": base64.b64encode(docs.content(r)).decode(),
        }
        for r in docs.of_room(room_id)
    ]


def import_room_files(
    request: Request, owner_id: int, room_id: int, spool: BinaryIO
) -> list[dict[str, Any]]:
    """The ``files`` of an imported Kuwa JSON export, added to the room and queued for
    indexing (each checked like an upload: a bad one stops the import there)."""
    import ijson

    docs = documents_of(request)
    spool.seek(0)
    head = spool.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"{"):
        return []
    spool.seek(0)
    rows: list[dict[str, Any]] = []
    try:
        for n, item in enumerate(ijson.items(spool, "files.item"), 1):
            name = item.get("name") if isinstance(item, dict) else None
            content = item.get("content_base64") if isinstance(item, dict) else None
            if not isinstance(name, str) or not isinstance(content, str):
                raise DocumentError(f"file {n} of the import needs a name and content_base64")
            try:
                data = base64.b64decode(content, validate=True)
            except binascii.Error:
                raise DocumentError(f"file {n} ({name}): content_base64 is not base64") from None
            rows.append(docs.add(owner_id, name, data, room_id=room_id))
    except ijson.JSONError as exc:
        raise DocumentError(f"the import's files cannot be read: {exc}") from None
    finally:
        for row in rows:
            enqueue_indexing(docs.settings, int(row["id"]))
    return rows


# --- one file -------------------------------------------------------------------------------
@page(TAB)
@endpoint(answer=app.AppFile, errors=(404,))
async def app_file(request: Request) -> Response:
    """One document and how far its indexing is"""
    user = await user_of(request)
    uid = str(request.path_params["file_id"])
    row = await run_in_threadpool(documents_of(request).require, uid, user, "read")
    return JSONResponse(document_json(row))


@page(TAB)
@endpoint(media="application/octet-stream", errors=(404,))
async def app_file_content(request: Request) -> Response:
    """The file as uploaded, always as a download

    Never shown inline: an HTML file must not run in Kuwa's origin."""
    user = await user_of(request)
    docs = documents_of(request)
    uid = str(request.path_params["file_id"])
    row = await run_in_threadpool(docs.require, uid, user, "read")
    return download(row, await run_in_threadpool(docs.content, row))


def download(row: dict[str, Any], data: bytes) -> Response:
    from urllib.parse import quote

    name = str(row["name"])
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


@page(TAB)
@endpoint(answer=app.Empty, errors=(404,))
async def app_file_delete(request: Request) -> Response:
    """Delete a document (its uploader or the room's owner)"""
    user = await user_of(request)
    docs = documents_of(request)
    uid = str(request.path_params["file_id"])
    row = await run_in_threadpool(docs.require, uid, user, "delete")
    await run_in_threadpool(docs.delete, row)
    if row["room"] is not None:
        await web_state(request).runner.publish(int(row["room"]), {"type": "files"})
    return JSONResponse({})


# --- passages for a prompt ------------------------------------------------------------------
async def citations_for(
    request: Request, user: UserInfo, room_id: int, prompt: str, models: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Per model, the passages its answer gets: the best of the room's documents (the same
    for every model), or of the room's and a bot's knowledge for a bot that has some."""
    docs = documents_of(request)
    k = docs.settings.files_passages
    embedder = Embedder.from_settings(docs.settings)

    def work() -> dict[str, list[dict[str, Any]]]:
        room_ids = docs.ready_ids(Document.room == room_id)
        shared = retrieve(docs, room_ids, prompt, k, embedder) if room_ids else []
        out: dict[str, list[dict[str, Any]]] = {}
        for code in models:
            bot_id = bot_id_of(code)
            knowledge = docs.ready_ids(Document.bot == bot_id) if bot_id is not None else []
            out[code] = (
                retrieve(docs, room_ids + knowledge, prompt, k, embedder) if knowledge else shared
            )
        return out

    return await run_in_threadpool(work)


def routes() -> list[BaseRoute]:
    return [
        Route("/app/rooms/{room_id:id}/files", app_room_upload, methods=["POST"]),
        Route("/app/rooms/{room_id:id}/files", app_room_files, methods=["GET"]),
        Route("/app/bots/{bot_id:id}/files", app_bot_upload, methods=["POST"]),
        Route("/app/bots/{bot_id:id}/files", app_bot_files, methods=["GET"]),
        Route("/app/files/{file_id}", app_file, methods=["GET"]),
        Route("/app/files/{file_id}/content", app_file_content, methods=["GET"]),
        Route("/app/files/{file_id}/delete", app_file_delete, methods=["POST"]),
    ]
