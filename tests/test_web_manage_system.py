"""Manage pages end to end: the model catalog (with live executors), system settings and the
audit log, on a real gateway with a debug executor serving ``echo``."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.datastructures import FormData, UploadFile

from kuwa.accounts import ModelInfo, permissions
from kuwa.errors import InvalidRequestError, NotFoundError
from kuwa.web import manage_audit, manage_models, manage_system
from tests.stack import RedisServer, Stack, wait_until
from tests.web import Browser, make_user, store_of

ADMIN = "admin@example.com"
USER = "someone@example.com"
OUTSIDER = "outsider@example.com"  # every permission but tab_Manage
# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("manage-system")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.executor("echo")
        s.base_url = s.gateway()
        make_user(s, ADMIN, admin=True)
        make_user(s, USER)
        make_user(s, OUTSIDER, permissions=[p for p in permissions.ALL if p != "tab_Manage"])
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture(autouse=True)
def clean_state(stack: Stack) -> None:
    """Open sign-up, no announcement or terms, and no login throttling, before each test."""
    client = stack.redis.client()
    for key in client.scan_iter("kuwa:login:fail:*"):
        client.delete(key)
    client.close()
    with store_of(stack) as store:
        store.system.update(registration="open", allowed_domains="", announcement="", terms="")


@pytest.fixture
def admin(stack: Stack) -> Iterator[Browser]:
    with Browser(stack.base_url) as b:
        assert b.login(ADMIN).status_code == 303
        yield b


def row(html: str, code: str) -> str:
    """The table row that shows access code ``code``."""
    for tr in re.findall(r"<tr>.*?</tr>", html, re.DOTALL):
        if f"<code>{code}</code>" in tr:
            return str(tr)
    raise AssertionError(f"no row for {code!r}")


def model(stack: Stack, code: str, *, include_deleted: bool = False) -> ModelInfo:
    with store_of(stack) as store:
        return store.catalog.get(code, include_deleted=include_deleted)


def edit_form(m: ModelInfo, **changes: Any) -> dict[str, Any]:
    """The edit form of ``m`` as a browser would send it, with ``changes``."""
    data: dict[str, Any] = {
        "name": m.name,
        "description": m.description,
        "image": "" if m.image.startswith("data:") else m.image,
        "order": str(m.order),
        "modelfile": m.modelfile,
        "react_buttons": list(m.react_buttons),
        "queue_timeout": "" if m.queue_timeout is None else str(m.queue_timeout),
        "idle_timeout": "" if m.idle_timeout is None else str(m.idle_timeout),
        "enabled": "1" if m.enabled else None,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def audited(stack: Stack, action: str) -> list[Any]:
    with store_of(stack) as store:
        return store.audit.query(action=action)


def ensure_echo(admin: Browser, stack: Stack) -> None:
    with store_of(stack) as store:
        known = [m.access_code for m in store.catalog.list_models()]
    if "echo" not in known:
        assert (
            admin.post("/manage/models", {"access_code": "echo", "quick": "1"}).status_code == 303
        )


# --- models ---------------------------------------------------------------------------------
def test_models_list_shows_live_executors_and_adds_served_codes(
    stack: Stack, admin: Browser
) -> None:
    page = admin.get("/manage/models")
    assert page.status_code == 200
    if "Served but not in the catalog" in page.text:  # nothing registered echo yet
        assert 'name="access_code" value="echo"' in page.text
        r = admin.post("/manage/models", {"access_code": "echo", "quick": "1"})
        assert r.status_code == 303 and r.headers["location"] == "/manage/models"
        assert any(e.target == "echo" for e in audited(stack, "model_created"))
    echo = model(stack, "echo")
    assert echo.enabled and echo.name == "echo"
    page = admin.get("/manage/models")
    assert "Served but not in the catalog" not in page.text
    assert "1 live executor" in row(page.text, "echo")
    assert "/manage/models/edit/echo" in page.text


def test_create_edit_delete_restore(stack: Stack, admin: Browser) -> None:
    code = "team/qa:v1@x"
    r = admin.post(
        "/manage/models",
        {
            "access_code": code,
            "name": "QA bot",
            "description": "Answers questions",
            "image": "https://example.org/qa.png",
            "order": "5",
            "enabled": "1",
            "react_buttons": ["copy", "feedback"],
            "queue_timeout": "30",
            "idle_timeout": "",
            "modelfile": "SYSTEM You check things.\nPARAMETER temperature 0.2\n",
        },
    )
    assert r.status_code == 303, r.text
    m = model(stack, code)
    assert (m.name, m.description, m.order, m.enabled) == ("QA bot", "Answers questions", 5, True)
    assert m.react_buttons == ("copy", "feedback")
    assert (m.queue_timeout, m.idle_timeout) == (30.0, None)
    assert m.image == "https://example.org/qa.png"
    assert m.modelfile.startswith("SYSTEM You check things.")
    page = admin.get("/manage/models")
    assert "Model QA bot (team/qa:v1@x) is added." in page.text
    listed = row(page.text, code)
    assert "no executor" in listed and 'src="https://example.org/qa.png"' in listed
    assert any(e.target == code and e.actor == ADMIN for e in audited(stack, "model_created"))

    invalid = admin.post("/manage/models", {"access_code": "no spaces", "name": "Bad"})
    assert invalid.status_code == 400 and "not a valid access code" in invalid.text
    missing = admin.post("/manage/models", {"access_code": "", "name": "Bad"})
    assert missing.status_code == 400 and "Enter an access code" in missing.text
    again = admin.post("/manage/models", {"access_code": code, "name": "Twice"})
    assert again.status_code == 409 and "already exists" in again.text

    form = admin.get(f"/manage/models/edit/{code}")
    assert form.status_code == 200 and "QA bot" in form.text
    r = admin.post(
        f"/manage/models/edit/{code}", edit_form(m, name="QA bot 2", enabled=None, order="7")
    )
    assert r.status_code == 303, r.text
    m = model(stack, code)
    assert (m.name, m.enabled, m.order) == ("QA bot 2", False, 7)
    assert m.react_buttons == ("copy", "feedback") and m.queue_timeout == 30.0
    update = next(e for e in audited(stack, "model_updated") if e.target == code)
    assert "name" in update.detail and "enabled" in update.detail and "order" in update.detail
    assert "disabled" in row(admin.get("/manage/models").text, code)

    empty_name = admin.post(f"/manage/models/edit/{code}", edit_form(m, name=""))
    assert empty_name.status_code == 400 and "name" in empty_name.text
    bad_order = admin.post(f"/manage/models/edit/{code}", edit_form(m, order="first"))
    assert bad_order.status_code == 400 and "whole number" in bad_order.text
    reset = admin.post(f"/manage/models/edit/{code}", edit_form(m, queue_timeout=""))
    assert reset.status_code == 303  # an emptied timeout goes back to the server's default
    assert model(stack, code).queue_timeout is None and model(stack, code).name == "QA bot 2"

    r = admin.post(f"/manage/models/delete/{code}")
    assert r.status_code == 303
    with pytest.raises(NotFoundError):
        model(stack, code)
    assert model(stack, code, include_deleted=True).deleted_at is not None
    page = admin.get("/manage/models").text
    deleted = page.split("Deleted models", 1)[1]
    assert f"/manage/models/restore/{quote(code)}" in deleted and "Restore" in deleted
    assert admin.get(f"/manage/models/edit/{code}").status_code == 404
    assert any(e.target == code for e in audited(stack, "model_deleted"))

    r = admin.post(f"/manage/models/restore/{code}")
    assert r.status_code == 303
    assert model(stack, code).name == "QA bot 2"
    assert any(e.target == code for e in audited(stack, "model_restored"))

    assert admin.get("/manage/models/edit/no-such-model").status_code == 404
    assert admin.post("/manage/models/delete/no-such-model").status_code == 404
    assert admin.post("/manage/models/restore/no-such-model").status_code == 404


def test_disabling_a_model_hides_it_from_the_api(stack: Stack, admin: Browser) -> None:
    ensure_echo(admin, stack)
    with store_of(stack) as store:
        user = store.accounts.find_user(USER)
        assert user is not None
        token = store.accounts.ensure_token(user.id)

    def chat() -> int:
        r = httpx.post(
            stack.base_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        return r.status_code

    assert chat() == 200
    echo = model(stack, "echo")
    try:
        r = admin.post("/manage/models/edit/echo", edit_form(echo, enabled=None))
        assert r.status_code == 303, r.text
        assert not model(stack, "echo").enabled
        wait_until(lambda: chat() == 404, 10, "the disabled model to 404")
    finally:
        admin.post("/manage/models/edit/echo", edit_form(echo, enabled="1"))
    wait_until(lambda: chat() == 200, 10, "the model to answer again")


def test_invalid_modelfile_names_the_line(stack: Stack, admin: Browser) -> None:
    r = admin.post(
        "/manage/models",
        {
            "access_code": "bad-modelfile",
            "enabled": "1",
            "modelfile": "SYSTEM fine\nPARAMETER temperature 0.1\nSYSTEMS oops",
        },
    )
    assert r.status_code == 400
    assert "Modelfile line 3" in r.text and "unknown command" in r.text
    assert "SYSTEMS oops</textarea>" in r.text  # the form comes back as sent
    with pytest.raises(NotFoundError):
        model(stack, "bad-modelfile")

    ensure_echo(admin, stack)
    echo = model(stack, "echo")
    r = admin.post(
        "/manage/models/edit/echo", edit_form(echo, modelfile='SYSTEM ok\nSYSTEM """never closed')
    )
    assert r.status_code == 400 and "Modelfile line 2" in r.text
    assert model(stack, "echo").modelfile == echo.modelfile


def test_image_upload_becomes_a_data_url(stack: Stack, admin: Browser) -> None:
    r = admin.post(
        "/manage/models",
        {"access_code": "pictured", "name": "Pictured", "enabled": "1"},
        files={"image_file": ("logo.png", PNG, "image/png")},
    )
    assert r.status_code == 303, r.text
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert model(stack, "pictured").image == data_url
    assert f'src="{data_url}"' in row(admin.get("/manage/models").text, "pictured")

    # Saving the edit form without a new file keeps the uploaded image; "remove" drops it.
    m = model(stack, "pictured")
    assert admin.post("/manage/models/edit/pictured", edit_form(m, name="P2")).status_code == 303
    assert model(stack, "pictured").image == data_url
    r = admin.post("/manage/models/edit/pictured", edit_form(m, remove_image="1"))
    assert r.status_code == 303 and model(stack, "pictured").image == ""

    for name, content in (
        ("notes.png", b"just text, not an image"),
        ("page.svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>'),
    ):
        r = admin.post(
            "/manage/models",
            {"access_code": "not-pictured", "enabled": "1"},
            files={"image_file": (name, content, "image/png")},
        )
        assert r.status_code == 400 and "is not a PNG, JPEG, GIF or WebP image" in r.text
    big = PNG[:16] + b"\0" * (200 * 1024)
    r = admin.post(
        "/manage/models",
        {"access_code": "not-pictured", "enabled": "1"},
        files={"image_file": ("big.png", big, "image/png")},
    )
    assert r.status_code == 400 and "too large" in r.text
    r = admin.post(
        "/manage/models", {"access_code": "not-pictured", "image": "javascript:alert(1)"}
    )
    assert r.status_code == 400
    with pytest.raises(NotFoundError):
        model(stack, "not-pictured")


def test_uploaded_images_are_checked() -> None:
    """The upload rules on their own (the end-to-end test above needs multipart CSRF)."""

    def upload(name: str, data: bytes) -> str | None:
        form = FormData([("image_file", UploadFile(io.BytesIO(data), filename=name))])
        return asyncio.run(manage_models.uploaded_image(form))

    assert upload("a.png", PNG) == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert upload("a.gif", b"GIF89a" + b"\0" * 20) is not None
    assert upload("a.webp", b"RIFF\0\0\0\0WEBPVP8 ") is not None
    assert str(upload("a.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 20)).startswith("data:image/jpeg;")
    assert upload("", b"") is None  # no file chosen
    assert asyncio.run(manage_models.uploaded_image(FormData([("image_file", "")]))) is None
    for name, data in (("a.png", b"text"), ("a.svg", b"<svg></svg>"), ("a.html", b"<html>")):
        with pytest.raises(InvalidRequestError, match="not a PNG, JPEG, GIF or WebP"):
            upload(name, data)
    with pytest.raises(InvalidRequestError, match="too large"):
        upload("big.png", PNG + b"\0" * manage_models.MAX_UPLOAD)
    assert upload("edge.png", PNG + b"\0" * (manage_models.MAX_UPLOAD - len(PNG))) is not None


def test_model_name_is_escaped(stack: Stack, admin: Browser) -> None:
    r = admin.post(
        "/manage/models",
        {"access_code": "xss-model", "name": XSS, "description": XSS, "enabled": "1"},
    )
    assert r.status_code == 303
    for path in ("/manage/models", "/manage/models/edit/xss-model"):
        page = admin.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


# --- system settings ------------------------------------------------------------------------
def signup(b: Browser, email: str, invite: str = "") -> httpx.Response:
    return b.post(
        "/signup",
        {"name": "New Person", "email": email, "password": "a long password", "invite": invite},
    )


def user_exists(stack: Stack, email: str) -> bool:
    with store_of(stack) as store:
        return store.accounts.find_user(email) is not None


def test_system_page_shows_status(admin: Browser) -> None:
    page = admin.get("/manage/system")
    assert page.status_code == 200
    assert "Mail (SMTP)" in page.text and "not configured" in page.text
    assert "Auto-register models" in page.text and 'value="open" selected' in page.text


def test_registration_closed(stack: Stack, admin: Browser) -> None:
    r = admin.post(
        "/manage/system",
        {"registration": "closed", "allowed_domains": "", "announcement": "", "terms": ""},
    )
    assert r.status_code == 303
    assert "changed: registration" in audited(stack, "system_updated")[0].detail
    with Browser(stack.base_url) as anon:
        page = anon.get("/signup")
        assert page.status_code == 403 and "closed" in page.text
        assert signup(anon, "closed@example.com").status_code == 403
    assert not user_exists(stack, "closed@example.com")


def test_registration_by_invite(stack: Stack, admin: Browser) -> None:
    with store_of(stack) as store:
        store.groups.create("Invited", permissions=["tab_Room"], invite_code="join-us-2024")
    r = admin.post(
        "/manage/system",
        {"registration": "invite", "allowed_domains": "", "announcement": "", "terms": ""},
    )
    assert r.status_code == 303
    with Browser(stack.base_url) as anon:
        r = signup(anon, "noinvite@example.com")
        assert r.status_code == 400 and "invite code" in r.text
        r = signup(anon, "badinvite@example.com", "wrong-code")
        assert r.status_code == 400 and "not valid" in r.text
        assert signup(anon, "invited@example.com", "join-us-2024").status_code == 303
    assert not user_exists(stack, "noinvite@example.com")
    assert not user_exists(stack, "badinvite@example.com")
    with store_of(stack) as store:
        invited = store.accounts.find_user("invited@example.com")
        assert invited is not None and invited.group == "Invited"


def test_allowed_domains(stack: Stack, admin: Browser) -> None:
    r = admin.post(
        "/manage/system",
        {
            "registration": "open",
            "allowed_domains": "example.org,\n@Example.net",
            "announcement": "",
            "terms": "",
        },
    )
    assert r.status_code == 303
    with store_of(stack) as store:
        assert store.system.load().allowed_domains == ("example.org", "example.net")
    with Browser(stack.base_url) as anon:
        r = signup(anon, "elsewhere@example.com")
        assert r.status_code == 400 and "@example.org" in r.text
        assert signup(anon, "member@example.net").status_code == 303
    assert not user_exists(stack, "elsewhere@example.com")
    assert user_exists(stack, "member@example.net")

    bad = admin.post(
        "/manage/system",
        {
            "registration": "open",
            "allowed_domains": "not a domain",
            "announcement": "",
            "terms": "",
        },
    )
    assert bad.status_code == 400 and "is not an email domain" in bad.text
    bad = admin.post(
        "/manage/system",
        {"registration": "sometimes", "allowed_domains": "", "announcement": "", "terms": ""},
    )
    assert bad.status_code == 400


def test_announcement_is_shown_and_escaped(stack: Stack, admin: Browser) -> None:
    r = admin.post(
        "/manage/system",
        {
            "registration": "open",
            "allowed_domains": "",
            "announcement": "Maintenance at noon " + XSS,
            "terms": "",
        },
    )
    assert r.status_code == 303
    with Browser(stack.base_url) as anon:
        page = anon.get("/login").text
    assert "Maintenance at noon" in page
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page
    assert "announcement" in audited(stack, "system_updated")[0].detail


def accept_terms(b: Browser) -> None:
    r = b.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/terms"
    assert b.post("/terms", {"accept": "yes"}).status_code == 303


def test_terms_of_service(stack: Stack, admin: Browser) -> None:
    settings = {"registration": "open", "allowed_domains": "", "announcement": ""}
    assert admin.post("/manage/system", {**settings, "terms": "Be kind."}).status_code == 303
    detail = audited(stack, "system_updated")[0].detail
    assert "terms" in detail and "version" in detail
    with Browser(stack.base_url) as user:
        assert user.login(USER).status_code == 303
        r = user.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/terms"
        assert "Be kind." in user.get("/terms").text
        accept_terms(user)
        assert user.get("/").status_code == 200

        accept_terms(admin)  # the admin is asked too
        r = admin.post("/manage/system", {**settings, "terms": "Be kind. Be brief."})
        assert r.status_code == 303
        r = user.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/terms"
        assert "Be brief." in user.get("/terms").text
        accept_terms(user)
        assert user.get("/").status_code == 200


# --- audit log ------------------------------------------------------------------------------
def test_audit_log_lists_and_filters(stack: Stack, admin: Browser) -> None:
    stamp = f"wrong{int(time.time() * 1000)}@example.com"
    with Browser(stack.base_url) as anon:
        assert anon.login(stamp, "not the password").status_code == 401
    page = admin.get("/manage/audit")
    assert page.status_code == 200
    failed = row(page.text, "login_failed")
    assert "<th>Time</th>" in page.text
    assert '<option value="login_failed"' in page.text

    page = admin.get("/manage/audit", params={"action": "login_failed"})
    body = page.text.split("<tbody>", 1)[1]
    assert stamp in body and "failed" in body
    assert set(re.findall(r"<td><code>([^<]+)</code></td>", body)) == {"login_failed"}
    assert '<option value="login_failed" selected' in page.text
    assert stamp in failed

    page = admin.get("/manage/audit", params={"actor": stamp[:12].upper()})
    assert stamp in page.text
    page = admin.get("/manage/audit", params={"action": "login_failed", "ok": "ok"})
    assert stamp not in page.text and "match these filters" in page.text
    page = admin.get("/manage/audit", params={"ip": "203.0.113.9"})
    assert stamp not in page.text
    page = admin.get("/manage/audit", params={"page": "999"})
    assert page.status_code == 200 and "Page 999" in page.text
    assert admin.get("/manage/audit", params={"page": "x"}).status_code == 200


def test_audit_log_pages(stack: Stack, admin: Browser) -> None:
    with store_of(stack) as store:
        for i in range(manage_audit.PAGE_SIZE + 5):
            store.audit.record("paging_test", actor=f"pager{i}@example.com")
    first = admin.get("/manage/audit", params={"action": "paging_test"}).text
    assert "pager54@example.com" in first and "pager4@example.com" not in first
    assert "/manage/audit?action=paging_test&amp;page=2" in first
    second = admin.get("/manage/audit", params={"action": "paging_test", "page": "2"}).text
    assert "pager4@example.com" in second and "pager54@example.com" not in second
    assert "Older" not in second and "Newer" in second


# --- access ---------------------------------------------------------------------------------
def test_only_managers_may_use_these_pages(stack: Stack, admin: Browser) -> None:
    ensure_echo(admin, stack)
    before = model(stack, "echo")
    routes = [
        (method, route.path.replace("{code:path}", "echo"))
        for route in [*manage_models.routes(), *manage_system.routes(), *manage_audit.routes()]
        for method in sorted(getattr(route, "methods", set()) - {"HEAD"})
    ]
    assert len(routes) == 9
    with Browser(stack.base_url) as outsider:
        assert outsider.login(OUTSIDER).status_code == 303
        assert outsider.get("/").status_code == 200
        for method, path in routes:
            if method == "GET":
                r = outsider.get(path)
            else:
                r = outsider.post(path, {"access_code": "sneaky", "name": "x", "enabled": "1"})
            assert r.status_code == 403, (method, path, r.status_code)
    with Browser(stack.base_url) as anon:
        for method, path in routes:
            r = anon.get(path) if method == "GET" else anon.post(path, {})
            assert r.status_code in (303, 401), (method, path)
    assert model(stack, "echo") == before
    with pytest.raises(NotFoundError):
        model(stack, "sneaky")
