"""Background generation with RQ on Kuwa's Redis: an imported file's pending answers.

The gateway enqueues one RQ job per import (:func:`enqueue_pending`); a worker
(``kuwa-cli worker start``) runs :func:`generate_pending`, which builds the same chat
machinery a gateway holds and answers the prompts — per model in order when the room is
chained (each prompt sees the earlier answers), models side by side — saving each answer and
announcing it in the room like an answer sent from the page. Stop cancels running answers
and marks those not started yet cancelled; the worker skips them.
"""

from __future__ import annotations

import asyncio
import logging

from rq import Queue

from kuwa.accounts import Store, close_database, open_database
from kuwa.broker import Hub, connect
from kuwa.broker.connection import connect_sync
from kuwa.rooms import Rooms
from kuwa.settings import Settings

log = logging.getLogger(__name__)

QUEUE = "kuwa-rooms"
JOB_TIMEOUT = 24 * 3600  # a large import may take hours


def enqueue_pending(
    settings: Settings, room_id: int, user_id: int, pending: list[tuple[int, str]], chained: bool
) -> str:
    """Queue the generation of an import's pending answers; the RQ job's id."""
    queue = Queue(QUEUE, connection=connect_sync(settings.effective_redis_url))
    job = queue.enqueue(
        generate_pending,
        room_id,
        user_id,
        [list(item) for item in pending],
        chained,
        job_timeout=JOB_TIMEOUT,
        description=f"room {room_id}: {len(pending)} answers",
    )
    return str(job.id)


def generate_pending(room_id: int, user_id: int, pending: list[list[object]], chained: bool) -> int:
    """The RQ job: answer the pending prompts; how many answers it started."""
    settings = Settings.from_env()
    items = [(int(str(a)), str(b)) for a, b in pending]
    return asyncio.run(_generate(settings, room_id, user_id, items, chained))


async def _generate(
    settings: Settings, room_id: int, user_id: int, pending: list[tuple[int, str]], chained: bool
) -> int:
    from kuwa.gateway.state import build_state
    from kuwa.web.live import RoomRunner

    redis = connect(settings.effective_redis_url)
    hub = Hub(redis)
    await hub.start()
    db = open_database(settings)
    try:
        store = Store.over(db, settings.load_secret_key())
        runner = RoomRunner(build_state(settings, redis, hub, store), Rooms(db))
        user = store.accounts.get_user(user_id)
        if user is None:
            log.warning("room %s: the importing user is gone; nothing generated", room_id)
            return 0
        started = await runner.run_pending(user, room_id, pending, chained)
        while runner.tasks:  # the answers started last are still being written
            await asyncio.gather(*list(runner.tasks), return_exceptions=True)
        return started
    finally:
        await hub.stop()
        await redis.aclose()
        close_database(db)
