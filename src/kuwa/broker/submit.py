"""Starting a job: subscribe to its channel, then enqueue it, in that order.

Subscribing first means no chunk can be published before somebody listens, however fast the
executor is. Every caller that starts a job (the gateway's chats and embeddings, document
retrieval's embedding jobs) goes through :func:`submit`.
"""

from __future__ import annotations

from kuwa.broker.connection import redis_errors
from kuwa.broker.hub import Hub, Subscription
from kuwa.broker.queue import JobQueue
from kuwa.schemas import Job


async def submit(hub: Hub, queue: JobQueue, job: Job) -> Subscription:
    """The job's subscription, once the job is queued. When it cannot be queued (no live
    executor, a full queue, Redis down) the subscription is closed and the error raised."""
    with redis_errors("subscribing to a job"):
        sub = await hub.subscribe(job.id)
    try:
        await queue.enqueue(job)
    except BaseException:
        await sub.close()
        raise
    return sub
