"""The trash's JSON API for the chat UI (``/app/trash…``; the page ``/trash`` is the chat
app's, in :mod:`kuwa.web.rooms`): a user's deleted rooms and answers,
restored or deleted for good; what is older than the system's ``trash_days`` is deleted for
good whenever anybody's trash is read. An administrator restores a user's room from
``Manage → Users`` (:mod:`kuwa.web.manage_users`). Parse → call → wrap; the database side is
:class:`kuwa.rooms.Trash`, which checks that the room is the user's own."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.rooms import Trash
from kuwa.schemas import app
from kuwa.web.core import page, system_config, web_state
from kuwa.web.room_api import TAB, path_id, runner_of, user_of


def _trash(request: Request) -> Trash:
    return Trash(web_state(request).store.db)


async def _days(request: Request) -> int:
    return (await system_config(request)).trash_days


@page(TAB)
@endpoint(answer=app.Trash)
async def app_trash(request: Request) -> Response:
    """Your deleted rooms and messages, while they are kept"""
    user = await user_of(request)
    days = await _days(request)
    trash = _trash(request)
    await run_in_threadpool(trash.purge_expired, days)
    return JSONResponse(await run_in_threadpool(trash.contents, user.id, days))


@page(TAB)
@endpoint(answer=app.Empty, errors=(404,))
async def app_restore_room(request: Request) -> Response:
    """Restore a deleted room"""
    user = await user_of(request)
    room_id = path_id(request, "room_id")
    await run_in_threadpool(_trash(request).restore_room, room_id, user.id)
    return JSONResponse({})


@page(TAB)
@endpoint(answer=app.Empty, errors=(404,))
async def app_purge_room(request: Request) -> Response:
    """Delete a room for good"""
    user = await user_of(request)
    room_id = path_id(request, "room_id")
    await run_in_threadpool(_trash(request).purge_room, room_id, user.id)
    return JSONResponse({})


@page(TAB)
@endpoint(answer=app.Restored, errors=(404,))
async def app_restore_message(request: Request) -> Response:
    """Restore a deleted message"""
    user = await user_of(request)
    message_id = path_id(request, "message_id")
    room_id = await run_in_threadpool(_trash(request).restore_message, message_id, user.id)
    await runner_of(request).publish(room_id, {"type": "message", "id": message_id})
    return JSONResponse({"room": room_id})


@page(TAB)
@endpoint(answer=app.Empty, errors=(404,))
async def app_purge_message(request: Request) -> Response:
    """Delete a message for good"""
    user = await user_of(request)
    message_id = path_id(request, "message_id")
    await run_in_threadpool(_trash(request).purge_message, message_id, user.id)
    return JSONResponse({})


def routes() -> list[BaseRoute]:
    return [
        Route("/app/trash", app_trash, methods=["GET"]),
        Route("/app/trash/rooms/{room_id:id}/restore", app_restore_room, methods=["POST"]),
        Route("/app/trash/rooms/{room_id:id}/purge", app_purge_room, methods=["POST"]),
        Route("/app/trash/messages/{message_id:id}/restore", app_restore_message, methods=["POST"]),
        Route("/app/trash/messages/{message_id:id}/purge", app_purge_message, methods=["POST"]),
    ]
