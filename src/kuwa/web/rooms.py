"""The chat UI's pages (``/``, ``/rooms/{id}``) and its JSON API (``/app/…``) for rooms,
messages and events, as specified in docs/web-app-api.md; sharing and read-only links are in
``kuwa.web.sharing``, export and import in ``kuwa.web.transfer``. Parse → call → wrap; room
access is checked by ``Rooms.require``."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import UserInfo
from kuwa.bots.store import Bots, bot_id_of
from kuwa.errors import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from kuwa.gateway.chat import serves
from kuwa.gateway.endpoint import HTML, SSE, endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.sse import SSEResponse
from kuwa.gateway.state import state_of
from kuwa.rooms import Feedbacks
from kuwa.rooms.model_settings import check_settings
from kuwa.schemas import JobKind, app
from kuwa.web.core import (
    error_page,
    page,
    render,
    system_config,
    ui_lang,
)
from kuwa.web.documents import citations_for, delete_room_files
from kuwa.web.live import LANGUAGES, room_events
from kuwa.web.room_api import (
    SEND,
    TAB,
    blind_mode,
    path_id,
    path_room,
    require,
    room_json,
    rooms_of,
    runner_of,
    user_of,
)

NEW_CHAT = "Room_update_new_chat"
DELETE_ROOM = "Room_delete_chatroom"
FEEDBACK = "Room_update_feedback"
DETAIL_FEEDBACK = "Room_update_detail_feedback"
REACT = "Room_update_react_message"
UI_PERMISSIONS = (
    NEW_CHAT,
    SEND,
    DELETE_ROOM,
    FEEDBACK,
    DETAIL_FEEDBACK,
    REACT,
    "Room_update_import_chat",
    "Room_read_export_chat",
    "Room_update_upload_file",
    "Dashboard_read_feedbacks",  # the arena's battle export
)
STORE_PERMISSIONS = (
    "tab_Store",
    "tab_Manage",
    "Store_create_community_bot",
    "Store_create_group_bot",
    "Store_create_private_bot",
    "Store_update_modify_bot",
    "Store_delete_delete_bot",
    "Store_read_any_modelfile",
)


async def _resolve(request: Request, user: UserInfo, code: str) -> None:
    """A room may hold models and bots (``bot:ID``): the user must be allowed both the bot
    and its base model."""
    bot_id = bot_id_of(code)
    if bot_id is not None:
        code, _ = await run_in_threadpool(Bots(rooms_of(request).db).for_job, bot_id, user)
    await state_of(request).models.resolve(user, code)


async def _shell(request: Request, room_id: int | None) -> Response:
    user = await user_of(request)
    lang = ui_lang(request)
    config = {
        "room_id": room_id,
        "me": {"id": user.id, "name": user.name, "email": user.email},
        "lang": lang,
        "perms": [p for p in (TAB, *UI_PERMISSIONS, *STORE_PERMISSIONS) if user.can(p)],
        "blind": await blind_mode(request, user),
        "trash_days": (await system_config(request)).trash_days,
    }
    return await render(request, "chat.html", room_id=room_id, lang=lang, config=config)


# --- pages ----------------------------------------------------------------------------------
@page(TAB)
@endpoint("The chat app", media=HTML)
async def chat_home(request: Request) -> Response:
    return await _shell(request, None)


@page("tab_Store")
@endpoint(media=HTML)
async def store_page(request: Request) -> Response:
    """The bot store, inside the chat app."""
    return await _shell(request, None)


@page(TAB)
@endpoint(media=HTML)
async def arena_page(request: Request) -> Response:
    """The arena (start a battle) and its leaderboard, inside the chat app."""
    return await _shell(request, None)


@page(TAB)
@endpoint(media=HTML)
async def trash_page(request: Request) -> Response:
    """The trash (deleted rooms and answers), inside the chat app."""
    return await _shell(request, None)


@page(TAB)
@endpoint(media=HTML)
async def room_page(request: Request) -> Response:
    """A room, in the chat app."""
    user = await user_of(request)
    room_id = path_id(request, "room_id")
    if await run_in_threadpool(rooms_of(request).role, room_id, user.id, user.group) is None:
        return error_page(request, 404, "There is no such room, or it is not shared with you.")
    return await _shell(request, room_id)


# --- models and rooms -----------------------------------------------------------------------
@page(TAB)
@endpoint(answer=app.Catalog)
async def app_models(request: Request) -> Response:
    """The models and bots you may chat with"""
    user = await user_of(request)
    gateway = state_of(request)
    served = await gateway.chat.live_models()
    live = {code for code, _ in served}
    await gateway.models.usable(user, sorted(live))  # registers served codes on first sight
    catalog = await gateway.models.models()
    # Embedding models (their executors serve no chats) are for /v1/embeddings and documents.
    no_chat = {code for code, meta in served if not serves(meta, JobKind.CHAT)}
    models = [
        {
            "code": m.access_code,
            "name": m.name,
            "description": m.description,
            "image": m.image,
            "order": m.order,
            "react_buttons": list(m.react_buttons),
            "live": m.access_code in live,
        }
        for m in sorted(catalog.values(), key=lambda m: (m.order, m.name))
        if m.enabled
        and gateway.models.allowed(user, m.access_code)
        and m.access_code not in no_chat
    ]
    usable = {m["code"] for m in models}
    bots = [
        {**b, "live": b["base"] in live}
        for b in await run_in_threadpool(_bots_for, request, user)
        if b["base"] in usable
    ]
    return JSONResponse({"models": models, "bots": bots})


def _bots_for(request: Request, user: UserInfo) -> list[dict[str, Any]]:
    bots: list[dict[str, Any]] = Bots(rooms_of(request).db).visible(user)
    return bots


@page(TAB)
@endpoint(query=app.RoomsQuery, answer=app.RoomList)
async def app_rooms(request: Request) -> Response:
    """Your rooms (owned and shared), newest first"""
    user = await user_of(request)
    search = request.query_params.get("q", "")
    rooms = await run_in_threadpool(rooms_of(request).list_rooms, user.id, user.group, search)
    return JSONResponse({"rooms": rooms})


@page(NEW_CHAT)
@endpoint(body=app.NewRoom, answer=app.Room, status=201, errors=(400, 404))
async def app_create_room(request: Request, body: app.NewRoom) -> Response:
    """Create a room"""
    user = await user_of(request)
    if await blind_mode(request, user):
        raise PermissionDeniedError(
            "Your group chats in blind mode: start a battle in the arena instead.",
            code="blind_mode",
        )
    for code in body.models:
        await _resolve(request, user, code)
    room_id = await run_in_threadpool(
        lambda: rooms_of(request).create(user.id, body.models, chained=body.chained)
    )
    return JSONResponse(await room_json(request, room_id), status_code=201)


@page(TAB)
@endpoint(answer=app.Room, errors=(404,))
async def app_room(request: Request) -> Response:
    """A room with its messages"""
    room_id = await path_room(request, "viewer")
    return JSONResponse(await room_json(request, room_id))


@page(TAB)
@endpoint(body=app.RoomChange, answer=app.Room, errors=(400, 404, 409))
async def app_update_room(request: Request, body: app.RoomChange) -> Response:
    """Change a room (owner)"""
    room_id = await path_room(request, "owner")
    models = body.models
    if models is not None:
        for code in models:
            await _resolve(request, await user_of(request), code)
    settings = None
    if body.model_settings is not None:
        user = await user_of(request)
        shown = (
            models
            if models is not None
            else await run_in_threadpool(rooms_of(request).models_of, room_id)
        )
        settings = check_settings(body.model_settings, [str(m) for m in shown], user.bounds)
    await run_in_threadpool(
        lambda: rooms_of(request).update(
            room_id,
            title=body.title,
            chained=body.chained,
            models=models,
            model_settings=settings,
        )
    )
    await runner_of(request).publish(room_id, {"type": "room"})
    return JSONResponse(await room_json(request, room_id))


@page(DELETE_ROOM)
@endpoint(answer=app.Empty, errors=(404,))
async def app_delete_room(request: Request) -> Response:
    """Delete a room (owner; it goes to the trash)"""
    room_id = await path_room(request, "owner")
    await runner_of(request).stop(room_id)
    await run_in_threadpool(rooms_of(request).delete, room_id)
    await run_in_threadpool(delete_room_files, request, room_id)
    await runner_of(request).publish(room_id, {"type": "deleted"})
    return JSONResponse({})


# --- messages -------------------------------------------------------------------------------
@page(SEND)
@endpoint(body=app.Prompt, answer=app.Sent, status=201, errors=(400, 404, 429, 503))
async def app_send(request: Request, body: app.Prompt) -> Response:
    """Send a prompt to the room's models"""
    user = await user_of(request)
    room_id = await path_room(request, "participant")
    content = body.content
    room = await run_in_threadpool(
        lambda: rooms_of(request).get(room_id, user.id, with_messages=False)
    )
    real = await run_in_threadpool(rooms_of(request).models_of, room_id)
    shown = dict(zip(room["models"], real, strict=True))  # arena labels -> their models
    models = body.models or room["models"]
    if not set(models) <= set(room["models"]):
        raise InvalidRequestError("Send to models of this room only.", param="models")
    models = [shown[m] for m in room["models"] if m in models]  # room order
    branch = body.parent is not UNSET  # "parent": null is a branch too: a new first prompt
    parent = body.parent if isinstance(body.parent, int) else None
    if parent is not None:
        parent_row = await run_in_threadpool(rooms_of(request).raw, int(parent))
        if parent_row["room"] != room_id or parent_row["role"] != "user":
            raise InvalidRequestError("parent must be a prompt of this room", param="parent")
    citations = await citations_for(request, user, room_id, content, models)
    prompt_id, answer_ids = await run_in_threadpool(
        lambda: rooms_of(request).add_prompt(
            room_id,
            user.id,
            content,
            models,
            parent=parent,
            branch=branch,
            citations=citations,
        )
    )
    runner = runner_of(request)
    if not room["title"]:
        await runner.publish(room_id, {"type": "room"})  # the first prompt named the room
    await runner.publish(room_id, {"type": "message", "id": prompt_id})
    for answer_id, code in zip(answer_ids, models, strict=True):
        await runner.publish(room_id, {"type": "message", "id": answer_id})
        await runner.answer(user, room_id, answer_id, code, ui_lang(request))
    rooms = rooms_of(request)
    prompt = await run_in_threadpool(rooms.message, prompt_id, user.id)
    answers = [await run_in_threadpool(rooms.message, a, user.id) for a in answer_ids]
    return JSONResponse({"prompt": prompt, "answers": answers}, status_code=201)


@page(TAB)
@endpoint(answer=app.Stopped, errors=(404,))
async def app_stop(request: Request) -> Response:
    """Stop every running answer of the room"""
    room_id = await path_room(request, "participant")
    return JSONResponse({"stopped": await runner_of(request).stop(room_id)})


async def _message_room(request: Request, at_least: str) -> tuple[int, int]:
    """The message's id and its room's, if the user holds ``at_least`` that role in the room.

    A message in a room the user cannot see is the same 404 as one that does not exist:
    naming its room would tell that the message exists, and where."""
    message_id = path_id(request, "message_id")
    room_id = await run_in_threadpool(rooms_of(request).room_of, message_id)
    try:
        await require(request, room_id, at_least)
    except NotFoundError:
        raise NotFoundError(
            f"There is no message {message_id} of yours.", param="message"
        ) from None
    return message_id, room_id


@page(SEND)
@endpoint(answer=app.AppMessage, errors=(400, 404, 429, 503))
async def app_regenerate(request: Request) -> Response:
    """Answer a prompt again (a new sibling answer)"""
    user = await user_of(request)
    message_id, room_id = await _message_room(request, "participant")
    new_id = await run_in_threadpool(rooms_of(request).regenerate, message_id)
    row = await run_in_threadpool(rooms_of(request).raw, new_id)
    await _announce_siblings(request, room_id, new_id)
    await runner_of(request).answer(user, room_id, new_id, str(row["model"]), ui_lang(request))
    return JSONResponse(await run_in_threadpool(rooms_of(request).message, new_id, user.id))


async def _announce_siblings(request: Request, room_id: int, message_id: int) -> None:
    rooms = rooms_of(request)
    row = await run_in_threadpool(rooms.raw, message_id)
    user = await user_of(request)
    siblings = [
        m["id"]
        for m in await run_in_threadpool(rooms.messages, room_id, user.id)
        if m["parent"] == row["parent"]
        and m["role"] == row["role"]
        and m.get("model") == row["model"]
    ]
    for sibling in siblings:
        await runner_of(request).publish(room_id, {"type": "message", "id": sibling})


@page(TAB)
@endpoint(answer=app.Empty, errors=(404,))
async def app_select(request: Request) -> Response:
    """Show this one of its siblings"""
    message_id, room_id = await _message_room(request, "participant")
    await run_in_threadpool(rooms_of(request).select, message_id)
    await _announce_siblings(request, room_id, message_id)
    return JSONResponse({})


@page(TAB)
@endpoint(answer=app.Empty, errors=(404,))
async def app_delete_message(request: Request) -> Response:
    """Delete a message (it goes to the trash)"""
    user = await user_of(request)
    message_id, room_id = await _message_room(request, "participant")
    row = await run_in_threadpool(rooms_of(request).raw, message_id)
    role = await run_in_threadpool(rooms_of(request).role, room_id, user.id, user.group)
    if role != "owner" and row["role"] == "user" and row["author"] != user.id:
        raise PermissionDeniedError("Only the room's owner may delete others' prompts.")
    await run_in_threadpool(rooms_of(request).delete_message, message_id)
    await runner_of(request).publish(room_id, {"type": "message", "id": message_id})
    return JSONResponse({})


@page(FEEDBACK)
@endpoint(body=app.Feedback, answer=app.AppMessage, errors=(400, 404))
async def app_feedback(request: Request, body: app.Feedback) -> Response:
    """Rate an answer (with flags and a comment: detailed feedback)"""
    user = await user_of(request)
    message_id, _ = await _message_room(request, "viewer")
    if (body.flags or body.comment) and not user.can(DETAIL_FEEDBACK):
        raise PermissionDeniedError("Your account may not give detailed feedback.")
    await run_in_threadpool(
        lambda: Feedbacks(rooms_of(request).db).save(
            message_id, user.id, body.rating, body.flags, body.comment
        )
    )
    return JSONResponse(await run_in_threadpool(rooms_of(request).message, message_id, user.id))


@page(REACT)
@endpoint(body=app.Translate, answer=app.AppMessage, errors=(400, 404, 429, 503))
async def app_translate(request: Request, body: app.Translate) -> Response:
    """Translate an answer (it streams into the message's translation)"""
    user = await user_of(request)
    message_id, room_id = await _message_room(request, "participant")
    lang = body.lang or ui_lang(request)
    if lang not in LANGUAGES:
        raise InvalidRequestError(f"lang must be one of {', '.join(LANGUAGES)}", param="lang")
    row = await run_in_threadpool(rooms_of(request).raw, message_id)
    if row["role"] != "assistant" or row["status"] != "done":
        raise InvalidRequestError("Only finished answers can be translated.", param="message")
    model = body.model or str(row["model"])
    bot_id = bot_id_of(model)
    if bot_id is not None:  # a bot's answer is translated by its base model
        model, _ = await run_in_threadpool(Bots(rooms_of(request).db).for_job, bot_id, user)
    await state_of(request).models.resolve(user, model)
    await runner_of(request).translate(user, room_id, message_id, model, lang)
    return JSONResponse(await run_in_threadpool(rooms_of(request).message, message_id, user.id))


@page(TAB)
@endpoint(media=SSE, events=app.ROOM_EVENTS)
async def app_events(request: Request) -> Response:
    """The room's live events"""
    user = await user_of(request)
    room_id = await path_room(request, "viewer")
    return SSEResponse(room_events(runner_of(request), user, room_id))


def routes() -> list[BaseRoute]:
    return [
        Route("/", chat_home, methods=["GET"]),
        Route("/rooms/{room_id:id}", room_page, methods=["GET"]),
        Route("/store", store_page, methods=["GET"]),
        Route("/arena", arena_page, methods=["GET"]),
        Route("/trash", trash_page, methods=["GET"]),
        Route("/app/models", app_models, methods=["GET"]),
        Route("/app/rooms", app_rooms, methods=["GET"]),
        Route("/app/rooms", app_create_room, methods=["POST"]),
        Route("/app/rooms/{room_id:id}", app_room, methods=["GET"]),
        Route("/app/rooms/{room_id:id}", app_update_room, methods=["POST"]),
        Route("/app/rooms/{room_id:id}/delete", app_delete_room, methods=["POST"]),
        Route("/app/rooms/{room_id:id}/messages", app_send, methods=["POST"]),
        Route("/app/rooms/{room_id:id}/stop", app_stop, methods=["POST"]),
        Route("/app/rooms/{room_id:id}/events", app_events, methods=["GET"]),
        Route("/app/messages/{message_id:id}/regenerate", app_regenerate, methods=["POST"]),
        Route("/app/messages/{message_id:id}/select", app_select, methods=["POST"]),
        Route("/app/messages/{message_id:id}/delete", app_delete_message, methods=["POST"]),
        Route("/app/messages/{message_id:id}/feedback", app_feedback, methods=["POST"]),
        Route("/app/messages/{message_id:id}/translate", app_translate, methods=["POST"]),
    ]
