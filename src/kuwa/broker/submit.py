"""Starting a job: register its reader with the hub, then enqueue it, in that order.

The job names the hub's inbox (``reply_to``), which the hub subscribed to when it started,
and its reader is registered before the job is queued, so no chunk can be published before
somebody listens, however fast the executor is, and starting a job costs no subscription.
Every caller that starts a job (the gateway's chats and embeddings, document retrieval's
embedding jobs) goes through :func:`submit`.
"""

from __future__ import annotations

from dataclasses import replace

from kuwa.broker.hub import Hub, Subscription
from kuwa.broker.queue import JobQueue
from kuwa.schemas import Job


async def submit(hub: Hub, queue: JobQueue, job: Job) -> Subscription:
    """The job's subscription, once the job is queued. When it cannot be queued (no live
    executor, a full queue, Redis down) the subscription is closed and the error raised."""
    sub = hub.own(job.id)
    try:
        await queue.enqueue(job if job.reply_to == hub.inbox else replace(job, reply_to=hub.inbox))
    except BaseException:
        await sub.close()
        raise
    return sub
