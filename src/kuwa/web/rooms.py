"""The chat UI's pages (``/``, ``/rooms/{id}``) and its JSON API (``/app/…``) for rooms,
messages and events, as specified in docs/web-app-api.md; sharing and read-only links are in
``kuwa.web.sharing``, export and import in ``kuwa.web.transfer``. Parse → call → wrap; room
access is checked by ``Rooms.require``."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import UserInfo
from kuwa.bots.store import Bots, bot_id_of
from kuwa.errors import (
    ConflictError,
    InvalidRequestError,
    PermissionDeniedError,
)
from kuwa.gateway.chat import serves
from kuwa.gateway.http import JSONResponse, read_json
from kuwa.gateway.sse import SSEResponse
from kuwa.gateway.state import state_of
from kuwa.rooms import Feedbacks, Rooms
from kuwa.rooms.model_settings import check_settings
from kuwa.schemas import JobKind
from kuwa.web.arena import blind_mode
from kuwa.web.core import (
    current_user,
    error_page,
    page,
    render,
    system_config,
    ui_lang,
    web_state,
)
from kuwa.web.documents import citations_for, delete_room_files
from kuwa.web.live import LANGUAGES, RoomRunner, room_events

TAB = "tab_Room"
NEW_CHAT = "Room_update_new_chat"
SEND = "Room_update_send_message"
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
MAX_BODY = 1024 * 1024


async def _user(request: Request) -> UserInfo:
    user = await current_user(request)
    assert user is not None  # page() let only a signed-in user through
    return user


def _rooms(request: Request) -> Rooms:
    rooms: Rooms = web_state(request).rooms
    return rooms


def _runner(request: Request) -> RoomRunner:
    runner: RoomRunner = web_state(request).runner
    return runner


def _id(request: Request, name: str) -> int:
    return int(request.path_params[name])


async def _body(request: Request) -> dict[str, Any]:
    body = await read_json(request, MAX_BODY)
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return body


async def _require(request: Request, room_id: int, at_least: str) -> str:
    user = await _user(request)
    return await run_in_threadpool(_rooms(request).require, room_id, user.id, user.group, at_least)


def _not_blinded(room: dict[str, Any]) -> None:
    if room.get("arena") and not room.get("revealed"):
        raise ConflictError("Vote first: the arena shows who answered only after the vote.")


async def _resolve(request: Request, user: UserInfo, code: str) -> None:
    """A room may hold models and bots (``bot:ID``): the user must be allowed both the bot
    and its base model."""
    bot_id = bot_id_of(code)
    if bot_id is not None:
        code, _ = await run_in_threadpool(Bots(_rooms(request).db).for_job, bot_id, user)
    await state_of(request).models.resolve(user, code)


async def _room_json(request: Request, room_id: int) -> dict[str, Any]:
    user = await _user(request)
    room: dict[str, Any] = await run_in_threadpool(_rooms(request).get, room_id, user.id)
    room["role"] = await run_in_threadpool(_rooms(request).role, room_id, user.id, user.group)
    room["me"] = {"id": user.id, "name": user.name}
    room["bounds"] = user.bounds.to_json()  # what the model settings may ask for
    return room


async def _shell(request: Request, room_id: int | None) -> Response:
    user = await _user(request)
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
async def chat_home(request: Request) -> Response:
    return await _shell(request, None)


@page("tab_Store")
async def store_page(request: Request) -> Response:
    """The bot store, inside the chat app."""
    return await _shell(request, None)


@page(TAB)
async def arena_page(request: Request) -> Response:
    """The arena (start a battle) and its leaderboard, inside the chat app."""
    return await _shell(request, None)


@page(TAB)
async def trash_page(request: Request) -> Response:
    """The trash (deleted rooms and answers), inside the chat app."""
    return await _shell(request, None)


@page(TAB)
async def room_page(request: Request) -> Response:
    user = await _user(request)
    room_id = _id(request, "room_id")
    if await run_in_threadpool(_rooms(request).role, room_id, user.id, user.group) is None:
        return error_page(request, 404, "There is no such room, or it is not shared with you.")
    return await _shell(request, room_id)


# --- models and rooms -----------------------------------------------------------------------
@page(TAB)
async def app_models(request: Request) -> Response:
    user = await _user(request)
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
    bots: list[dict[str, Any]] = Bots(_rooms(request).db).visible(user)
    return bots


@page(TAB)
async def app_rooms(request: Request) -> Response:
    user = await _user(request)
    search = request.query_params.get("q", "")
    rooms = await run_in_threadpool(_rooms(request).list_rooms, user.id, user.group, search)
    return JSONResponse({"rooms": rooms})


@page(NEW_CHAT)
async def app_create_room(request: Request) -> Response:
    user = await _user(request)
    body = await _body(request)
    models = body.get("models")
    if await blind_mode(request, user):
        raise PermissionDeniedError(
            "Your group chats in blind mode: start a battle in the arena instead.",
            code="blind_mode",
        )
    if not isinstance(models, list) or not models:
        raise InvalidRequestError("Choose at least one model.", param="models")
    for code in models:
        await _resolve(request, user, str(code))
    room_id = await run_in_threadpool(
        lambda: _rooms(request).create(
            user.id, [str(m) for m in models], chained=bool(body.get("chained", True))
        )
    )
    return JSONResponse(await _room_json(request, room_id), status_code=201)


@page(TAB)
async def app_room(request: Request) -> Response:
    room_id = _id(request, "room_id")
    await _require(request, room_id, "viewer")
    return JSONResponse(await _room_json(request, room_id))


@page(TAB)
async def app_update_room(request: Request) -> Response:
    room_id = _id(request, "room_id")
    await _require(request, room_id, "owner")
    body = await _body(request)
    models = body.get("models")
    if models is not None:
        if not isinstance(models, list):
            raise InvalidRequestError("models must be a list of access codes", param="models")
        for code in models:
            await _resolve(request, await _user(request), str(code))
    chained = body.get("chained")
    title = body.get("title")
    settings = None
    if body.get("model_settings") is not None:
        user = await _user(request)
        shown = (
            models
            if models is not None
            else await run_in_threadpool(_rooms(request).models_of, room_id)
        )
        settings = check_settings(body["model_settings"], [str(m) for m in shown], user.bounds)
    await run_in_threadpool(
        lambda: _rooms(request).update(
            room_id,
            title=str(title) if title is not None else None,
            chained=bool(chained) if chained is not None else None,
            models=[str(m) for m in models] if models is not None else None,
            model_settings=settings,
        )
    )
    await _runner(request).publish(room_id, {"type": "room"})
    return JSONResponse(await _room_json(request, room_id))


@page(DELETE_ROOM)
async def app_delete_room(request: Request) -> Response:
    room_id = _id(request, "room_id")
    await _require(request, room_id, "owner")
    await _runner(request).stop(room_id)
    await run_in_threadpool(_rooms(request).delete, room_id)
    await run_in_threadpool(delete_room_files, request, room_id)
    await _runner(request).publish(room_id, {"type": "deleted"})
    return JSONResponse({})


# --- messages -------------------------------------------------------------------------------
@page(SEND)
async def app_send(request: Request) -> Response:
    user = await _user(request)
    room_id = _id(request, "room_id")
    await _require(request, room_id, "participant")
    body = await _body(request)
    content = body.get("content")
    if not isinstance(content, str):
        raise InvalidRequestError("content must be text", param="content")
    room = await run_in_threadpool(
        lambda: _rooms(request).get(room_id, user.id, with_messages=False)
    )
    real = await run_in_threadpool(_rooms(request).models_of, room_id)
    shown = dict(zip(room["models"], real, strict=True))  # arena labels -> their models
    models = body.get("models") or room["models"]
    if not isinstance(models, list) or not set(models) <= set(room["models"]):
        raise InvalidRequestError("Send to models of this room only.", param="models")
    models = [shown[m] for m in room["models"] if m in models]  # room order
    branch = "parent" in body
    parent = body.get("parent")
    if branch and parent is not None:
        parent_row = await run_in_threadpool(_rooms(request).raw, int(parent))
        if parent_row["room"] != room_id or parent_row["role"] != "user":
            raise InvalidRequestError("parent must be a prompt of this room", param="parent")
    citations = await citations_for(request, user, room_id, content, models)
    prompt_id, answer_ids = await run_in_threadpool(
        lambda: _rooms(request).add_prompt(
            room_id,
            user.id,
            content,
            models,
            parent=int(parent) if parent is not None else None,
            branch=branch,
            citations=citations,
        )
    )
    runner = _runner(request)
    if not room["title"]:
        await runner.publish(room_id, {"type": "room"})  # the first prompt named the room
    await runner.publish(room_id, {"type": "message", "id": prompt_id})
    for answer_id, code in zip(answer_ids, models, strict=True):
        await runner.publish(room_id, {"type": "message", "id": answer_id})
        await runner.answer(user, room_id, answer_id, code, ui_lang(request))
    rooms = _rooms(request)
    prompt = await run_in_threadpool(rooms.message, prompt_id, user.id)
    answers = [await run_in_threadpool(rooms.message, a, user.id) for a in answer_ids]
    return JSONResponse({"prompt": prompt, "answers": answers}, status_code=201)


@page(TAB)
async def app_stop(request: Request) -> Response:
    room_id = _id(request, "room_id")
    await _require(request, room_id, "participant")
    return JSONResponse({"stopped": await _runner(request).stop(room_id)})


async def _message_room(request: Request, at_least: str) -> tuple[int, int]:
    message_id = _id(request, "message_id")
    room_id = await run_in_threadpool(_rooms(request).room_of, message_id)
    await _require(request, room_id, at_least)
    return message_id, room_id


@page(SEND)
async def app_regenerate(request: Request) -> Response:
    user = await _user(request)
    message_id, room_id = await _message_room(request, "participant")
    new_id = await run_in_threadpool(_rooms(request).regenerate, message_id)
    row = await run_in_threadpool(_rooms(request).raw, new_id)
    await _announce_siblings(request, room_id, new_id)
    await _runner(request).answer(user, room_id, new_id, str(row["model"]), ui_lang(request))
    return JSONResponse(await run_in_threadpool(_rooms(request).message, new_id, user.id))


async def _announce_siblings(request: Request, room_id: int, message_id: int) -> None:
    rooms = _rooms(request)
    row = await run_in_threadpool(rooms.raw, message_id)
    user = await _user(request)
    siblings = [
        m["id"]
        for m in await run_in_threadpool(rooms.messages, room_id, user.id)
        if m["parent"] == row["parent"]
        and m["role"] == row["role"]
        and m.get("model") == row["model"]
    ]
    for sibling in siblings:
        await _runner(request).publish(room_id, {"type": "message", "id": sibling})


@page(TAB)
async def app_select(request: Request) -> Response:
    message_id, room_id = await _message_room(request, "participant")
    await run_in_threadpool(_rooms(request).select, message_id)
    await _announce_siblings(request, room_id, message_id)
    return JSONResponse({})


@page(TAB)
async def app_delete_message(request: Request) -> Response:
    user = await _user(request)
    message_id, room_id = await _message_room(request, "participant")
    row = await run_in_threadpool(_rooms(request).raw, message_id)
    role = await run_in_threadpool(_rooms(request).role, room_id, user.id, user.group)
    if role != "owner" and row["role"] == "user" and row["author"] != user.id:
        raise PermissionDeniedError("Only the room's owner may delete others' prompts.")
    await run_in_threadpool(_rooms(request).delete_message, message_id)
    await _runner(request).publish(room_id, {"type": "message", "id": message_id})
    return JSONResponse({})


@page(FEEDBACK)
async def app_feedback(request: Request) -> Response:
    user = await _user(request)
    message_id, _ = await _message_room(request, "viewer")
    body = await _body(request)
    flags, comment = body.get("flags"), body.get("comment")
    if (flags or comment) and not user.can(DETAIL_FEEDBACK):
        raise PermissionDeniedError("Your account may not give detailed feedback.")
    if flags is not None and not isinstance(flags, list):
        raise InvalidRequestError("flags must be a list", param="flags")
    rating = body.get("rating", 0)
    if not isinstance(rating, int):
        raise InvalidRequestError("rating must be 1, -1 or 0", param="rating")
    await run_in_threadpool(
        lambda: Feedbacks(_rooms(request).db).save(
            message_id,
            user.id,
            rating,
            [str(f) for f in flags] if flags is not None else None,
            str(comment) if comment is not None else None,
        )
    )
    return JSONResponse(await run_in_threadpool(_rooms(request).message, message_id, user.id))


@page(REACT)
async def app_translate(request: Request) -> Response:
    user = await _user(request)
    message_id, room_id = await _message_room(request, "participant")
    body = await _body(request)
    lang = str(body.get("lang") or ui_lang(request))
    if lang not in LANGUAGES:
        raise InvalidRequestError(f"lang must be one of {', '.join(LANGUAGES)}", param="lang")
    row = await run_in_threadpool(_rooms(request).raw, message_id)
    if row["role"] != "assistant" or row["status"] != "done":
        raise InvalidRequestError("Only finished answers can be translated.", param="message")
    model = str(body.get("model") or row["model"])
    bot_id = bot_id_of(model)
    if bot_id is not None:  # a bot's answer is translated by its base model
        model, _ = await run_in_threadpool(Bots(_rooms(request).db).for_job, bot_id, user)
    await state_of(request).models.resolve(user, model)
    await _runner(request).translate(user, room_id, message_id, model, lang)
    return JSONResponse(await run_in_threadpool(_rooms(request).message, message_id, user.id))


@page(TAB)
async def app_events(request: Request) -> Response:
    user = await _user(request)
    room_id = _id(request, "room_id")
    await _require(request, room_id, "viewer")
    return SSEResponse(room_events(_runner(request), user, room_id))


def routes() -> list[BaseRoute]:
    return [
        Route("/", chat_home, methods=["GET"]),
        Route("/rooms/{room_id:int}", room_page, methods=["GET"]),
        Route("/store", store_page, methods=["GET"]),
        Route("/arena", arena_page, methods=["GET"]),
        Route("/trash", trash_page, methods=["GET"]),
        Route("/app/models", app_models, methods=["GET"]),
        Route("/app/rooms", app_rooms, methods=["GET"]),
        Route("/app/rooms", app_create_room, methods=["POST"]),
        Route("/app/rooms/{room_id:int}", app_room, methods=["GET"]),
        Route("/app/rooms/{room_id:int}", app_update_room, methods=["POST"]),
        Route("/app/rooms/{room_id:int}/delete", app_delete_room, methods=["POST"]),
        Route("/app/rooms/{room_id:int}/messages", app_send, methods=["POST"]),
        Route("/app/rooms/{room_id:int}/stop", app_stop, methods=["POST"]),
        Route("/app/rooms/{room_id:int}/events", app_events, methods=["GET"]),
        Route("/app/messages/{message_id:int}/regenerate", app_regenerate, methods=["POST"]),
        Route("/app/messages/{message_id:int}/select", app_select, methods=["POST"]),
        Route("/app/messages/{message_id:int}/delete", app_delete_message, methods=["POST"]),
        Route("/app/messages/{message_id:int}/feedback", app_feedback, methods=["POST"]),
        Route("/app/messages/{message_id:int}/translate", app_translate, methods=["POST"]),
    ]
