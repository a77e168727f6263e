"""Per-user limits: running answers at once and requests per minute (429 + Retry-After)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from kuwa import keys
from tests.stack import RedisServer, Stack, wait_until


def test_limits_per_user(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    stack = Stack(tmp_path, server)
    try:
        a = stack.create_user("a@example.com")
        b = stack.create_user("b@example.com")
        stack.executor("slow", delay=0.05, concurrency=8)
        base = stack.gateway({"KUWA_USER_MAX_JOBS": "2", "KUWA_USER_REQUESTS_PER_MINUTE": "5"})
        url = base + "/v1/chat/completions"

        def ask(token: str, text: str = "x") -> httpx.Response:
            return httpx.post(
                url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
                json={"model": "slow", "messages": [{"role": "user", "content": text}]},
            )

        # Requests are counted per clock minute, and the requests below (about 3 s of them)
        # must fall in one: with less than 10 s of this minute left, wait for the next.
        if time.time() % 60 > 50:
            time.sleep(60.1 - time.time() % 60)
        long = " ".join(["w"] * 40)
        running = [threading.Thread(target=ask, args=(a, long)) for _ in range(2)]
        for t in running:
            t.start()
        client = server.client()
        wait_until(lambda: client.zcard(keys.user_jobs("1")) == 2, 10, "two running answers")
        third = ask(a)
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "user_job_limit"
        assert third.headers["Retry-After"] == "2"
        assert ask(b).status_code == 200  # another user is not affected
        for t in running:
            t.join(30)
        assert client.zcard(keys.user_jobs("1")) == 0  # released when the answers ended
        fine = ask(a)  # the 5th request of the minute (2 running + 1 refused + this one = 4)
        assert fine.status_code == 200
        assert ask(a).status_code == 200  # 5th
        over = ask(a)
        assert over.status_code == 429 and over.json()["error"]["code"] == "user_rate_limit"
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        client.close()
    finally:
        stack.stop()
        server.stop()
