"""The Profile page against real gateways: name, email (with and without mail), password, API
token, provider keys, deleting the account, and who may do each."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import itsdangerous
import pytest

from kuwa import keys
from kuwa.accounts import PROVIDERS, permissions
from kuwa.web.security import derive_secret
from tests.smtpserver import Received, SmtpServer
from tests.stack import RedisServer, Stack
from tests.web import PASSWORD, SESSION_COOKIE, Browser, make_user, store_of

ALL_PROFILE = {"tab_Profile", *permissions.PROFILE}
SECRET_KEY = "sk-test-Zq8vN3kYpW1xA7"
NEW_PASSWORD = "a whole new password"


@dataclass
class Site:
    stack: Stack
    base: str  # a gateway without mail
    mail_base: str  # a gateway that sends mail to ``smtp``
    smtp: SmtpServer


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder: Path = tmp_path_factory.mktemp("profile")
    server = RedisServer(folder / "redis")
    stack = Stack(folder, server)
    smtp = SmtpServer().start()
    try:
        base = stack.gateway()
        mail_base = stack.gateway(
            {
                "KUWA_SMTP_HOST": smtp.host,
                "KUWA_SMTP_PORT": str(smtp.port),
                "KUWA_SMTP_SECURITY": "none",
            }
        )
        yield Site(stack, base, mail_base, smtp)
    finally:
        stack.stop()
        smtp.stop()
        server.stop()


@pytest.fixture
def browser(site: Site) -> Iterator[Browser]:
    with Browser(site.base) as b:
        yield b


def signed_in(site: Site, email: str, *, base: str | None = None) -> Browser:
    b = Browser(base or site.base)
    r = b.login(email)
    assert r.status_code == 303, r.text
    return b


def verified(site: Site, email: str) -> None:
    """Mark the address confirmed (the mail gateway refuses sign-in before that)."""
    with store_of(site.stack) as store:
        user = store.accounts.find_user(email)
        assert user is not None
        store.accounts.update_user(user.id, email_verified=True)


def api_status(base: str, token: str) -> int:
    r = httpx.get(base + "/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return r.status_code


def flash_after(b: Browser, r: httpx.Response) -> str:
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/profile"
    page = b.get("/profile")
    assert page.status_code == 200
    return page.text


def audit(site: Site, action: str) -> list[tuple[str, str, str, int | None]]:
    with store_of(site.stack) as store:
        return [(e.actor, e.target, e.detail, e.user_id) for e in store.audit.query(action=action)]


# --- the page -------------------------------------------------------------------------------
def test_page_shows_every_section_to_a_default_user(site: Site) -> None:
    user = make_user(site.stack, "page@example.com")
    with signed_in(site, user.email) as b:
        r = b.get("/profile")
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-store"
        for action in ("name", "email", "password", "token", "keys", "delete"):
            assert f'action="/profile/{action}"' in r.text
        with store_of(site.stack) as store:
            token = store.accounts.ensure_token(user.id)
        assert f'<code class="token" id="api-token">{token}</code>' in r.text
        assert r.text.count('name="csrftoken"') >= 7  # six sections and sign-out
        assert 'name="viewport"' in r.text


def test_signed_out_is_sent_to_sign_in(browser: Browser) -> None:
    r = browser.get("/profile")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    assert browser.post("/profile/name", {"name": "x"}).status_code == 401


def test_post_without_csrf_token_is_refused(site: Site) -> None:
    user = make_user(site.stack, "csrf@example.com")
    with signed_in(site, user.email) as b:
        r = b.post("/profile/name", {"name": "Forged"}, csrf=False)
        assert r.status_code == 403
        with store_of(site.stack) as store:
            assert store.accounts.get_user(user.id).name == "Web Tester"  # type: ignore[union-attr]


PERMISSION_ROUTES = [
    ("Profile_update_name", "/profile/name", {"name": "New Name"}),
    ("Profile_update_email", "/profile/email", {"email": "x@example.com", "password": PASSWORD}),
    (
        "Profile_update_password",
        "/profile/password",
        {"current": PASSWORD, "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
    ),
    ("Profile_update_api_token", "/profile/token", {}),
    ("Profile_update_external_api_token", "/profile/keys", {"key_openai": SECRET_KEY}),
    ("Profile_delete_account", "/profile/delete", {"password": PASSWORD, "confirm": "yes"}),
]


@pytest.mark.parametrize(("permission", "path", "form"), PERMISSION_ROUTES)
def test_each_post_needs_its_permission(
    site: Site, permission: str, path: str, form: dict[str, str]
) -> None:
    email = f"no-{permission.lower().replace('_', '-')}@example.com"
    user = make_user(site.stack, email, permissions=ALL_PROFILE - {permission})
    with signed_in(site, email) as b:
        page = b.get("/profile")
        assert page.status_code == 200
        assert f'action="{path}"' not in page.text  # the section is not shown
        r = b.post(path, form)
        assert r.status_code == 403
        assert "may not use this page" in r.text
        assert b.signed_in()  # nothing happened: still signed in, account still there
    with store_of(site.stack) as store:
        after = store.accounts.get_user(user.id)
        assert after is not None
        assert after.name == user.name and after.email == user.email
        assert store.accounts.check_password(email, PASSWORD) is not None
        assert store.identities.key_providers(user.id) == []


def test_without_tab_profile_the_page_is_refused(site: Site) -> None:
    email = "no-tab@example.com"
    make_user(site.stack, email, permissions=ALL_PROFILE - {"tab_Profile"})
    with Browser(site.base) as b:
        b.login(email)
        assert b.get("/profile").status_code == 403


# --- name -----------------------------------------------------------------------------------
def test_change_name(site: Site) -> None:
    user = make_user(site.stack, "name@example.com")
    with signed_in(site, user.email) as b:
        bad = b.post("/profile/name", {"name": "   "})
        assert bad.status_code == 400
        assert "name must be 1 to 200 characters" in bad.text
        text = flash_after(b, b.post("/profile/name", {"name": "Ada <Lovelace>"}))
        assert "Your name is saved." in text
        assert 'value="Ada &lt;Lovelace&gt;"' in text  # escaped
    with store_of(site.stack) as store:
        assert store.accounts.get_user(user.id).name == "Ada <Lovelace>"  # type: ignore[union-attr]
    assert audit(site, "name_changed")[0][:2] == (user.email, "")


# --- password -------------------------------------------------------------------------------
def test_change_password_ends_other_sessions(site: Site) -> None:
    user = make_user(site.stack, "pw@example.com")
    other = signed_in(site, user.email)
    with signed_in(site, user.email) as b:
        form = {"current": PASSWORD, "password": NEW_PASSWORD, "password2": NEW_PASSWORD}
        wrong = b.post("/profile/password", form | {"current": "not my password"})
        assert wrong.status_code == 401
        assert "current password is wrong" in wrong.text
        differ = b.post("/profile/password", form | {"password2": "something else"})
        assert differ.status_code == 400
        assert "differ" in differ.text
        short = b.post("/profile/password", form | {"password": "short", "password2": "short"})
        assert short.status_code == 400
        assert "at least 8 characters" in short.text
        same = b.post("/profile/password", form | {"password": PASSWORD, "password2": PASSWORD})
        assert same.status_code == 400
        assert other.signed_in()  # refusals changed nothing

        text = flash_after(b, b.post("/profile/password", form))
        assert "Your password is changed." in text
        assert b.signed_in()  # this browser stays signed in
    assert not other.signed_in()  # the other one was signed out
    other.close()
    with store_of(site.stack) as store:
        assert store.accounts.check_password(user.email, PASSWORD) is None
        assert store.accounts.check_password(user.email, NEW_PASSWORD) is not None
    with Browser(site.base) as b:
        assert b.login(user.email, NEW_PASSWORD).status_code == 303
    assert any(actor == user.email for actor, *_ in audit(site, "password_changed"))


# --- API token ------------------------------------------------------------------------------
def test_renew_token(site: Site) -> None:
    user = make_user(site.stack, "token@example.com")
    with signed_in(site, user.email) as b:
        page = b.get("/profile").text
        old = re.search(r'id="api-token">([^<]+)</code>', page)
        assert old is not None
        old_token = old.group(1)
        assert api_status(site.base, old_token) == 200  # now cached by the gateway
        text = flash_after(b, b.post("/profile/token"))
        assert "Your API token is renewed." in text
        new = re.search(r'id="api-token">([^<]+)</code>', text)
        assert new is not None and new.group(1) != old_token
    assert api_status(site.base, old_token) == 401  # the cache dropped it at once
    assert api_status(site.base, new.group(1)) == 200
    with store_of(site.stack) as store:
        assert [t.token for t in store.accounts.list_tokens(user.id)] == [new.group(1)]
    entries = [e for e in audit(site, "token_renewed") if e[0] == user.email]
    assert entries and all(old_token not in e[2] for e in entries)


def test_token_is_hidden_without_read_permission(site: Site) -> None:
    email = "token-hidden@example.com"
    user = make_user(site.stack, email, permissions=ALL_PROFILE - {"Profile_read_api_token"})
    with store_of(site.stack) as store:
        token = store.accounts.ensure_token(user.id)
    with signed_in(site, email) as b:
        page = b.get("/profile")
        assert page.status_code == 200
        assert token not in page.text
        assert 'id="api-token"' not in page.text
        assert 'action="/profile/token"' in page.text  # may still renew
        after = b.get(b.post("/profile/token").headers["location"])
        assert "renewed" in after.text
        with store_of(site.stack) as store:
            [renewed] = store.accounts.list_tokens(user.id)
        assert renewed.token and renewed.token not in after.text


# --- provider keys --------------------------------------------------------------------------
def test_provider_keys_are_stored_encrypted_and_never_shown(site: Site) -> None:
    user = make_user(site.stack, "keys@example.com")
    with signed_in(site, user.email) as b:
        page = b.get("/profile").text
        for provider in PROVIDERS:
            assert f'name="key_{provider}"' in page
        assert "key stored" not in page

        bad = b.post("/profile/keys", {"key_google": "two words"})
        assert bad.status_code == 400
        assert "does not look like an API key" in bad.text

        text = flash_after(b, b.post("/profile/keys", {"key_openai": SECRET_KEY}))
        assert "Your provider keys are saved (OpenAI)." in text
        assert SECRET_KEY not in text
        assert text.count("key stored") == 1
        assert 'name="remove_openai"' in text and 'name="remove_google"' not in text

        with store_of(site.stack) as store:
            assert store.identities.get_key(user.id, "openai") == SECRET_KEY
            assert store.identities.key_providers(user.id) == ["openai"]
            rows = store.db.execute_sql(
                "SELECT provider, encrypted FROM provider_keys WHERE user_id = ?".replace(
                    "?", store.db.param
                ),
                (user.id,),
            ).fetchall()
        assert len(rows) == 1 and rows[0][0] == "openai"
        assert SECRET_KEY not in rows[0][1] and "Zq8vN3kYpW1xA7" not in rows[0][1]

        # Both at once is ambiguous; an empty form changes nothing.
        both = b.post("/profile/keys", {"key_openai": "sk-other", "remove_openai": "yes"})
        assert both.status_code == 400
        assert "Nothing to change" in flash_after(b, b.post("/profile/keys", {}))

        text = flash_after(b, b.post("/profile/keys", {"remove_openai": "yes"}))
        assert "key stored" not in text
        with store_of(site.stack) as store:
            assert store.identities.key_providers(user.id) == []
    for action in ("provider_key_set", "provider_key_removed"):
        entries = [e for e in audit(site, action) if e[0] == user.email]
        assert [e[1] for e in entries] == ["openai"]
        assert all(SECRET_KEY not in part for e in entries for part in e[:3])


# --- email ----------------------------------------------------------------------------------
def test_change_email_without_mail(site: Site) -> None:
    user = make_user(site.stack, "old@example.com")
    make_user(site.stack, "taken@example.com")
    with signed_in(site, user.email) as b:
        form = {"email": "New@Example.com", "password": PASSWORD}
        wrong = b.post("/profile/email", form | {"password": "nope nope nope"})
        assert wrong.status_code == 401
        missing = b.post("/profile/email", form | {"password": ""})
        assert missing.status_code == 400
        invalid = b.post("/profile/email", form | {"email": "not-an-address"})
        assert invalid.status_code == 400
        assert "is not an email address" in invalid.text
        same = b.post("/profile/email", form | {"email": user.email})
        assert same.status_code == 400
        taken = b.post("/profile/email", form | {"email": "taken@example.com"})
        assert taken.status_code == 409
        assert "belongs to another account" in taken.text

        text = flash_after(b, b.post("/profile/email", form))
        assert "Your email is now new@example.com. It is not verified" in text
    with store_of(site.stack) as store:
        after = store.accounts.get_user(user.id)
        assert after is not None
        assert after.email == "new@example.com" and not after.email_verified
    with Browser(site.base) as b:
        assert b.login("new@example.com").status_code == 303
        assert b.login("old@example.com").status_code == 401
    [entry] = [e for e in audit(site, "email_changed") if e[1] == "new@example.com"]
    assert entry[0] == "old@example.com"


def mail_to(smtp: SmtpServer, address: str, count: int) -> Received:
    got = [m for m in smtp.wait_for(count, timeout=10) if address in m.rcpt_tos]
    assert got, f"no mail to {address}"
    return got[-1]


def test_change_email_with_mail(site: Site) -> None:
    user = make_user(site.stack, "mover@example.com")
    verified(site, user.email)
    before = len(site.smtp.messages)
    with signed_in(site, user.email, base=site.mail_base) as b:
        r = b.post("/profile/email", {"email": "moved@example.com", "password": PASSWORD})
        text = flash_after(b, r)
        assert "We sent a link to moved@example.com" in text
        with store_of(site.stack) as store:
            assert store.accounts.get_user(user.id).email == user.email  # type: ignore[union-attr]

        mail = mail_to(site.smtp, "moved@example.com", before + 1)
        assert mail["Subject"] == "Confirm your new email for Kuwa"
        body = mail.message.get_content()
        found = re.search(r"(http://\S+/profile/email/confirm\?code=\S+)", body)
        assert found is not None
        confirm = found.group(1)
        assert confirm.startswith(site.mail_base)

        # Opened on another device, where nobody is signed in: the code is enough.
        with Browser(site.mail_base) as phone:
            done = phone.open_link(confirm)
            assert done.status_code == 303
            assert done.headers["location"] == "/login"
            assert "Your email is now moved@example.com" in phone.get("/login").text
            again = phone.open_link(confirm)
            assert again.status_code == 400  # single use
        assert "moved@example.com" in b.get("/profile").text  # still signed in here

    with store_of(site.stack) as store:
        after = store.accounts.get_user(user.id)
        assert after is not None
        assert after.email == "moved@example.com" and after.email_verified
    notice = mail_to(site.smtp, "mover@example.com", before + 2)
    assert notice["Subject"] == "Your Kuwa email was changed"
    with Browser(site.mail_base) as b:
        assert b.login("moved@example.com").status_code == 303


def test_email_change_to_a_taken_address_with_mail_tells_no_one_but_its_owner(
    site: Site,
) -> None:
    user = make_user(site.stack, "curious@example.com")
    verified(site, user.email)
    make_user(site.stack, "owner@example.com")
    before = len(site.smtp.messages)
    with signed_in(site, user.email, base=site.mail_base) as b:
        r = b.post("/profile/email", {"email": "owner@example.com", "password": PASSWORD})
        assert "We sent a link to owner@example.com" in flash_after(b, r)  # as for a free one
    mail = mail_to(site.smtp, "owner@example.com", before + 1)
    assert mail["Subject"] == "Someone tried to use your address on Kuwa"
    assert "/profile/email/confirm" not in mail.message.get_content()
    with store_of(site.stack) as store:
        assert store.accounts.get_user(user.id).email == user.email  # type: ignore[union-attr]


def test_confirm_link_refuses_an_address_taken_meanwhile(site: Site) -> None:
    user = make_user(site.stack, "slow-mover@example.com")
    verified(site, user.email)
    before = len(site.smtp.messages)
    with signed_in(site, user.email, base=site.mail_base) as b:
        r = b.post("/profile/email", {"email": "race@example.com", "password": PASSWORD})
        flash_after(b, r)
        body = mail_to(site.smtp, "race@example.com", before + 1).message.get_content()
        found = re.search(r"/profile/email/confirm\?code=\S+", body)
        assert found is not None
        make_user(site.stack, "race@example.com")  # someone else signs up with it first
        refused = b.open_link(found.group(0))
        assert refused.status_code == 409
        assert "Another account uses race@example.com" in refused.text
    with store_of(site.stack) as store:
        assert store.accounts.get_user(user.id).email == user.email  # type: ignore[union-attr]


def test_confirm_link_with_a_bad_code(browser: Browser) -> None:
    assert browser.open_link("/profile/email/confirm?code=nonsense").status_code == 400
    assert browser.open_link("/profile/email/confirm").status_code == 400


# --- deleting the account -------------------------------------------------------------------
def test_delete_account(site: Site) -> None:
    user = make_user(site.stack, "leaving@example.com")
    with store_of(site.stack) as store:
        token = store.accounts.ensure_token(user.id)
        store.identities.set_key(user.id, "google", SECRET_KEY)
    assert api_status(site.base, token) == 200
    other = signed_in(site, user.email)
    with signed_in(site, user.email) as b:
        cookie = b.http.cookies.get(SESSION_COOKIE)
        assert cookie
        unticked = b.post("/profile/delete", {"password": PASSWORD})
        assert unticked.status_code == 400
        assert "Tick the box" in unticked.text
        wrong = b.post("/profile/delete", {"password": "not my password", "confirm": "yes"})
        assert wrong.status_code == 401
        with store_of(site.stack) as store:
            assert store.accounts.get_user(user.id) is not None

        r = b.post("/profile/delete", {"password": PASSWORD, "confirm": "yes"})
        assert r.status_code == 303
        assert r.headers["location"] == "/login"
        login = b.get("/login")
        assert "Your account is deleted." in login.text
        assert not b.signed_in()

    # The old cookie, replayed by a fresh client, opens nothing.
    with Browser(site.base, cookies={SESSION_COOKIE: cookie}) as replay:
        assert replay.get("/profile").status_code == 303
    assert not other.signed_in()
    other.close()
    assert api_status(site.base, token) == 401

    with store_of(site.stack) as store:
        assert store.accounts.get_user(user.id) is None
        assert store.accounts.find_user(user.email) is None
        for table in ("api_tokens", "provider_keys", "external_identities", "one_time_codes"):
            [(count,)] = store.db.execute_sql(
                f"SELECT COUNT(*) FROM {table} WHERE user_id = {store.db.param}",  # noqa: S608
                (user.id,),
            ).fetchall()
            assert count == 0, table
    [entry] = [e for e in audit(site, "account_deleted") if e[0] == user.email]
    assert entry[1] == user.email and entry[3] is None


def session_cookie(site: Site, user_id: int) -> str:
    """A signed-in session cookie made the way the gateway makes one (for accounts that
    sign in through OIDC only, which these tests do not run)."""
    sid = secrets.token_urlsafe(32)
    client = site.stack.redis.client()
    record = json.dumps({"user": user_id, "via": "test", "at": int(time.time())})
    client.set(keys.session(sid), record, ex=3600)
    client.sadd(keys.user_sessions(user_id), sid)
    client.close()
    secret = derive_secret(site.stack.settings().load_secret_key(), "session")
    data = base64.b64encode(json.dumps({"sid": sid}).encode())
    return itsdangerous.TimestampSigner(secret).sign(data).decode()


def test_delete_account_without_password_needs_the_email(site: Site) -> None:
    email = "oidc-only@example.com"
    with store_of(site.stack) as store:
        user = store.accounts.create_user(email, "No Password", None, source="oidc")
    with Browser(site.base, cookies={SESSION_COOKIE: session_cookie(site, user.id)}) as b:
        page = b.get("/profile")
        assert page.status_code == 200
        assert 'name="confirm_email"' in page.text
        wrong = b.post(
            "/profile/delete", {"confirm_email": "someone@example.com", "confirm": "yes"}
        )
        assert wrong.status_code == 400
        assert "Type your email address" in wrong.text
        r = b.post("/profile/delete", {"confirm_email": "OIDC-only@example.com", "confirm": "yes"})
        assert r.status_code == 303 and r.headers["location"] == "/login"
    with store_of(site.stack) as store:
        assert store.accounts.get_user(user.id) is None


def test_password_less_account_sets_a_password_without_a_current_one(site: Site) -> None:
    email = "oidc-pw@example.com"
    with store_of(site.stack) as store:
        user = store.accounts.create_user(email, "No Password", None, source="oidc")
    with Browser(site.base, cookies={SESSION_COOKIE: session_cookie(site, user.id)}) as b:
        assert 'name="current"' not in b.get("/profile").text  # (also sets the CSRF cookie)
        form = {"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
        assert "Your password is changed." in flash_after(b, b.post("/profile/password", form))
    with store_of(site.stack) as store:
        assert store.accounts.check_password(email, NEW_PASSWORD) is not None


def test_the_last_administrator_cannot_delete_their_account(site: Site) -> None:
    with store_of(site.stack) as store:
        admins = store.groups.get("Admins").members
    assert admins == 0  # no other test of this module makes administrators
    first = make_user(site.stack, "only-admin@example.com", admin=True)
    form = {"password": PASSWORD, "confirm": "yes"}
    with signed_in(site, first.email) as b:
        r = b.post("/profile/delete", form)
        assert r.status_code == 400 and "last administrator" in r.text
    make_user(site.stack, "second-admin@example.com", admin=True)
    with signed_in(site, first.email) as b:
        assert b.post("/profile/delete", form).status_code == 303
    with store_of(site.stack) as store:
        assert store.accounts.find_user(first.email) is None
