"""The Manage tab's Users and Groups pages, against a real gateway process."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kuwa.accounts import AuditEntry, GroupInfo, UserInfo, permissions
from kuwa.web import manage_groups, manage_users
from tests.stack import RedisServer, Stack
from tests.web import PASSWORD, Browser, make_user, store_of

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder: Path = tmp_path_factory.mktemp("manage-users")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture(scope="module")
def admin_user(stack: Stack) -> UserInfo:
    return make_user(stack, "admin@example.com", admin=True)


@pytest.fixture
def admin(stack: Stack, admin_user: UserInfo) -> Iterator[Browser]:
    with Browser(stack.base_url) as b:
        assert b.login(admin_user.email).status_code == 303
        yield b


def signed_in(b: Browser) -> bool:
    """Signed in (the chat page opens) rather than sent to the sign-in page."""
    r = b.get("/")
    return r.status_code == 200


def user_by_email(stack: Stack, email: str) -> UserInfo | None:
    with store_of(stack) as store:
        return store.accounts.find_user(email)


def group_named(stack: Stack, name: str) -> GroupInfo:
    with store_of(stack) as store:
        return store.groups.get(name, include_deleted=True)


def checked_perms(page: str) -> set[str]:
    """The permission checkboxes a browser would send as they are on the page."""
    found = set()
    for tag in re.findall(r"<input[^>]*>", page):
        if 'name="perm"' in tag and " checked" in tag:
            value = re.search(r'value="([^"]*)"', tag)
            assert value
            found.add(html.unescape(value.group(1)))
    return found


def edit_group(b: Browser, group_id: int, **changes: object) -> httpx.Response:
    """Submit a group's form as the page shows it, with ``changes`` (perm: a set)."""
    page = b.get(f"/manage/groups/{group_id}").text

    def field(name: str) -> str:
        found = re.search(rf'name="{name}" value="([^"]*)"', page)
        return html.unescape(found.group(1)) if found else ""

    form: dict[str, object] = {
        "name": field("name"),
        "description": field("description"),
        "max_jobs": field("max_jobs"),
        "requests_per_minute": field("requests_per_minute"),
        "perm": sorted(checked_perms(page)),
    }
    form.update(changes)
    if isinstance(form["perm"], set):
        form["perm"] = sorted(form["perm"])
    return b.post(f"/manage/groups/{group_id}", form)


def user_form(user: UserInfo, **changes: object) -> dict[str, object]:
    form: dict[str, object] = {"name": user.name, "email": user.email, "group": user.group}
    if user.must_change_password:
        form["must_change_password"] = "yes"
    if user.email_verified:
        form["email_verified"] = "yes"
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def create_user(b: Browser, email: str, name: str = "Someone", **extra: str) -> httpx.Response:
    return b.post(
        "/manage/users",
        {"email": email, "name": name, "password": PASSWORD, "group": "Users"} | extra,
    )


# --- users ----------------------------------------------------------------------------------
def test_list_and_search(stack: Stack, admin: Browser) -> None:
    make_user(stack, "findme-alpha@example.com")
    make_user(stack, "other-beta@example.com")
    r = admin.get("/manage/users")
    assert r.status_code == 200
    assert "findme-alpha@example.com" in r.text and "other-beta@example.com" in r.text
    assert 'class="table-wrap"' in r.text
    found = admin.get("/manage/users", params={"q": "FINDME"})
    assert "findme-alpha@example.com" in found.text
    assert "other-beta@example.com" not in found.text
    by_name = admin.get("/manage/users", params={"q": "web tester"})  # make_user's name
    assert "findme-alpha@example.com" in by_name.text
    assert "No users." in admin.get("/manage/users", params={"q": "zzz-nobody"}).text


def test_paging(stack: Stack, admin: Browser) -> None:
    with store_of(stack) as store:
        for i in range(manage_users.PAGE_SIZE + 3):
            store.accounts.create_user(f"pager{i:03d}@paging.example", "Pager", None)
    first = admin.get("/manage/users", params={"q": "@paging.example"})
    assert first.text.count("@paging.example</a>") == manage_users.PAGE_SIZE
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    second = admin.get("/manage/users", params={"q": "@paging.example", "page": "2"})
    assert second.text.count("@paging.example</a>") == 3
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    assert admin.get("/manage/users", params={"page": "nonsense"}).status_code == 200


def test_create_user_then_sign_in(stack: Stack, admin: Browser) -> None:
    r = create_user(admin, "created@example.com", "Created Person", email_verified="yes")
    assert r.status_code == 303
    assert "Created the account" in admin.get(r.headers["location"]).text
    user = user_by_email(stack, "created@example.com")
    assert user is not None and user.group == "Users" and user.email_verified
    assert not user.must_change_password
    with Browser(stack.base_url) as b:
        assert b.login("created@example.com").status_code == 303
        assert signed_in(b)
    # The same email again: 409 with a clear message, the form keeps its values.
    again = create_user(admin, "Created@Example.com", "Twin")
    assert again.status_code == 409
    assert "already exists" in again.text and 'value="Twin"' in again.text
    bad = create_user(admin, "short@example.com", password="short")
    assert bad.status_code == 400 and "at least 8 characters" in bad.text
    assert user_by_email(stack, "short@example.com") is None
    bad_group = create_user(admin, "nogroup@example.com", group="No Such Group")
    assert bad_group.status_code == 400 and "no group named" in bad_group.text


def test_edit_group_and_must_change_password(stack: Stack, admin: Browser) -> None:
    user = make_user(stack, "editme@example.com")
    page = admin.get(f"/manage/users/{user.id}")
    assert page.status_code == 200 and "editme@example.com" in page.text
    r = admin.post(
        f"/manage/users/{user.id}",
        user_form(user, name="Edited Name", group="Admins", must_change_password="yes"),
    )
    assert r.status_code == 303
    after = user_by_email(stack, "editme@example.com")
    assert after is not None
    assert after.name == "Edited Name" and after.group == "Admins" and after.must_change_password
    with Browser(stack.base_url) as b:
        assert b.login(user.email).status_code == 303
        home = b.get("/")
        assert home.status_code == 303 and home.headers["location"] == "/password"
    # Unticking the box lets them in again; a missing group is refused.
    untick = user_form(after, must_change_password=None)
    assert admin.post(f"/manage/users/{user.id}", untick).status_code == 303
    cleared = user_by_email(stack, "editme@example.com")
    assert cleared is not None and not cleared.must_change_password
    missing = admin.post(f"/manage/users/{user.id}", user_form(cleared, group="Nope"))
    assert missing.status_code == 400 and "no group named" in missing.text
    taken = admin.post(f"/manage/users/{user.id}", user_form(cleared, email="admin@example.com"))
    assert taken.status_code == 409


def test_unknown_user_is_404(admin: Browser) -> None:
    assert admin.get("/manage/users/999999").status_code == 404
    assert admin.post("/manage/users/999999", {"name": "x"}).status_code == 404
    assert admin.post("/manage/users/999999/delete", {"confirm": "yes"}).status_code == 404
    assert admin.get("/manage/groups/999999").status_code == 404


def test_admin_sets_password_ends_sessions(stack: Stack, admin: Browser) -> None:
    user = make_user(stack, "reset-by-admin@example.com")
    with Browser(stack.base_url) as b:
        assert b.login(user.email).status_code == 303
        assert signed_in(b)
        short = admin.post(f"/manage/users/{user.id}", user_form(user, password="short"))
        assert short.status_code == 400
        assert signed_in(b)
        r = admin.post(f"/manage/users/{user.id}", user_form(user, password=NEW_PASSWORD))
        assert r.status_code == 303
        assert not signed_in(b)
        assert b.login(user.email).status_code == 401  # the old password is gone
        assert b.login(user.email, NEW_PASSWORD).status_code == 303
        assert signed_in(b)


def test_delete_user(stack: Stack, admin: Browser) -> None:
    user = make_user(stack, "doomed@example.com")
    with Browser(stack.base_url) as b:
        assert b.login(user.email).status_code == 303
        unconfirmed = admin.post(f"/manage/users/{user.id}/delete", {})
        assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.text
        assert user_by_email(stack, user.email) is not None
        r = admin.post(f"/manage/users/{user.id}/delete", {"confirm": "yes"})
        assert r.status_code == 303 and r.headers["location"] == "/manage/users"
        assert not signed_in(b)
        assert b.login(user.email).status_code == 401
    assert user_by_email(stack, user.email) is None
    listing = admin.get("/manage/users").text
    assert "Deleted the account doomed@example.com." in listing  # the flash
    assert f'href="/manage/users/{user.id}"' not in listing
    assert admin.get(f"/manage/users/{user.id}").status_code == 404


def test_admin_cannot_delete_or_demote_self(
    stack: Stack, admin: Browser, admin_user: UserInfo
) -> None:
    r = admin.post(f"/manage/users/{admin_user.id}/delete", {"confirm": "yes"})
    assert r.status_code == 400 and "cannot delete your own account" in r.text
    demote = admin.post(f"/manage/users/{admin_user.id}", user_form(admin_user, group="Users"))
    assert demote.status_code == 400 and "cannot remove yourself from the Admins group" in (
        demote.text
    )
    me = user_by_email(stack, admin_user.email)
    assert me is not None and me.group == "Admins"
    assert signed_in(admin)


# --- groups ---------------------------------------------------------------------------------
def test_create_and_edit_group(stack: Stack, admin: Browser) -> None:
    users_id = group_named(stack, "Users").id
    r = admin.post(
        "/manage/groups",
        {"name": "Researchers", "description": "Lab people", "copy_from": str(users_id)},
    )
    assert r.status_code == 303
    group = group_named(stack, "Researchers")
    assert r.headers["location"] == f"/manage/groups/{group.id}"
    assert group.description == "Lab people"
    assert group.permissions == group_named(stack, "Users").permissions
    assert "Researchers" in admin.get("/manage/groups").text
    dup = admin.post("/manage/groups", {"name": "Researchers"})
    assert dup.status_code == 409 and "already exists" in dup.text
    empty = admin.post("/manage/groups", {"name": "Empty Start"})
    assert empty.status_code == 303 and group_named(stack, "Empty Start").permissions == set()

    page = admin.get(f"/manage/groups/{group.id}").text
    for section in ("Tabs", "Chat rooms", "Profile", "Dashboard", "Bot store"):
        assert f"<legend>{section}</legend>" in page
    assert checked_perms(page) == set(group.permissions)

    wanted = (checked_perms(page) - {"tab_Store"}) | {"Dashboard_read_statistics"}
    r = edit_group(
        admin,
        group.id,
        name="Research",
        description="Lab",
        max_jobs="3",
        requests_per_minute="0",
        perm=wanted,
    )
    assert r.status_code == 303
    after = group_named(stack, "Research")
    assert after.id == group.id and after.description == "Lab"
    assert after.max_jobs == 3 and after.requests_per_minute == 0
    assert after.permissions == wanted
    assert checked_perms(admin.get(f"/manage/groups/{group.id}").text) == wanted

    assert edit_group(admin, group.id, max_jobs="", requests_per_minute="").status_code == 303
    cleared = group_named(stack, "Research")
    assert cleared.max_jobs is None and cleared.requests_per_minute is None
    bad = edit_group(admin, group.id, max_jobs="-1")
    assert bad.status_code == 400 and "Max running jobs must be a whole number" in bad.text
    assert edit_group(admin, group.id, requests_per_minute="many").status_code == 400
    fixed = edit_group(admin, group_named(stack, "Users").id, name="Everyone")
    assert fixed.status_code == 400 and "cannot be renamed" in fixed.text


def test_invite_code(stack: Stack, admin: Browser) -> None:
    assert admin.post("/manage/groups", {"name": "Invited"}).status_code == 303
    group = group_named(stack, "Invited")
    assert group.invite_code is None
    r = admin.post(f"/manage/groups/{group.id}/invite", {"action": "generate"})
    assert r.status_code == 303
    code = group_named(stack, "Invited").invite_code
    assert code
    assert code in admin.get(f"/manage/groups/{group.id}").text
    assert admin.post(f"/manage/groups/{group.id}/invite", {"action": "generate"}).status_code == (
        303
    )
    new_code = group_named(stack, "Invited").invite_code
    assert new_code and new_code != code
    # Sign-up with the code joins the group.
    with Browser(stack.base_url) as b:
        signup = b.post(
            "/signup",
            {
                "name": "Invitee",
                "email": "invitee@example.com",
                "password": PASSWORD,
                "invite": new_code,
            },
        )
        assert signup.status_code == 303
    invitee = user_by_email(stack, "invitee@example.com")
    assert invitee is not None and invitee.group == "Invited"
    assert admin.post(f"/manage/groups/{group.id}/invite", {"action": "clear"}).status_code == 303
    assert group_named(stack, "Invited").invite_code is None
    assert admin.post(f"/manage/groups/{group.id}/invite", {"action": "x"}).status_code == 400


def test_soft_delete_and_restore_group(stack: Stack, admin: Browser) -> None:
    assert admin.post("/manage/groups", {"name": "Temporary"}).status_code == 303
    group = group_named(stack, "Temporary")
    member = make_user(stack, "temp-member@example.com", group="Temporary")
    r = admin.post(f"/manage/groups/{group.id}/delete", {})
    assert r.status_code == 303
    deleted = group_named(stack, "Temporary")
    assert deleted.deleted_at is not None
    listing = admin.get("/manage/groups").text
    assert "Deleted groups" in listing
    assert f'action="/manage/groups/{group.id}/restore"' in listing
    still = user_by_email(stack, member.email)
    assert still is not None and still.permissions == frozenset()  # no rights while deleted
    # A deleted group cannot be edited until restored.
    assert edit_group(admin, group.id, description="nope").status_code == 409
    r = admin.post(f"/manage/groups/{group.id}/restore", {})
    assert r.status_code == 303
    assert group_named(stack, "Temporary").deleted_at is None
    assert f'action="/manage/groups/{group.id}/restore"' not in admin.get("/manage/groups").text
    admins = group_named(stack, "Admins")
    refused = admin.post(f"/manage/groups/{admins.id}/delete", {})
    assert refused.status_code == 400 and "Admins group cannot be deleted" in refused.text
    assert group_named(stack, "Admins").deleted_at is None


def test_admins_keep_tab_manage(stack: Stack, admin: Browser) -> None:
    admins = group_named(stack, "Admins")
    page = admin.get(f"/manage/groups/{admins.id}").text
    r = edit_group(admin, admins.id, perm=checked_perms(page) - {"tab_Manage"})
    assert r.status_code == 400 and "must keep tab_Manage" in r.text
    assert "tab_Manage" in group_named(stack, "Admins").permissions
    renamed = edit_group(admin, admins.id, name="Root")
    assert renamed.status_code == 400
    assert group_named(stack, "Admins").name == "Admins"


def test_model_access_checkbox(stack: Stack, admin: Browser) -> None:
    stack.executor("echo")
    with store_of(stack) as store:
        store.catalog.ensure(["echo"])  # as the gateway does on first sight
    basics = set(permissions.USER_DEFAULTS)
    assert admin.post("/manage/groups", {"name": "Modelless"}).status_code == 303
    group = group_named(stack, "Modelless")
    assert edit_group(admin, group.id, perm=basics).status_code == 303
    assert "model:echo" not in group_named(stack, "Modelless").permissions
    page = admin.get(f"/manage/groups/{group.id}").text
    assert 'value="model:echo"' in page and "<code>echo</code>" in page
    user = make_user(stack, "modeluser@example.com", group="Modelless")
    with store_of(stack) as store:
        token = store.accounts.ensure_token(user.id)

    def ask() -> httpx.Response:
        return httpx.post(
            stack.base_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )

    def eventually(status: int) -> httpx.Response:
        deadline = time.monotonic() + 15
        while (got := ask()).status_code != status:
            assert time.monotonic() < deadline, f"still {got.status_code}, wanted {status}"
            time.sleep(0.2)
        return got

    assert eventually(403).json()["error"]["code"] == "model_not_allowed"
    granted = checked_perms(page) | {"model:echo"}
    assert edit_group(admin, group.id, perm=granted).status_code == 303
    assert "model:echo" in group_named(stack, "Modelless").permissions
    answer = eventually(200).json()
    assert answer["choices"][0]["message"]["content"]
    audit = [e for e in audit_events(stack, "permissions_changed") if e.target == "Modelless"]
    assert any(e.detail == "added: model:echo" for e in audit)


def test_managers_cannot_lock_themselves_out(stack: Stack) -> None:
    manager = make_user(stack, "manager@example.com", permissions=permissions.ALL)
    assert manager.group is not None
    own = group_named(stack, manager.group)
    with Browser(stack.base_url) as b:
        assert b.login(manager.email).status_code == 303
        page = b.get(f"/manage/groups/{own.id}").text
        r = edit_group(b, own.id, perm=checked_perms(page) - {"tab_Manage"})
        assert r.status_code == 400 and "Your own group must keep tab_Manage" in r.text
        r = b.post(f"/manage/groups/{own.id}/delete", {})
        assert r.status_code == 400 and "cannot delete your own group" in r.text
        moved = b.post(f"/manage/users/{manager.id}", user_form(manager, group="Users"))
        assert moved.status_code == 400 and "lock yourself out" in moved.text
    after = group_named(stack, own.name)
    assert after.deleted_at is None and "tab_Manage" in after.permissions
    me = user_by_email(stack, manager.email)
    assert me is not None and me.group == own.name


# --- access and safety ----------------------------------------------------------------------
def test_non_admin_is_refused_everywhere(stack: Stack, admin_user: UserInfo) -> None:
    almost = make_user(
        stack,
        "almost-admin@example.com",
        permissions=[p for p in permissions.ALL if p != "tab_Manage"],
    )
    users_group = group_named(stack, "Users")
    ids = {"user_id": str(admin_user.id), "group_id": str(users_group.id), "room_id": "1"}
    with Browser(stack.base_url) as b:
        assert b.login(almost.email).status_code == 303
        tried = 0
        for route in [*manage_users.routes(), *manage_groups.routes()]:
            path = route.path  # type: ignore[attr-defined]
            for name, value in ids.items():
                path = path.replace(f"{{{name}:id}}", value)
            for method in route.methods or ():  # type: ignore[attr-defined]
                if method == "HEAD":
                    continue
                if method == "GET":
                    r = b.get(path)
                else:
                    r = b.post(
                        path,
                        {
                            "confirm": "yes",
                            "name": "Hacked",
                            "email": "x@example.com",
                            "action": "generate",
                            "perm": ["tab_Manage"],
                        },
                    )
                assert r.status_code == 403, (method, path, r.status_code)
                tried += 1
        assert tried == 13
    me = user_by_email(stack, admin_user.email)
    assert me is not None and me.name == admin_user.name
    assert group_named(stack, "Users").invite_code == users_group.invite_code
    with Browser(stack.base_url) as anonymous:
        assert anonymous.get("/manage/users").status_code == 303  # to sign-in
        assert anonymous.post("/manage/users", {"email": "a@b.c"}).status_code == 401


def test_user_name_is_escaped(stack: Stack, admin: Browser) -> None:
    payload = "<script>alert(1)</script>"
    r = create_user(admin, "xss@example.com", payload)
    assert r.status_code == 303
    listing = admin.get("/manage/users", params={"q": "xss@"}).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert payload not in listing
    user = user_by_email(stack, "xss@example.com")
    assert user is not None
    assert payload not in admin.get(f"/manage/users/{user.id}").text
    assert payload not in admin.get("/manage/users", params={"q": payload}).text


def audit_events(stack: Stack, action: str) -> list[AuditEntry]:
    with store_of(stack) as store:
        return store.audit.query(action=action, limit=1000)


def test_audit_events(stack: Stack, admin: Browser, admin_user: UserInfo) -> None:
    assert create_user(admin, "audited@example.com", "Audited").status_code == 303
    user = user_by_email(stack, "audited@example.com")
    assert user is not None
    assert (
        admin.post(
            f"/manage/users/{user.id}", user_form(user, name="Audited Two", password=NEW_PASSWORD)
        ).status_code
        == 303
    )
    assert admin.post("/manage/groups", {"name": "Audited Group"}).status_code == 303
    group = group_named(stack, "Audited Group")
    assert edit_group(admin, group.id, description="changed", perm={"tab_Room"}).status_code == 303
    assert admin.post(f"/manage/groups/{group.id}/delete", {}).status_code == 303
    assert admin.post(f"/manage/groups/{group.id}/restore", {}).status_code == 303
    assert admin.post(f"/manage/users/{user.id}/delete", {"confirm": "yes"}).status_code == 303

    def one(action: str, target: str) -> AuditEntry:
        found = [e for e in audit_events(stack, action) if e.target == target]
        assert found, f"no {action} event for {target}"
        entry = found[0]
        assert entry.user_id == admin_user.id and entry.actor == admin_user.email
        assert entry.ip == "127.0.0.1"
        return entry

    assert "group Users" in one("user_created", "audited@example.com").detail
    assert "name 'Audited' -> 'Audited Two'" in one("user_updated", "audited@example.com").detail
    one("password_set_by_admin", "audited@example.com")
    one("user_deleted", "audited@example.com")
    one("group_created", "Audited Group")
    assert "description" in one("group_updated", "Audited Group").detail
    assert one("permissions_changed", "Audited Group").detail == "added: tab_Room"
    one("group_deleted", "Audited Group")
    one("group_restored", "Audited Group")
    with store_of(stack) as store:
        every = store.audit.query(limit=10000)
    for entry in every:
        assert PASSWORD not in entry.detail and NEW_PASSWORD not in entry.detail
