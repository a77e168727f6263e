"""The Redis data plane shared by gateways, executors and the kernel.

Queues are Redis Streams read by a consumer group (one per access code); chunks travel over
pub/sub on each job's channel and into a capped per-job transcript; executors announce
themselves with heartbeat keys. Key names come from :mod:`kuwa.keys`.
"""

from kuwa.broker.connection import cancel_and_wait, connect, redis_errors
from kuwa.broker.hub import Hub, Subscription
from kuwa.broker.publisher import ChunkBatcher, ChunkPublisher
from kuwa.broker.queue import JobQueue, QueuedJob
from kuwa.broker.registry import ExecutorInfo, Registry
from kuwa.broker.submit import submit

__all__ = [
    "ChunkBatcher",
    "ChunkPublisher",
    "ExecutorInfo",
    "Hub",
    "JobQueue",
    "QueuedJob",
    "Registry",
    "Subscription",
    "cancel_and_wait",
    "connect",
    "redis_errors",
    "submit",
]
