"""A user's own provider key (header X-Kuwa-Upstream-Key) travels with the job, nowhere else."""

from __future__ import annotations

import threading
import time

import httpx

from kuwa import keys
from kuwa.schemas import Job
from tests.stack import Stack, wait_until


def test_header_key_rides_in_the_queued_job_only(stack: Stack) -> None:
    secret = "sk-users-own-provider-key"
    done = threading.Event()

    def ask() -> None:
        httpx.post(
            stack.base_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {stack.token}", "X-Kuwa-Upstream-Key": secret},
            json={"model": "slow", "messages": [{"role": "user", "content": "a b c d e f g h"}]},
            timeout=30,
        )
        done.set()

    thread = threading.Thread(target=ask)
    thread.start()
    client = stack.redis.client()
    entries: list[tuple[bytes, dict[bytes, bytes]]] = []

    def queued() -> bool:
        entries[:] = client.xrange(keys.queue_stream("slow"))
        return bool(entries)

    wait_until(queued, 10, "the queued job")
    job = Job.decode(entries[0][1][b"job"])
    assert job.upstream_key == secret
    state = client.hgetall(keys.job_state(job.id))
    assert secret.encode() not in b"".join(k + v for k, v in state.items())
    thread.join(30)
    assert done.is_set()
    time.sleep(0.2)
    assert client.xlen(keys.queue_stream("slow")) == 0  # the entry (and the key) is gone
    for proc in stack.procs:
        assert secret not in proc.text()
    client.close()
