"""The bot store's JSON API (``/app/bots…``): list, create, change, delete, clone, and
``.bot`` files in and out. Who may do what is decided by ``kuwa.bots.store``."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.bots.store import READ_ANY_MODELFILE, Bots, avatar_bytes, avatar_url
from kuwa.errors import (
    KuwaError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.state import state_of
from kuwa.schemas import app
from kuwa.web.core import current_user, page, web_state
from kuwa.web.documents import add_knowledge, bot_knowledge

TAB = "tab_Store"
MAX_BOT_FILE = 2 * 1024 * 1024


def _bots(request: Request) -> Bots:
    return Bots(web_state(request).store.db)


async def _check_base(request: Request, base: object) -> None:
    user = await current_user(request)
    assert user is not None
    if base is not None:
        await state_of(request).models.resolve(user, str(base))


@page(TAB)
@endpoint(query=app.BotsQuery, answer=app.BotList)
async def list_bots(request: Request) -> Response:
    """The bots you may see"""
    user = await current_user(request)
    assert user is not None
    bots = await run_in_threadpool(_bots(request).visible, user, request.query_params.get("q", ""))
    return JSONResponse({"bots": bots})


@page(TAB)
@endpoint(body=app.NewBot, limit=MAX_BOT_FILE, answer=app.Bot, status=201, errors=(400, 404))
async def create_bot(request: Request, body: app.NewBot) -> Response:
    """Create a bot"""
    user = await current_user(request)
    assert user is not None
    fields = body.sent()
    await _check_base(request, fields.get("base"))
    bots = _bots(request)
    bot_id = await run_in_threadpool(lambda: bots.create(user, **fields))
    return JSONResponse(await run_in_threadpool(bots.get, bot_id, user), status_code=201)


@page(TAB)
@endpoint(answer=app.Bot, errors=(404,))
async def get_bot(request: Request) -> Response:
    """A bot"""
    user = await current_user(request)
    assert user is not None
    bot = await run_in_threadpool(_bots(request).get, int(request.path_params["bot_id"]), user)
    return JSONResponse(bot)


@page(TAB)
@endpoint(body=app.BotFields, limit=MAX_BOT_FILE, answer=app.Bot, errors=(400, 404))
async def update_bot(request: Request, body: app.BotFields) -> Response:
    """Change a bot (its owner; the fields sent)"""
    user = await current_user(request)
    assert user is not None
    bot_id = int(request.path_params["bot_id"])
    fields = body.sent()
    await _check_base(request, fields.get("base"))
    bots = _bots(request)
    await run_in_threadpool(lambda: bots.update(bot_id, user, **fields))
    return JSONResponse(await run_in_threadpool(bots.get, bot_id, user))


@page(TAB)
@endpoint(answer=app.Empty, errors=(404,))
async def delete_bot(request: Request) -> Response:
    """Delete a bot (its owner)"""
    user = await current_user(request)
    assert user is not None
    await run_in_threadpool(_bots(request).delete, int(request.path_params["bot_id"]), user)
    return JSONResponse({})


@page("Store_create_private_bot")
@endpoint(answer=app.Bot, status=201, errors=(404,))
async def clone_bot(request: Request) -> Response:
    """Copy a bot as your private bot"""
    user = await current_user(request)
    assert user is not None
    bots = _bots(request)
    source = await run_in_threadpool(bots.get, int(request.path_params["bot_id"]), user)
    if source["modelfile"] is None:
        raise PermissionDeniedError(
            f"Cloning copies the Modelfile, which needs {READ_ANY_MODELFILE}."
        )
    copy = {k: source[k] for k in ("description", "base", "modelfile", "avatar", "react_buttons")}
    bot_id = await run_in_threadpool(
        lambda: bots.create(user, name=f"{source['name']} (copy)", visibility="private", **copy)
    )
    return JSONResponse(await run_in_threadpool(bots.get, bot_id, user), status_code=201)


@page(TAB)
@endpoint(media="multipart/related", errors=(404,))
async def export_bot(request: Request) -> Response:
    """A bot as a .bot file (with its knowledge)"""
    from kuwa.bots.botfile import BotFile, dump

    user = await current_user(request)
    assert user is not None
    bot = await run_in_threadpool(_bots(request).get, int(request.path_params["bot_id"]), user)
    if bot["modelfile"] is None:
        raise PermissionDeniedError(
            f"Exporting includes the Modelfile, which needs {READ_ANY_MODELFILE}."
        )
    avatar, avatar_type = avatar_bytes(bot["avatar"])
    knowledge = await run_in_threadpool(bot_knowledge, request, int(bot["id"]))
    data = dump(
        BotFile(
            name=bot["name"],
            description=bot["description"],
            base=bot["base"],
            modelfile=bot["modelfile"],
            avatar=avatar,
            avatar_type=avatar_type,
            knowledge=knowledge,
        ),
        max_bytes=_max_bot_file(request),
    )
    return Response(
        data,
        media_type="multipart/related",
        headers={"Content-Disposition": f'attachment; filename="bot-{bot["id"]}.bot"'},
    )


@page("Store_create_private_bot")
@endpoint(upload=("multipart/related",), answer=app.Bot, status=201, errors=(400, 413))
async def import_bot(request: Request) -> Response:
    """Import a .bot file as your private bot

    The body is a ``.bot`` file; the bot becomes a private bot of the importer."""
    from kuwa.bots.botfile import load

    user = await current_user(request)
    assert user is not None
    limit = _max_bot_file(request)
    data = b""
    async for part in request.stream():
        data += part
        if len(data) > limit:
            raise PayloadTooLargeError(f"A .bot file may be at most {limit} bytes.")
    parsed = await run_in_threadpool(load, data, limit)
    await _check_base(request, parsed.base)
    bots = _bots(request)
    avatar = avatar_url(parsed.avatar, parsed.avatar_type)
    bot_id = await run_in_threadpool(
        lambda: bots.create(
            user,
            name=parsed.name,
            description=parsed.description,
            base=parsed.base,
            modelfile=parsed.modelfile,
            avatar=avatar,
            visibility="private",
        )
    )
    try:
        await add_knowledge(request, user, bot_id, parsed.knowledge)
    except KuwaError:
        await run_in_threadpool(bots.delete, bot_id, user)
        raise
    return JSONResponse(await run_in_threadpool(bots.get, bot_id, user), status_code=201)


def _max_bot_file(request: Request) -> int:
    """A .bot file may carry its knowledge: room for about four files of the upload limit."""
    return MAX_BOT_FILE + 4 * web_state(request).settings.files_max_bytes


def routes() -> list[BaseRoute]:
    return [
        Route("/app/bots", list_bots, methods=["GET"]),
        Route("/app/bots", create_bot, methods=["POST"]),
        Route("/app/bots/import", import_bot, methods=["POST"]),
        Route("/app/bots/{bot_id:id}", get_bot, methods=["GET"]),
        Route("/app/bots/{bot_id:id}", update_bot, methods=["POST"]),
        Route("/app/bots/{bot_id:id}/delete", delete_bot, methods=["POST"]),
        Route("/app/bots/{bot_id:id}/clone", clone_bot, methods=["POST"]),
        Route("/app/bots/{bot_id:id}/export", export_bot, methods=["GET"]),
    ]
