"""``/v1/files``: OpenAI's Files API for documents to chat with, and attaching them to a chat.

Upload (``multipart/form-data``: ``file`` and ``purpose``), list, look at, download and
delete; a chat request names files in a message's ``{"type": "file", "file": {"file_id"}}``
part (OpenAI's) or in a top-level ``files`` list (Kuwa's, both APIs). Their best passages for
the last user message go into the job (every model sees them through its Modelfile's
PASSAGES-TEMPLATE) and come back as ``citations``. Access: a file is its uploader's, or its
room's people's (``Documents.require``); anyone else's is "no such file".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kuwa.accounts import UserInfo
from kuwa.documents import Documents, Embedder, enqueue_indexing, retrieve
from kuwa.errors import ConflictError, DocumentError, InvalidRequestError
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.models import require_api_access
from kuwa.gateway.state import GatewayState, state_of
from kuwa.gateway.uploads import read_upload
from kuwa.rooms.shapes import timestamp
from kuwa.schemas import ChatRequest, Passage
from kuwa.schemas import api as wire
from kuwa.schemas.api import PURPOSES

OPENAI_STATUS: dict[str, Literal["uploaded", "processed"]] = {
    "queued": "uploaded",
    "indexing": "uploaded",
    "ready": "processed",
}


class FilesQuery(msgspec.Struct):
    purpose: Literal["assistants", "user_data"] | None = None


def file_object(row: dict[str, Any]) -> wire.FileObject:
    """OpenAI's file object, plus Kuwa's indexing status."""
    return wire.FileObject(
        id=row["uid"],
        object="file",
        bytes=row["size"],
        created_at=int(timestamp(row["created_at"]) or 0),
        expires_at=None,
        filename=row["name"],
        purpose=row["purpose"],
        status=OPENAI_STATUS.get(str(row["status"]), "error"),
        status_details=row["error"],
        kuwa_status=row["status"],
        pages=row["pages"],
        passages=row["passages"],
    )


def _documents(state: GatewayState) -> Documents:
    return Documents(state.store.db, state.settings)


async def _user(request: Request) -> tuple[GatewayState, UserInfo]:
    state = state_of(request)
    user = await state.auth.authenticate(request)
    require_api_access(user)
    return state, user


@endpoint("Upload a document to chat with", form=wire.FileUpload, answer=wire.FileObject)
async def create_file(request: Request) -> Response:
    state, user = await _user(request)
    docs = _documents(state)
    upload = await read_upload(request, state.settings.files_max_bytes)
    purpose = upload.fields.get("purpose", "assistants")
    if purpose not in PURPOSES:
        raise InvalidRequestError(
            f"'purpose' must be one of {', '.join(PURPOSES)}.", param="purpose"
        )
    row = await run_in_threadpool(
        lambda: docs.add(user.id, upload.name, upload.data, purpose=purpose)
    )
    await run_in_threadpool(enqueue_indexing, state.settings, int(row["id"]))
    return JSONResponse(file_object(row))


@endpoint("Your files", query=FilesQuery, answer=wire.FileList)
async def list_files(request: Request) -> Response:
    state, user = await _user(request)
    rows = await run_in_threadpool(_documents(state).of_owner, user.id)
    purpose = request.query_params.get("purpose")
    data = [file_object(r) for r in rows if purpose in (None, r["purpose"])]
    return JSONResponse(wire.FileList(object="list", data=data, has_more=False))


@endpoint("One file and how far its indexing is", answer=wire.FileObject)
async def get_file(request: Request) -> Response:
    state, user = await _user(request)
    uid = str(request.path_params["file_id"])
    row = await run_in_threadpool(_documents(state).require, uid, user, "read")
    return JSONResponse(file_object(row))


@endpoint("The file as it was uploaded", media="application/octet-stream")
async def file_content(request: Request) -> Response:
    state, user = await _user(request)
    docs = _documents(state)
    uid = str(request.path_params["file_id"])
    row = await run_in_threadpool(docs.require, uid, user, "read")
    data = await run_in_threadpool(docs.content, row)
    from urllib.parse import quote

    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(str(row['name']))}",
            "X-Content-Type-Options": "nosniff",
        },
    )


@endpoint("Delete a file, its passages and its index", answer=wire.FileDeleted)
async def delete_file(request: Request) -> Response:
    state, user = await _user(request)
    docs = _documents(state)
    uid = str(request.path_params["file_id"])
    row = await run_in_threadpool(docs.require, uid, user, "delete")
    await run_in_threadpool(docs.delete, row)
    return JSONResponse(wire.FileDeleted(id=uid, object="file", deleted=True))


async def attach_files(
    state: GatewayState, chat: ChatRequest, user: UserInfo
) -> tuple[ChatRequest, list[dict[str, Any]]]:
    """The request with the passages of its files for its last user message, and the
    citations (``{"n", "file", "name", "page", "text"}``) those passages stand for."""
    if not chat.files:
        return chat, []
    docs = _documents(state)

    def work() -> list[dict[str, Any]]:
        ids = []
        for uid in chat.files:
            row = docs.require(uid, user, "read")
            if row["status"] == "failed":
                raise DocumentError(f"{uid}: {row['error']}", param="files")
            if row["status"] != "ready":
                raise ConflictError(
                    f"{uid} is still being indexed ({row['done']} of {row['pages']} pages "
                    "read); try again in a moment.",
                    param="files",
                    code="file_not_ready",
                    headers={"Retry-After": "2"},
                )
            ids.append(int(row["id"]))
        prompt = next((m.content for m in reversed(chat.messages) if m.role == "user"), "")
        embedder = Embedder.from_settings(state.settings)
        return retrieve(docs, ids, prompt, state.settings.files_passages, embedder)

    citations = await run_in_threadpool(work)
    passages = tuple(Passage(c["n"], c["name"], c["page"], c["text"]) for c in citations)
    return dataclasses.replace(chat, passages=passages), citations
