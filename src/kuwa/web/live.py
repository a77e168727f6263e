"""Rooms live: running the answers of a room, and each open room's one event stream.

:class:`RoomRunner` starts a job per answer (through the same checks as the API: model
access, the group's limits) and keeps it in the database when it ends, whether or not
anybody watches. Every change is announced on the room's Redis channel, so every gateway's
viewers hear of it. :func:`room_events` is one SSE stream per open room that multiplexes the
room's announcements with the text of every running answer (replayed from the job's
transcript when a viewer arrives mid-stream), presence, and access changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from kuwa import keys
from kuwa.accounts import UserInfo
from kuwa.bots.store import Bots, bot_id_of
from kuwa.errors import JobFailedError, KuwaError
from kuwa.gateway.chat import ChatStream
from kuwa.gateway.sse import KEEP_ALIVE, named_event
from kuwa.gateway.start import start_chat
from kuwa.gateway.state import GatewayState
from kuwa.rooms import Rooms, model_settings
from kuwa.schemas import ChatRequest
from kuwa.schemas.chat import Message, Passage

log = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 15.0
PRESENCE_TTL = 30.0
SETTLE_GRACE = 5.0  # seconds the gateway that ran an answer has to save it
LANGUAGES = {"en": "English", "zh-TW": "Traditional Chinese (繁體中文, Taiwan)"}


class RoomRunner:
    def __init__(self, state: GatewayState, rooms: Rooms) -> None:
        self.state = state
        self.rooms = rooms
        self.tasks: set[asyncio.Task[None]] = set()
        self.bots = Bots(rooms.db)
        self.local_jobs: set[str] = set()  # jobs this process follows to the end

    async def publish(self, room_id: int, event: dict[str, Any]) -> None:
        try:
            await self.state.redis.publish(keys.room_channel(room_id), orjson.dumps(event))
        except (RedisError, OSError) as exc:
            log.warning("could not announce %s in room %s: %s", event.get("type"), room_id, exc)

    async def answer(
        self,
        user: UserInfo,
        room_id: int,
        message_id: int,
        model: str,
        language: str | None = None,
    ) -> asyncio.Task[None] | None:
        """Start the answer's job; the task that saves it (None when it could not start).
        ``model`` may be a bot (``bot:ID``): its base model runs with its Modelfile.
        ``language``: the UI's of the person asking (the passages' template speaks it)."""
        row = await run_in_threadpool(self.rooms.raw, message_id)
        history = await run_in_threadpool(self.rooms.history_of, row)
        passages = tuple(
            Passage(int(c["n"]), str(c["name"]), c.get("page"), str(c["text"]))
            for c in (orjson.loads(row["citations"]) if row.get("citations") else [])
        )
        settings = await run_in_threadpool(self.rooms.settings_of, room_id, model)
        bot_modelfile = None
        bot_id = bot_id_of(model)
        if bot_id is not None:
            try:
                model, bot_modelfile = await run_in_threadpool(self.bots.for_job, bot_id, user)
            except KuwaError as exc:
                await self._finish(room_id, message_id, "", "failed", exc.message, False)
                return None
            await run_in_threadpool(self.bots.count_use, bot_id)
        request = ChatRequest(
            model=model,
            messages=tuple(Message(r, c) for r, c in history),
            stream=True,
            passages=passages,
            language=language,
        )
        request = model_settings.apply(request, settings)  # the model's settings in this room
        return await self._run(
            user, room_id, message_id, request, translation=False, bot_modelfile=bot_modelfile
        )

    async def run_pending(
        self, user: UserInfo, room_id: int, pending: list[tuple[int, str]], chained: bool
    ) -> int:
        """Answer imported prompts: per model in order when chained (each prompt sees the
        earlier answers), models side by side; all at once (within the user's limits) when
        not. Answers stopped before they started are skipped. How many were started."""
        started = 0

        async def one_model(items: list[tuple[int, str]]) -> None:
            nonlocal started
            for message_id, code in items:
                row = await run_in_threadpool(self.rooms.raw_or_none, message_id)
                if row is None or row["status"] != "running" or row["job_id"]:
                    continue  # stopped, deleted, or already started
                task = await self.answer(user, room_id, message_id, code)
                started += 1
                if chained and task is not None:
                    await task

        by_model: dict[str, list[tuple[int, str]]] = {}
        for item in pending:
            by_model.setdefault(item[1], []).append(item)
        await asyncio.gather(*(one_model(items) for items in by_model.values()))
        return started

    def spawn(self, work: Any) -> None:
        """Run ``work`` (a coroutine) in the background, cancelled at shutdown."""
        task: asyncio.Task[None] = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def translate(
        self, user: UserInfo, room_id: int, message_id: int, model: str, lang: str
    ) -> None:
        answer = await run_in_threadpool(self.rooms.raw, message_id)
        await run_in_threadpool(self.rooms.start_translation, message_id, lang)
        await self.publish(room_id, {"type": "message", "id": message_id})
        prompt = (
            f"Translate the following text into {LANGUAGES.get(lang, lang)}. Keep its "
            "formatting (markdown, code). Reply with the translation only.\n\n"
            f"{answer['content']}"
        )
        request = ChatRequest(model=model, messages=(Message("user", prompt),), stream=True)
        await self._run(user, room_id, message_id, request, translation=True)

    async def _run(
        self,
        user: UserInfo,
        room_id: int,
        message_id: int,
        request: ChatRequest,
        *,
        translation: bool,
        bot_modelfile: str | None = None,
    ) -> asyncio.Task[None] | None:
        try:
            stream = await start_chat(self.state, request, user, bot_modelfile=bot_modelfile)
        except KuwaError as exc:
            await self._finish(room_id, message_id, "", "failed", exc.message, translation)
            return None
        await run_in_threadpool(self.rooms.set_job, message_id, stream.id, translation=translation)
        await self.publish(
            room_id,
            {
                "type": "job",
                "id": message_id,
                "job": stream.id,
                "kind": "translation" if translation else "answer",
            },
        )
        task = asyncio.create_task(self._consume(room_id, message_id, stream, translation))
        self.tasks.add(task)
        self.local_jobs.add(stream.id)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(lambda _: self.local_jobs.discard(stream.id))
        return task

    async def _consume(
        self, room_id: int, message_id: int, stream: ChatStream, translation: bool
    ) -> None:
        parts: list[str] = []
        status, error = "done", None
        try:
            async for chunk in stream.chunks():
                parts.append(chunk.text)
                if chunk.final and chunk.finish_reason == "cancelled":
                    status = "cancelled"
        except JobFailedError as exc:
            status, error = (
                ("cancelled", None) if exc.code == "cancelled" else ("failed", exc.message)
            )
        except KuwaError as exc:
            status, error = "failed", exc.message
        finally:
            stream.finished = True  # the job ends by itself: closing must not cancel it
            await stream.close()
        await self._finish(room_id, message_id, "".join(parts), status, error, translation)

    async def _finish(
        self,
        room_id: int,
        message_id: int,
        text: str,
        status: str,
        error: str | None,
        translation: bool,
    ) -> None:
        if translation:
            await run_in_threadpool(self.rooms.finish_translation, message_id, text, status)
        else:
            await run_in_threadpool(self.rooms.finish, message_id, text, status, error)
        await self.publish(room_id, {"type": "message", "id": message_id})

    async def settle(self, room_id: int) -> None:
        """Save answers whose gateway went away before it could (a restart): a job that
        ended a while ago is saved from its transcript; one whose state expired is failed."""
        for item in await run_in_threadpool(self.rooms.running, room_id):
            job, message_id = str(item["job"]), int(item["id"])
            if job in self.local_jobs:
                continue
            translation = item["kind"] == "translation"
            state = await self.state.chat.queue.state(job)
            if not state:
                await self._finish(
                    room_id,
                    message_id,
                    "",
                    "failed",
                    "This answer was lost: the server restarted before it was saved.",
                    translation,
                )
                continue
            ended = state.get("status") in ("done", "failed", "cancelled")
            if not ended or time.time() - float(state.get("finished", "0") or 0) < SETTLE_GRACE:
                continue
            parts: list[str] = []
            try:
                sub, _ = await self.state.chat.follow_any(job)
                try:
                    async for chunk in sub.chunks(idle_timeout=5):
                        parts.append(chunk.text)
                        if chunk.final:
                            break
                finally:
                    await sub.close()
            except KuwaError:
                pass
            status = str(state.get("status"))
            await self._finish(room_id, message_id, "".join(parts), status, None, translation)

    async def stop(self, room_id: int) -> int:
        """Cancel the room's running answers; answers waiting to start (an import's) end as
        cancelled at once."""
        running = await run_in_threadpool(self.rooms.running, room_id)
        for item in running:
            await self.state.chat.queue.cancel(item["job"])
        waiting = await run_in_threadpool(self.rooms.cancel_unstarted, room_id)
        for message_id in waiting:
            await self.publish(room_id, {"type": "message", "id": message_id})
        return len(running) + len(waiting)

    async def shutdown(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def room_events(runner: RoomRunner, user: UserInfo, room_id: int) -> AsyncIterator[bytes]:
    """The room's one event stream for one viewer (see docs/web-app-api.md)."""
    state, rooms = runner.state, runner.rooms
    with contextlib.suppress(KuwaError, RedisError, OSError):
        await runner.settle(room_id)
    out: asyncio.Queue[bytes | None] = asyncio.Queue()
    followed: dict[str, asyncio.Task[None]] = {}
    me = f"{user.id}:{secrets.token_hex(4)}"
    pubsub = state.redis.pubsub()
    await pubsub.subscribe(keys.room_channel(room_id))

    async def follow(message_id: int, job_id: str, kind: str) -> None:
        name = "translation" if kind == "translation" else "delta"
        try:
            sub, _ = await state.chat.follow_any(job_id)
        except KuwaError:
            return
        try:
            async for chunk in sub.chunks(idle_timeout=state.chat.idle_timeout):
                if chunk.text:
                    payload: dict[str, Any] = {
                        "id": message_id,
                        "text": chunk.text,
                        "seq": chunk.seq,
                    }
                    await out.put(named_event(name, payload))
                if chunk.final:
                    break
        except (KuwaError, RedisError, OSError):
            pass
        finally:
            await sub.close()

    def start_following(message_id: int, job_id: str, kind: str) -> None:
        if job_id not in followed:
            followed[job_id] = asyncio.create_task(follow(message_id, job_id, kind))

    async def message_event(message_id: int) -> None:
        try:
            message = await run_in_threadpool(rooms.message, message_id, user.id)
        except KuwaError:
            return
        await out.put(named_event("message", message))

    async def presence() -> None:
        now = time.time()
        raw: Any = await state.redis.zrangebyscore(keys.room_presence(room_id), now, "+inf")
        ids = sorted({int(bytes(m).decode().split(":")[0]) for m in raw})
        users = []
        for uid in ids:
            info = await run_in_threadpool(state.store.accounts.get_user, uid)
            if info is not None:
                users.append({"id": info.id, "name": info.name})
        await out.put(named_event("presence", {"users": users}))

    async def still_allowed() -> bool:
        fresh = await run_in_threadpool(state.store.accounts.get_user, user.id)
        if fresh is None:
            return False
        return await run_in_threadpool(rooms.role, room_id, fresh.id, fresh.group) is not None

    async def listen() -> None:
        async for raw in pubsub.listen():
            if raw.get("type") != "message":
                continue
            event = orjson.loads(raw["data"])
            kind = event.get("type")
            if kind in ("message", "job", "room") and not await still_allowed():
                await out.put(
                    named_event(
                        "gone", {"reason": "You no longer have access.", "code": "no_access"}
                    )
                )
                await out.put(None)
                return
            if kind == "message":
                await message_event(int(event["id"]))
            elif kind == "job":
                start_following(int(event["id"]), str(event["job"]), str(event["kind"]))
            elif kind == "presence":
                await presence()
            elif kind == "files":
                await out.put(named_event("files", {"room": room_id}))
            elif kind == "room":
                changed = await run_in_threadpool(
                    lambda: rooms.get(room_id, user.id, with_messages=False)
                )
                changed["role"] = await run_in_threadpool(rooms.role, room_id, user.id, user.group)
                changed["me"] = {"id": user.id, "name": user.name}
                changed["bounds"] = user.bounds.to_json()
                await out.put(named_event("room", changed))
            elif kind == "deleted":
                await out.put(
                    named_event("gone", {"reason": "The room was deleted.", "code": "deleted"})
                )
                await out.put(None)
                return

    async def heartbeat() -> None:
        while True:
            await state.redis.zadd(keys.room_presence(room_id), {me: time.time() + PRESENCE_TTL})
            await state.redis.expire(keys.room_presence(room_id), int(PRESENCE_TTL) * 2)
            await asyncio.sleep(KEEP_ALIVE_SECONDS)
            if not await still_allowed():  # e.g. moved out of the group it was shared with
                await out.put(
                    named_event(
                        "gone", {"reason": "You no longer have access.", "code": "no_access"}
                    )
                )
                await out.put(None)
                return
            await out.put(KEEP_ALIVE)

    room: dict[str, Any] = await run_in_threadpool(rooms.get, room_id, user.id)
    room["role"] = await run_in_threadpool(rooms.role, room_id, user.id, user.group)
    room["me"] = {"id": user.id, "name": user.name}
    room["bounds"] = user.bounds.to_json()  # what the model settings may ask for
    yield named_event("hello", {"room": room})
    for item in await run_in_threadpool(rooms.running, room_id):
        start_following(int(item["id"]), str(item["job"]), str(item["kind"]))
    await state.redis.zadd(keys.room_presence(room_id), {me: time.time() + PRESENCE_TTL})
    await state.redis.publish(keys.room_channel(room_id), orjson.dumps({"type": "presence"}))
    workers = [asyncio.create_task(listen()), asyncio.create_task(heartbeat())]
    try:
        while True:
            event = await out.get()
            if event is None:
                return
            yield event
    finally:
        for task in [*workers, *followed.values()]:
            task.cancel()
        for task in [*workers, *followed.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(RedisError, OSError):
            await state.redis.zrem(keys.room_presence(room_id), me)
            await state.redis.publish(
                keys.room_channel(room_id), orjson.dumps({"type": "presence"})
            )
            await pubsub.aclose()
