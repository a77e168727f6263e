"""The chat UI's sharing API (docs/web-app-api.md): a room's members and its read-only
link (``/app/rooms/{id}/share``, ``/app/rooms/{id}/link``) and the page that link opens
(``/shared/{token}``). Parse → call → wrap; the database side is ``kuwa.rooms.Sharing``."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.errors import InvalidRequestError, NotFoundError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.state import state_of
from kuwa.rooms import Sharing, Transfer
from kuwa.schemas import app
from kuwa.web.core import SIGNED_IN, error_page, page, render, render_markdown, web_state
from kuwa.web.room_api import (
    TAB,
    not_blinded,
    path_room,
    room_json,
    rooms_of,
    runner_of,
    user_of,
)


def _sharing(request: Request) -> Sharing:
    return Sharing(rooms_of(request).db)


@page(TAB)
@endpoint(body=app.Share, answer=app.Room, errors=(400, 404))
async def app_share(request: Request, body: app.Share) -> Response:
    """Share a room with a user or a group (owner)"""
    room_id = await path_room(request, "owner")
    role = body.role
    store = web_state(request).store
    user_id = group_id = None
    if body.email:
        target = await run_in_threadpool(store.accounts.find_user, body.email)
        if target is None:
            raise NotFoundError("There is no user with that email.", param="email")
        if target.id == (await user_of(request)).id:
            raise InvalidRequestError("You own this room already.", param="email")
        user_id = target.id
    elif body.group:
        group = await run_in_threadpool(store.groups.get, body.group)
        group_id = group.id
    else:
        raise InvalidRequestError("Name a user (email) or a group to share with.", param="email")
    await run_in_threadpool(
        lambda: _sharing(request).share(room_id, user_id=user_id, group_id=group_id, role=role)
    )
    await runner_of(request).publish(room_id, {"type": "room"})
    return JSONResponse(await room_json(request, room_id))


@page(TAB)
@endpoint(body=app.LinkSwitch, answer=app.Room, errors=(400, 404, 409))
async def app_link(request: Request, body: app.LinkSwitch) -> Response:
    """Turn the room's read-only link on or off (owner)"""
    room_id = await path_room(request, "owner")
    enabled = body.enabled
    user = await user_of(request)
    not_blinded(
        await run_in_threadpool(
            lambda: rooms_of(request).get(room_id, user.id, with_messages=False)
        )
    )
    await run_in_threadpool(_sharing(request).set_link, room_id, enabled)
    return JSONResponse(await room_json(request, room_id))


@page(SIGNED_IN)
@endpoint(media=HTML)
async def shared_room(request: Request) -> Response:
    """A room opened by its read-only link: its conversation, for any signed-in user."""
    rooms = rooms_of(request)
    room_id = await run_in_threadpool(Sharing(rooms.db).by_link, str(request.path_params["token"]))
    if room_id is None:
        return error_page(request, 404, "This link does not work (any more).")
    user = await user_of(request)
    room = await run_in_threadpool(lambda: rooms.get(room_id, user.id, with_messages=False))
    thread = await run_in_threadpool(Transfer(rooms.db).export_thread, room_id)
    names = {m.access_code: m.name for m in (await state_of(request).models.models()).values()}
    messages = [
        {
            "role": m["role"],
            "who": (m["author_name"] or "?")
            if m["role"] == "user"
            else names.get(str(m["model"]), str(m["model"])),
            "html": render_markdown(m["content"]),
        }
        for m in thread
        if m["deleted_at"] is None
    ]
    return await render(request, "shared.html", title=room["title"], messages=messages)


def routes() -> list[BaseRoute]:
    return [
        Route("/app/rooms/{room_id:id}/share", app_share, methods=["POST"]),
        Route("/app/rooms/{room_id:id}/link", app_link, methods=["POST"]),
        Route("/shared/{token}", shared_room, methods=["GET"]),
    ]
