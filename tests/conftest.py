from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from playwright.sync_api import Browser

from kuwa.broker import Hub, connect
from tests.browser import CHROMIUM, UI
from tests.stack import RedisServer, Stack

pytest_plugins = ["tests.dbfixtures"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (no browser download), one per test module."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"the browser tests drive the system Chromium at {CHROMIUM}"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def ui(stack: Stack, browser: Browser) -> Iterator[UI]:
    """Fresh browser contexts on the module's ``stack``; closed after the test."""
    session = UI(browser, stack.base_url)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A private, empty Redis for this test."""
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client (bytes replies) on this test's empty Redis."""
    client = connect(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def hub(redis: aioredis.Redis) -> AsyncIterator[Hub]:
    """A started gateway hub (one shared pub/sub connection) on that Redis."""
    h = Hub(redis)
    await h.start()
    yield h
    await h.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A running gateway with debug executors on its own Redis, and a user's API token.

    Access codes: ``echo`` (instant, 128 slots), ``slow`` (50 ms per token, 8 slots),
    ``reverse`` (reverses the prompt); an RQ worker indexes uploaded files.
    """
    folder: Path = tmp_path_factory.mktemp("stack")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.token = s.create_user()
        s.executor("echo", concurrency=128)
        s.executor("slow", delay=0.05, concurrency=8)
        s.executor("reverse", transform="reverse")
        s.spawn("worker", ["worker", "start"])
        s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()
