"""Every web route says who may use it, and each one refuses everybody else.

Walks the app's routing table: a page without a declared access rule fails the first test,
so no page can be added without one. Then, for every page that needs a permission, a user
holding every permission but that one is refused (403); pages for signed-in users send
anonymous visitors to sign in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from kuwa.accounts import permissions
from kuwa.gateway.app import create_app
from kuwa.settings import Settings
from kuwa.web import ACCESS_ATTR, PUBLIC, SIGNED_IN
from tests.stack import RedisServer, Stack
from tests.web import Browser, make_user

# API routes: token-authenticated (their permission checks are in tests/test_api_permissions.py)
# or public (/healthz, /openapi.json; tests/test_openapi.py).
API_PATHS = ("/v1/", "/v1.0/", "/healthz", "/metrics", "/openapi.json")


def web_routes(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(method, path, access) for every web route."""
    app = create_app(Settings(data_dir=tmp_path / "data"))
    found = []
    for route in app.routes:
        if isinstance(route, Mount):
            assert route.path == "/static", f"unexpected mount {route.path}"
            continue
        assert isinstance(route, Route)
        if route.path.startswith(API_PATHS):
            continue
        access = getattr(route.endpoint, ACCESS_ATTR, None)
        assert access is not None, f"{route.path} does not declare who may use it (page())"
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, route.path, access))
    return found


def concrete(path: str) -> str:
    """A path with its parameters filled in (the access check runs before the handler)."""
    path = re.sub(r"\{[a-z_]+:path\}", "echo", path)
    return re.sub(r"\{[a-z_]+(:id)?\}", "1", path)


def test_every_web_route_declares_its_access(tmp_path: Path) -> None:
    routes = web_routes(tmp_path)
    assert ("POST", "/login", PUBLIC) in routes
    assert ("GET", "/password", SIGNED_IN) in routes
    for _, path, access in routes:
        assert access in (PUBLIC, SIGNED_IN) or permissions.is_known(access), (path, access)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("routes")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


def test_each_permission_page_refuses_a_user_without_it(stack: Stack, tmp_path: Path) -> None:
    routes = [r for r in web_routes(tmp_path) if r[2] not in (PUBLIC, SIGNED_IN)]
    assert routes, "no permission-guarded pages found"
    browsers: dict[str, Browser] = {}
    try:
        for method, path, access in routes:
            if access not in browsers:
                email = f"lacks-{access.lower().replace('_', '-')}@example.com"
                make_user(stack, email, permissions=[p for p in permissions.ALL if p != access])
                browsers[access] = Browser(stack.base_url)
                assert browsers[access].login(email).status_code == 303
            b = browsers[access]
            url = concrete(path)
            r = b.post(url, {}) if method == "POST" else b.get(url)
            assert r.status_code == 403, f"{method} {url} without {access}: {r.status_code}"
    finally:
        for b in browsers.values():
            b.close()


def test_signed_in_pages_send_anonymous_visitors_to_sign_in(stack: Stack, tmp_path: Path) -> None:
    routes = [r for r in web_routes(tmp_path) if r[2] != PUBLIC]
    with Browser(stack.base_url) as b:
        for method, path, _ in routes:
            url = concrete(path)
            if path.startswith("/app/"):  # the UI's JSON API: 401, never a redirect
                r = b.get(url) if method == "GET" else b.post(url, {})
                assert r.status_code == 401, url
            elif method == "GET":
                r = b.get(url)
                assert r.status_code == 303, url
                assert r.headers["location"].startswith("/login?next="), url
            else:
                assert b.post(url, {}).status_code == 401, url


# Pages that name a resource in their path and may be opened by its owner (not only by an
# administrator) must prove that another user gets 403/404: list each with its IDOR test.
_ROOMS_IDOR = "tests/test_web_rooms.py::test_rooms_are_private_until_shared"
OWNED_RESOURCE_ROUTES: dict[str, str] = {
    path: _ROOMS_IDOR
    for path in (
        "/rooms/{room_id:id}",
        "/app/rooms/{room_id:id}",
        "/app/rooms/{room_id:id}/delete",
        "/app/rooms/{room_id:id}/share",
        "/app/rooms/{room_id:id}/messages",
        "/app/rooms/{room_id:id}/stop",
        "/app/rooms/{room_id:id}/events",
        "/app/rooms/{room_id:id}/export",
        "/app/rooms/{room_id:id}/import",
        "/app/rooms/{room_id:id}/link",
        "/app/messages/{message_id:id}/regenerate",
        "/app/messages/{message_id:id}/select",
        "/app/messages/{message_id:id}/delete",
        "/app/messages/{message_id:id}/feedback",
        "/app/messages/{message_id:id}/translate",
    )
}
_TRASH_IDOR = "tests/test_web_trash.py::test_the_trash_is_the_owners_alone"
for _path in (
    "/app/trash/rooms/{room_id:id}/restore",
    "/app/trash/rooms/{room_id:id}/purge",
    "/app/trash/messages/{message_id:id}/restore",
    "/app/trash/messages/{message_id:id}/purge",
):
    OWNED_RESOURCE_ROUTES[_path] = _TRASH_IDOR
for _path in ("", "/delete", "/clone", "/export"):
    OWNED_RESOURCE_ROUTES["/app/bots/{bot_id:id}" + _path] = (
        "tests/test_bot_store.py::test_visibility_and_the_permission_matrix"
    )
OWNED_RESOURCE_ROUTES["/app/rooms/{room_id:id}/vote"] = (
    "tests/test_arena.py::test_nothing_names_the_models_before_the_vote"  # owner only
)
_FILES_IDOR = "tests/test_documents.py::test_only_people_who_can_read_the_room_reach_its_files"
for _path in (
    "/app/rooms/{room_id:id}/files",
    "/app/files/{file_id}",
    "/app/files/{file_id}/content",
    "/app/files/{file_id}/delete",
):
    OWNED_RESOURCE_ROUTES[_path] = _FILES_IDOR
OWNED_RESOURCE_ROUTES["/app/bots/{bot_id:id}/files"] = (
    "tests/test_documents.py::test_a_bot_answers_from_its_knowledge_which_its_bot_file_carries"
)
# The link's token is the capability: anyone signed in may read what it opens.
OWNED_RESOURCE_ROUTES["/shared/{token}"] = "tests/test_web_rooms.py::test_a_read_only_link"


def test_pages_naming_a_resource_are_for_admins_or_have_an_idor_test(tmp_path: Path) -> None:
    """IDOR: pages with an id in their path are an admin's (Manage) or listed above with the
    test that shows another user gets 404; the API's one resource, a job, is 404 for other
    users (tests/test_follow.py); tokens are revoked only by their owner
    (tests/test_accounts.py). A new owner-facing page must be added above."""
    for _, path, access in web_routes(tmp_path):
        if "{" in path and access not in ("tab_Manage", PUBLIC):
            assert path in OWNED_RESOURCE_ROUTES, f"{path} ({access}) needs an IDOR test"


def test_ids_that_cannot_exist_are_404_on_every_route(stack: Stack, tmp_path: Path) -> None:
    """An id past the 64-bit range (no database can hold it) is a 404 on every route that
    takes one, for an administrator with every permission, never a 500 (SQLite refused to
    bind 2^63 with an OverflowError); the largest id that could exist is no 5xx either."""
    routes = [(m, p) for m, p, _ in web_routes(tmp_path) if re.search(r"\{[a-z_]+:id\}", p)]
    assert ("GET", "/app/rooms/{room_id:id}") in routes
    assert ("POST", "/app/messages/{message_id:id}/select") in routes
    make_user(stack, "ids-admin@example.com", admin=True)
    with Browser(stack.base_url) as b:
        assert b.login("ids-admin@example.com").status_code == 303
        for method, path in routes:
            for value, expected in ((2**63, 404), (2**64, 404), (10**40, 404), (2**63 - 1, 0)):
                url = re.sub(r"\{[a-z_]+:path\}", "echo", path)
                url = re.sub(r"\{[a-z_]+:id\}", str(value), url)
                url = re.sub(r"\{[a-z_]+\}", "x", url)
                r = b.post(url, {}) if method == "POST" else b.get(url)
                if expected:
                    assert r.status_code == expected, f"{method} {url}: {r.status_code}"
                else:
                    assert r.status_code < 500, f"{method} {url}: {r.status_code}"
    for proc in stack.procs:
        assert "OverflowError" not in proc.text()
