"""The batcher's own connection (``kuwa.broker.line``): rounds that ask for no reply."""

from __future__ import annotations

import asyncio
import select

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from kuwa.broker import ChunkBatcher, Hub
from kuwa.broker import line as line_module
from kuwa.broker.connection import connect
from kuwa.broker.line import Line

pytestmark = pytest.mark.anyio

APPEND = "return redis.call('RPUSH', KEYS[1], ARGV[1])"


def readable(line: Line) -> bool:
    """Whether the line's socket has anything to read (a reply that would wake its loop)."""
    sock = line._conn._writer.get_extra_info("socket")
    return bool(select.select([sock], [], [], 0.05)[0])


async def test_commands_without_replies_leave_nothing_to_read(redis: aioredis.Redis) -> None:
    await redis.set("text", "not a list")
    line = Line(redis, [])
    try:
        await line.send([("RPUSH", "l", "a"), ("RPUSH", "l", "b")], replies=False)
        await line.send([("LPUSH", "text", "x")], replies=False)  # Redis refuses it, silently
        assert not readable(line)
        # Later replies are the later commands' own, and the commands ran in order.
        assert await line.send([("LRANGE", "l", 0, -1), ("PING",)]) == [[b"a", b"b"], b"PONG"]
        errors = await line.send([("LPUSH", "text", "x"), ("GET", "text")])
        assert isinstance(errors[0], ResponseError) and errors[1] == b"not a list"
    finally:
        await line.close()


async def test_a_reconnected_line_has_its_scripts(redis: aioredis.Redis) -> None:
    """A skipped reply would hide a NOSCRIPT: each (re)connection loads the scripts first."""
    script = redis.register_script(APPEND)
    line = Line(redis, [script])
    try:
        await line.send([("EVALSHA", script.sha, 1, "l", "before")], replies=False)
        [client_id] = await line.send([("CLIENT", "ID")])
        await redis.client_kill_filter(_id=client_id)
        await redis.script_flush()
        assert await line.send([("PING",)]) == [b"PONG"]  # reconnects (a retry) and loads
        await line.send([("EVALSHA", script.sha, 1, "l", "after")], replies=False)
        assert await redis.lrange("l", 0, -1) == [b"before", b"after"]
    finally:
        await line.close()


async def test_a_long_answers_text_rounds_get_no_replies(redis: aioredis.Redis, hub: Hub) -> None:
    """Only the rounds that end jobs are answered: the executor wakes for no other reply."""
    batcher = ChunkBatcher(redis, interval=0.001)
    pub = batcher.publisher("j1", reply_to=hub.inbox)
    sub = hub.own("j1")
    try:
        for word in ["a", "b", "c", "d"]:
            pub.write(word)
            await asyncio.sleep(0.01)  # a round each
        assert batcher.rounds >= 4
        assert not readable(batcher._line)
        await pub.close("stop")
        text = "".join([c.text async for c in sub.chunks(idle_timeout=5)])
        assert text == "abcd"
    finally:
        await sub.close()
        await batcher.stop()


async def test_a_user_that_may_not_skip_replies_gets_its_replies_read(
    redis: aioredis.Redis, redis_url: str
) -> None:
    """A Redis user denied ``CLIENT REPLY`` (an ACL, or a managed service that forbids
    ``CLIENT``) is seen when the line connects, and every reply is read, so none is left
    behind."""
    await redis.acl_setuser(
        "kuwa-line", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
        categories=["+@all", "-@admin"], commands=["-client|reply"],
    )  # fmt: skip
    user = connect(redis_url.replace("redis://", "redis://kuwa-line:pw@"))
    line = Line(user, [])
    try:
        await line.send([("RPUSH", "l", "a")], replies=False)
        assert not line.skips
        assert not readable(line)
        assert await line.send([("LRANGE", "l", 0, -1)]) == [[b"a"]]
    finally:
        await line.close()
        await user.aclose()
        await redis.acl_deluser("kuwa-line")


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    commands: list[line_module.Command] = [
        ("SET", "k", "你好"),
        ("EVALSHA", "sha", 1, 1.5, b"\x00\r\n", 1796697708.267489),
    ]
    expected = b"".join(aioredis.Connection().pack_commands(commands))
    assert line_module._pack(commands, False) == [expected]
    skip = b"".join(aioredis.Connection().pack_commands([line_module._SKIP, commands[0]]))
    assert line_module._pack(commands[:1], True) == [skip]


async def test_a_user_that_may_not_load_scripts_is_told_so(
    redis: aioredis.Redis, redis_url: str
) -> None:
    """Redis's refusal to load the scripts is the line's error, each time it tries (the
    batcher's round fails and its jobs end with an error), never a hang or a stray reply."""
    await redis.acl_setuser(
        "kuwa-noscript", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
        categories=["+@all"], commands=["-script|load"],
    )  # fmt: skip
    user = connect(redis_url.replace("redis://", "redis://kuwa-noscript:pw@"))
    line = Line(user, [user.register_script(APPEND)])
    try:
        for _ in range(2):
            with pytest.raises(ResponseError, match=r"NOPERM|permission"):
                await line.send([("PING",)])
    finally:
        await line.close()
        await user.aclose()
        await redis.acl_deluser("kuwa-noscript")
