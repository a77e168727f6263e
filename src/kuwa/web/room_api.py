"""What the chat UI's room API modules share (:mod:`kuwa.web.rooms`, ``sharing``,
``transfer``, ``arena``, ``documents``, ``trash``): the signed-in user, a path's room id,
access checks and the room as the page reads it. One floor below them all, so none of them
imports another's helpers."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from kuwa.accounts import UserInfo
from kuwa.errors import ConflictError
from kuwa.rooms import Rooms
from kuwa.web.core import current_user, web_state
from kuwa.web.live import RoomRunner

TAB = "tab_Room"
SEND = "Room_update_send_message"


async def user_of(request: Request) -> UserInfo:
    """The signed-in user of a handler that :func:`~kuwa.web.core.page` let through."""
    user = await current_user(request)
    assert user is not None  # page() let only a signed-in user through
    return user


def rooms_of(request: Request) -> Rooms:
    return web_state(request).rooms


def runner_of(request: Request) -> RoomRunner:
    return web_state(request).runner


def path_id(request: Request, name: str) -> int:
    return int(request.path_params[name])


async def require(request: Request, room_id: int, at_least: str) -> str:
    """The user's role in the room, at least ``at_least`` (else PermissionDenied/NotFound)."""
    user = await user_of(request)
    return await run_in_threadpool(
        rooms_of(request).require, room_id, user.id, user.group, at_least
    )


async def path_room(request: Request, at_least: str) -> int:
    """The path's ``room_id``, where the user's role is at least ``at_least`` (else
    PermissionDenied/NotFound)."""
    room_id = path_id(request, "room_id")
    await require(request, room_id, at_least)
    return room_id


def not_blinded(room: dict[str, Any]) -> None:
    if room.get("arena") and not room.get("revealed"):
        raise ConflictError("Vote first: the arena shows who answered only after the vote.")


async def room_json(request: Request, room_id: int) -> dict[str, Any]:
    user = await user_of(request)
    room: dict[str, Any] = await run_in_threadpool(rooms_of(request).get, room_id, user.id)
    room["role"] = await run_in_threadpool(rooms_of(request).role, room_id, user.id, user.group)
    room["me"] = {"id": user.id, "name": user.name}
    room["bounds"] = user.bounds.to_json()  # what the model settings may ask for
    return room


async def blind_mode(request: Request, user: UserInfo) -> bool:
    """Does the user's group chat in blind mode (every new chat an arena battle)?"""
    return await run_in_threadpool(web_state(request).store.system.blind, user.group)
