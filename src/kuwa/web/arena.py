"""The arena's JSON API: start a blinded round, vote, the leaderboard, battles as JSONL."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from kuwa.arena import elo, leaderboard, win_matrix
from kuwa.errors import InvalidRequestError
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.state import state_of
from kuwa.rooms.arena import Arena, draw_pair, round_pool
from kuwa.schemas import JobKind, app
from kuwa.web.core import current_user, page, web_state
from kuwa.web.room_api import require, room_json, runner_of

_rng = random.SystemRandom()


def _arena(request: Request) -> Arena:
    return Arena(web_state(request).store.db)


@page("Room_update_new_chat")
@endpoint(answer=app.Room, status=201, errors=(400, 503))
async def start_round(request: Request) -> Response:
    """Start a blinded battle of two models"""
    user = await current_user(request)
    assert user is not None
    gateway = state_of(request)
    config = await run_in_threadpool(web_state(request).store.system.load)
    live = [code for code, _ in await gateway.chat.live_models(JobKind.CHAT)]
    usable = [m.access_code for m in await gateway.models.usable(user, live)]
    pool = round_pool(config.arena_pool, usable)
    pair = draw_pair(pool, _rng)
    room_id = await run_in_threadpool(_arena(request).start, user.id, pair)
    return JSONResponse(await room_json(request, room_id), status_code=201)


@page("tab_Room")
@endpoint(body=app.Vote, limit=4096, answer=app.Room, errors=(400, 404, 409))
async def vote(request: Request, body: app.Vote) -> Response:
    """Vote on a battle (its owner); the room shows who answered"""
    user = await current_user(request)
    assert user is not None
    room_id = int(request.path_params["room_id"])
    await require(request, room_id, "owner")
    outcome = body.outcome
    names = {code: m.name for code, m in (await state_of(request).models.models()).items()}
    await run_in_threadpool(_arena(request).vote, room_id, user.id, outcome, names)
    await runner_of(request).publish(room_id, {"type": "room"})
    return JSONResponse(await room_json(request, room_id))


def _date(request: Request, name: str) -> dt.date | None:
    value = request.query_params.get(name, "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"{name} must be a date like 2026-11-26", param=name) from None


@page("tab_Room")
@endpoint(query=app.LeaderboardQuery, answer=app.Leaderboard, errors=(400,))
async def ratings(request: Request) -> Response:
    """The arena's leaderboard: scores with their intervals, Elo, the win matrix"""
    since, until = _date(request, "since"), _date(request, "until")
    if since and until and since > until:
        raise InvalidRequestError("since must not be after until", param="since")
    language = request.query_params.get("language", "").strip()[:16] or None
    arena = _arena(request)
    battles = await run_in_threadpool(
        lambda: arena.battles(since=since, until=until, language=language)
    )
    languages = await run_in_threadpool(arena.languages, since, until)
    board: list[dict[str, Any]] = [
        {
            "model": r.model,
            "score": round(r.score, 1),
            "low": round(r.low, 1),
            "high": round(r.high, 1),
            "battles": r.battles,
            "win_rate": round(r.win_rate, 3),
        }
        for r in await run_in_threadpool(leaderboard, battles)
    ]
    return JSONResponse(
        {
            "battles": len(battles),
            "filters": {
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "language": language,
            },
            "languages": languages,
            "leaderboard": board,
            "elo": {k: round(v, 1) for k, v in elo(battles).items()},
            "win_matrix": win_matrix(battles),
        }
    )


@page("Dashboard_read_feedbacks")
@endpoint(media="application/x-ndjson")
async def battles_jsonl(request: Request) -> Response:
    """Every battle, one JSON object a line"""
    return StreamingResponse(
        _arena(request).export_jsonl(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="kuwa-arena-battles.jsonl"'},
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/app/arena", start_round, methods=["POST"]),
        Route("/app/arena/leaderboard", ratings, methods=["GET"]),
        Route("/app/arena/battles.jsonl", battles_jsonl, methods=["GET"]),
        Route("/app/rooms/{room_id:id}/vote", vote, methods=["POST"]),
    ]
