"""The API checks what the user's group allows: API access, each model, and group limits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from kuwa import keys
from kuwa.accounts import permissions
from tests.stack import RedisServer, Stack, wait_until
from tests.web import make_user, store_of

API = "Room_read_access_to_api"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("perm")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.executor("echo")
        s.executor("slow", delay=0.05, concurrency=8)
        # The tests change the catalog and the groups behind the gateway's back, as another
        # gateway or the CLI would, and wait for it to read them again: soon, not in 5-10 s.
        caches = {"KUWA_MODEL_CACHE_SECONDS": "0.5", "KUWA_TOKEN_CACHE_SECONDS": "0.5"}
        s.base_url = s.gateway(caches)
        yield s
    finally:
        s.stop()
        server.stop()


def token_for(stack: Stack, email: str, perms: list[str]) -> str:
    user = make_user(stack, email, permissions=perms)
    with store_of(stack) as store:
        return store.accounts.ensure_token(user.id)


def chat(stack: Stack, token: str, model: str = "echo", text: str = "hi") -> httpx.Response:
    return httpx.post(
        stack.base_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )


def models(stack: Stack, token: str) -> httpx.Response:
    return httpx.get(
        stack.base_url + "/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def eventually(check: Callable[[], bool], what: str) -> None:
    wait_until(check, 10, what)  # the gateway's caches: 0.5 s


def test_the_api_needs_room_read_access_to_api(stack: Stack) -> None:
    token = token_for(stack, "no-api@example.com", [permissions.model_permission("echo")])
    for r in (chat(stack, token), models(stack, token)):
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "api_not_allowed"
    r = httpx.post(
        stack.base_url + "/v1.0/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 403


def test_each_model_needs_its_own_permission(stack: Stack) -> None:
    # Listing registers every served model (open to every group that exists then).
    assert len(models(stack, stack.create_user("first@example.com")).json()["data"]) >= 2
    token = token_for(stack, "echo-only@example.com", [API, "model:echo"])
    assert chat(stack, token).status_code == 200
    r = chat(stack, token, "slow")
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    eventually(
        lambda: [m["id"] for m in models(stack, token).json()["data"]] == ["echo"],
        "only echo listed",
    )
    with store_of(stack) as store:
        store.groups.grant("only-echo-only-example-com", ["model:slow"])
    eventually(lambda: chat(stack, token, "slow").status_code == 200, "access after the grant")
    with store_of(stack) as store:
        store.groups.revoke("only-echo-only-example-com", ["model:echo"])
    eventually(lambda: chat(stack, token).status_code == 403, "no access after the revoke")


def test_disabled_deleted_and_unknown_models(stack: Stack) -> None:
    token = stack.create_user("users-group@example.com")
    assert chat(stack, token).status_code == 200
    with store_of(stack) as store:
        store.catalog.update("echo", enabled=False)
    try:
        eventually(lambda: chat(stack, token).status_code == 404, "disabled model gone")
        assert "echo" not in [m["id"] for m in models(stack, token).json()["data"]]
    finally:
        with store_of(stack) as store:
            store.catalog.update("echo", enabled=True)
    eventually(lambda: chat(stack, token).status_code == 200, "enabled again")
    r = chat(stack, token, "no-such-model")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_models_are_registered_on_first_sight_and_open_to_every_group(stack: Stack) -> None:
    with store_of(stack) as store:
        store.groups.create("Late", permissions=[API])
        late = store.accounts.create_user(
            "late@example.com", "Late", "correct horse battery", group="Late"
        )
        token = store.accounts.ensure_token(late.id)
    stack.executor("fresh")
    eventually(lambda: chat(stack, token, "fresh").status_code == 200, "the new model")
    with store_of(stack) as store:
        assert store.catalog.get("fresh").name == "fresh"
        assert "model:fresh" in store.groups.get("Users").permissions


def test_group_limits_override_the_defaults(stack: Stack) -> None:
    with store_of(stack) as store:
        group = store.groups.create("Limited", permissions=[API, "model:slow", "model:echo"])
        store.groups.update(group.id, max_jobs=1)
        user = store.accounts.create_user(
            "limited@example.com", "L", "correct horse battery", group="Limited"
        )
        token = store.accounts.ensure_token(user.id)
    client = stack.redis.client()
    running = threading.Thread(target=chat, args=(stack, token, "slow", " ".join(["w"] * 60)))
    running.start()
    try:
        wait_until(lambda: client.zcard(keys.user_jobs(str(user.id))) == 1, 10, "one running")
        r = chat(stack, token)
        assert r.status_code == 429 and r.json()["error"]["code"] == "user_job_limit"
        assert chat(stack, stack.create_user("unlimited@example.com")).status_code == 200
    finally:
        running.join(30)
        client.close()
    assert chat(stack, token).status_code == 200


def test_a_models_modelfile_travels_with_its_jobs(stack: Stack) -> None:
    token = stack.create_user("modelfile@example.com")
    assert chat(stack, token).status_code == 200
    with store_of(stack) as store:
        store.catalog.update("echo", modelfile='AFTER-PROMPT " (from the catalog)"')
    try:
        # The echo executor repeats the last user message, which AFTER-PROMPT extends.
        eventually(
            lambda: (
                chat(stack, token, text="hi").json()["choices"][0]["message"]["content"]
                == "hi (from the catalog)"
            ),
            "the catalog's Modelfile applied",
        )
    finally:
        with store_of(stack) as store:
            store.catalog.update("echo", modelfile="")
    eventually(
        lambda: chat(stack, token).json()["choices"][0]["message"]["content"] == "hi",
        "back to plain echo",
    )


def test_a_models_deadlines_come_from_the_catalog(stack: Stack) -> None:
    token = stack.create_user("deadlines@example.com")
    stack.executor("sleepy", delay=1.5)
    assert models(stack, token).status_code == 200  # registers sleepy
    with store_of(stack) as store:
        store.catalog.update("sleepy", idle_timeout=0.4, queue_timeout=30)
    client = stack.redis.client()
    try:
        # The queue timeout is published for the kernel (when a request reads the catalog)...
        eventually(
            lambda: (
                models(stack, token).status_code == 200
                and client.hget(keys.MODEL_CONFIG, "sleepy") == b'{"queue_timeout":30.0}'
            ),
            "published",
        )
        # ...and the idle timeout ends a stream that goes quiet for longer.
        r = chat(stack, token, "sleepy", "a b c")
        assert r.json()["error"]["code"] == "timeout", r.text
    finally:
        client.close()
