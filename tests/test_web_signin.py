"""Web sign-in end to end: sessions, CSRF, cookies, throttling, enumeration, proxies,
IP allow-list, sign-up/verification/reset over real SMTP, LDAP (real slapd) and OIDC."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kuwa.accounts import RESET_PASSWORD
from tests.ldapserver import LdapServer
from tests.oidcprovider import OidcProvider
from tests.smtpserver import SmtpServer
from tests.stack import RedisServer, Stack
from tests.web import CSRF_COOKIE, PASSWORD, SESSION_COOKIE, Browser, make_user, store_of

WRONG = "The email or password is wrong."


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("web")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.executor("echo")
        s.base_url = s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture(autouse=True)
def fresh_throttle(stack: Stack) -> None:
    client = stack.redis.client()
    for key in client.scan_iter("kuwa:login:fail:*"):
        client.delete(key)
    client.close()


def session_cookie(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(SESSION_COOKIE + "="):
            return header
    raise AssertionError(f"no session cookie in {response.headers}")


# --- sessions -------------------------------------------------------------------------------
def test_sign_in_and_out(stack: Stack) -> None:
    make_user(stack, "in-out@example.com")
    with Browser(stack.base_url) as b:
        assert b.get("/").headers["location"].startswith("/login")
        r = b.login("in-out@example.com")
        assert r.status_code == 303 and r.headers["location"] == "/"
        home = b.get("/")
        assert home.status_code == 200 and "Web Tester" in home.text
        stolen = b.http.cookies.get(SESSION_COOKIE)
        assert b.post("/logout").headers["location"] == "/login"
        assert b.get("/").headers["location"].startswith("/login")
    # The cookie of a signed-out session is worth nothing (the session is gone from Redis).
    with Browser(stack.base_url, cookies={SESSION_COOKIE: stolen or ""}) as replay:
        assert replay.get("/password").status_code == 303


def test_session_cookie_flags_and_fresh_id_at_sign_in(stack: Stack) -> None:
    make_user(stack, "flags@example.com")
    with Browser(stack.base_url) as b:
        b.get("/login")
        before = b.http.cookies.get(SESSION_COOKIE)
        r = b.login("flags@example.com")
        header = session_cookie(r).lower()
        assert "httponly" in header and "samesite=lax" in header
        assert "secure" not in header  # plain http, no trusted proxy
        assert b.http.cookies.get(SESSION_COOKIE) != before
        assert "kuwa_csrf" in b.http.cookies


def test_next_never_leaves_the_site(stack: Stack) -> None:
    make_user(stack, "next@example.com")
    with Browser(stack.base_url) as b:
        for target, expected in (
            ("/profile", "/profile"),
            ("//evil.example", "/"),
            ("https://evil.example", "/"),
            ("/\\evil.example", "/"),
        ):
            b.post("/logout")
            r = b.post(
                "/login", {"email": "next@example.com", "password": PASSWORD, "next": target}
            )
            assert r.headers["location"] == expected, target


def test_a_page_asks_anonymous_visitors_to_sign_in(stack: Stack) -> None:
    with Browser(stack.base_url) as b:
        r = b.get("/terms?tab=1")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/terms%3Ftab%3D1"
        assert b.post("/password", {"password": "x"}).status_code == 401


# --- CSRF -----------------------------------------------------------------------------------
def test_forms_without_a_matching_csrf_token_are_refused(stack: Stack) -> None:
    make_user(stack, "csrf@example.com")
    with Browser(stack.base_url) as b:
        form = {"email": "csrf@example.com", "password": PASSWORD}
        # No cookie at all (a cross-site POST of the login form)
        assert b.http.post("/login", data=form).status_code == 403
        b.csrf()
        assert b.post("/login", form, csrf=False).status_code == 403
        assert b.post("/login", {**form, "csrftoken": "forged"}).status_code == 403
        # Multipart forms (uploads) too: no token, a wrong one, or a file before the token.
        upload = {"file": ("a.txt", b"data", "text/plain")}
        assert b.post("/login", form, csrf=False, files=upload).status_code == 403
        assert b.post("/login", {**form, "csrftoken": "forged"}, files=upload).status_code == 403
        r = b.http.post("/login", files={"file": ("a.txt", b"data"), "csrftoken": (None, b.csrf())})
        assert r.status_code == 403
        assert b.post("/login", form, files=upload).status_code == 303
        assert b.http.post("/logout").status_code == 403
        assert b.signed_in() or b.get("/").status_code == 200
    # The API is not affected: token auth, no cookies.
    r = httpx.post(stack.base_url + "/v1/chat/completions", json={})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


# --- throttling and enumeration -------------------------------------------------------------
def test_wrong_password_and_unknown_account_look_the_same(stack: Stack) -> None:
    make_user(stack, "known@example.com")
    with Browser(stack.base_url) as b:
        known = b.post("/login", {"email": "known@example.com", "password": "not the one"})
        unknown = b.post("/login", {"email": "nobody@example.com", "password": "not the one"})
    assert known.status_code == unknown.status_code == 401
    assert WRONG in known.text and WRONG in unknown.text
    strip = lambda html: re.sub(r'value="[^"]*"', "", html)  # noqa: E731
    assert strip(known.text) == strip(unknown.text)


def test_sign_in_is_throttled_per_account(stack: Stack) -> None:
    make_user(stack, "throttled@example.com")
    with Browser(stack.base_url) as b:
        for _ in range(5):
            r = b.post("/login", {"email": "throttled@example.com", "password": "guess-guess"})
            assert r.status_code == 401
        # Now even the right password waits, and an unknown account answers alike.
        r = b.login("throttled@example.com")
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text
        for _ in range(5):
            b.post("/login", {"email": "ghost@example.com", "password": "guess-guess"})
        assert b.post("/login", {"email": "ghost@example.com", "password": "x"}).status_code == 429
        # Other accounts from the same address still work.
        make_user(stack, "neighbour@example.com")
        assert b.login("neighbour@example.com").status_code == 303
    with store_of(stack) as store:
        failures = store.audit.query(action="login_failed", actor="throttled@example.com")
        assert len(failures) == 5 and all(not f.ok and f.ip == "127.0.0.1" for f in failures)


# --- proxies and the allow-list -------------------------------------------------------------
def test_forwarded_headers_count_only_from_trusted_proxies(stack: Stack) -> None:
    make_user(stack, "proxy@example.com")
    trusting = stack.gateway(
        {"KUWA_TRUSTED_PROXIES": "127.0.0.1", "KUWA_LOGIN_IP_MAX_FAILURES": "3"}
    )
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"}
    # The proxy says HTTPS: both cookies are Secure (so this plain-http client would not send
    # them back; a browser talking HTTPS to the proxy does, as we do here by hand).
    first = httpx.get(trusting + "/login", headers=forwarded)
    csrf_header = next(h for h in first.headers.get_list("set-cookie") if h.startswith(CSRF_COOKIE))
    assert "secure" in csrf_header.lower()
    token = csrf_header.split(";")[0].split("=", 1)[1]
    r = httpx.post(
        trusting + "/login",
        headers={**forwarded, "cookie": f"{CSRF_COOKIE}={token}"},
        data={"email": "proxy@example.com", "password": PASSWORD, "csrftoken": token},
    )
    assert r.status_code == 303
    assert "secure" in session_cookie(r).lower()
    with Browser(stack.base_url, headers=forwarded) as b:
        r = b.login("proxy@example.com")
        assert "secure" not in session_cookie(r).lower()  # untrusted: ignored
    # Per-address throttling sees the forwarded client address.
    with Browser(trusting, headers={"x-forwarded-for": "198.51.100.1"}) as b:
        for i in range(3):
            b.post("/login", {"email": f"who{i}@example.com", "password": "guess-guess"})
        assert b.login("proxy@example.com").status_code == 429
    with Browser(trusting, headers={"x-forwarded-for": "198.51.100.2"}) as b:
        assert b.login("proxy@example.com").status_code == 303
    with store_of(stack) as store:
        assert store.audit.query(action="login_failed", ip="198.51.100.1")


def test_ip_allow_list(stack: Stack) -> None:
    fenced = stack.gateway({"KUWA_IP_ALLOWLIST": "10.0.0.0/8"})
    r = httpx.get(fenced + "/login")
    assert r.status_code == 403 and r.json()["error"]["code"] == "ip_not_allowed"
    assert httpx.post(fenced + "/v1/chat/completions", json={}).status_code == 403
    assert httpx.get(fenced + "/healthz").status_code == 200
    behind = stack.gateway({"KUWA_IP_ALLOWLIST": "10.0.0.0/8", "KUWA_TRUSTED_PROXIES": "127.0.0.1"})
    assert httpx.get(behind + "/login", headers={"x-forwarded-for": "10.1.2.3"}).status_code == 200
    assert httpx.get(behind + "/login", headers={"x-forwarded-for": "8.8.8.8"}).status_code == 403


# --- sign-up and password reset -------------------------------------------------------------
def test_sign_up_without_mail_signs_in_at_once(stack: Stack) -> None:
    with Browser(stack.base_url) as b:
        r = b.post(
            "/signup",
            {"name": "New Person", "email": "New@Example.com", "password": "a good password"},
        )
        assert r.status_code == 303
        assert "verification was skipped" in b.get("/").text
        again = b.post(
            "/signup", {"name": "Twin", "email": "new@example.com", "password": "a good password"}
        )
        assert again.status_code == 409
        assert "/forgot" not in b.get("/forgot").text or "sends no mail" in b.get("/forgot").text
        # Without mail there is no reset by mail: a 404 page that says so, not a 5xx.
        r = b.post("/forgot", {"email": "new@example.com"})
        assert r.status_code == 404 and "sends no mail" in r.text
    with store_of(stack) as store:
        user = store.accounts.find_user("new@example.com")
        assert user is not None and user.group == "Users" and user.email_verified


def test_sign_up_reset_and_verification_by_mail(stack: Stack) -> None:
    with SmtpServer() as smtp:
        mailing = stack.gateway(
            {
                "KUWA_SMTP_HOST": smtp.host,
                "KUWA_SMTP_PORT": str(smtp.port),
                "KUWA_SMTP_SECURITY": "none",
            }
        )
        b = Browser(mailing)
        try:
            form = {"name": "Mailed", "email": "mailed@example.com", "password": PASSWORD}
            r = b.post("/signup", form)
            assert r.status_code == 200 and "Check your mail" in r.text
            [mail] = smtp.wait_for(1)
            assert mail.rcpt_tos == ["mailed@example.com"]
            link = re.search(r"(http://\S+/verify\?code=\S+)", mail.message.get_content())
            assert link
            # Not verified yet: the right password is not enough.
            assert b.login("mailed@example.com").status_code == 403
            # Opening the link changes nothing (mail scanners open links); its button does.
            assert b.login("mailed@example.com").status_code == 403
            assert b.open_link(link.group(1)).headers["location"] == "/login"
            assert b.login("mailed@example.com").status_code == 303
            # A second sign-up with the same address looks the same, and warns the owner.
            r = b.post("/signup", form)
            assert r.status_code == 200 and "Check your mail" in r.text
            assert "already has one" in smtp.wait_for(2)[1].message.get_content()
            signed_in_before_reset = b

            # Password reset: unknown addresses get the same answer and no mail.
            with Browser(mailing) as other:
                r = other.post("/forgot", {"email": "nobody@example.com"})
                assert "If there is an account for nobody@example.com" in r.text
                r = other.post("/forgot", {"email": "mailed@example.com"})
                assert "If there is an account for mailed@example.com" in r.text
                mails = smtp.wait_for(3)
                assert len(mails) == 3 and mails[2].rcpt_tos == ["mailed@example.com"]
                code = re.search(r"/reset\?code=(\S+)", mails[2].message.get_content())
                assert code
                page = other.get(f"/reset?code={code.group(1)}")
                assert page.status_code == 200
                r = other.post(
                    "/reset",
                    {
                        "code": code.group(1),
                        "password": "brand new secret",
                        "password2": "brand new secret",
                    },
                )
                assert r.headers["location"] == "/login"
                # The code works once; the earlier session of the user ended.
                r = other.post(
                    "/reset",
                    {
                        "code": code.group(1),
                        "password": "again new secret",
                        "password2": "again new secret",
                    },
                )
                assert r.status_code == 400
                assert other.login("mailed@example.com", "brand new secret").status_code == 303
                # The session from before the reset ended with it.
                assert signed_in_before_reset.get("/password").status_code == 303
            # A mail speaks the language of the page that asked for it.
            with Browser(mailing, cookies={"kuwa_lang": "zh-TW"}) as chinese:
                r = chinese.post("/forgot", {"email": "mailed@example.com"})
                assert r.status_code == 200
                zh = smtp.wait_for(4)[3].message
                assert zh["Subject"] == "重設你的 Kuwa 密碼"
                assert "請開啟這個連結設定新密碼" in zh.get_content()
                assert re.search(r"/reset\?code=\S+", zh.get_content())
        finally:
            b.close()
    with store_of(stack) as store:
        assert store.codes.redeem(code.group(1), RESET_PASSWORD) is None


def test_forced_password_change(stack: Stack) -> None:
    user = make_user(stack, "forced@example.com")
    with store_of(stack) as store:
        store.accounts.update_user(user.id, must_change_password=True)
    with Browser(stack.base_url) as b:
        b.login("forced@example.com")
        assert b.get("/").headers["location"] == "/password"
        r = b.post("/password", {"current": PASSWORD, "password": "short", "password2": "short"})
        assert r.status_code == 400 and "at least 8" in r.text
        r = b.post(
            "/password",
            {"current": PASSWORD, "password": "a new password!", "password2": "a new password!"},
        )
        assert r.headers["location"] == "/"
        assert b.get("/").status_code == 200


# --- LDAP and OIDC --------------------------------------------------------------------------
def test_ldap_sign_in_creates_the_account_and_falls_back_when_ldap_is_down(
    stack: Stack, tmp_path: Path
) -> None:
    with LdapServer(tmp_path / "ldap") as ldap:
        base = stack.gateway(
            {
                "KUWA_LDAP_URL": ldap.url,
                "KUWA_LDAP_BASE_DN": ldap.people_dn,
                "KUWA_LDAP_TIMEOUT": "1",
            }
        )
        with Browser(base) as b:
            assert b.login("alice", "wrong password").status_code == 401
            assert b.login("alice", "alice-password").status_code == 303
            assert "Alice Liddell" in b.get("/").text
        with store_of(stack) as store:
            user = store.accounts.find_user("alice@example.org")
            assert user is not None and user.source == "ldap" and user.group == "Users"
        ldap.stop()
        with Browser(base) as b:  # the directory is down: the last good password still works
            assert b.login("alice@example.org", "alice-password").status_code == 303
        with Browser(base) as b:
            assert b.login("alice@example.org", "wrong password").status_code == 401
    # Local accounts keep working beside LDAP.
    make_user(stack, "local-beside-ldap@example.com")
    with Browser(base) as b:
        assert b.login("local-beside-ldap@example.com").status_code == 303


def oidc_sign_in(b: Browser) -> httpx.Response:
    r = b.get("/auth/oidc/login")
    assert r.status_code == 302, r.text
    at_provider = httpx.get(r.headers["location"], follow_redirects=False)
    assert at_provider.status_code in (302, 303), at_provider.text
    back = at_provider.headers["location"]
    return b.get(back.replace(b.base_url, ""))


def test_oidc_sign_in_creates_links_and_refuses_unverified_takeover(stack: Stack) -> None:
    make_user(stack, "grace@example.com")
    with store_of(stack) as store:
        store.groups.create("Researchers", permissions=["tab_Room", "tab_Profile"])
    with OidcProvider() as provider:
        base = stack.gateway(
            {
                "KUWA_OIDC_PROVIDER": "custom",
                "KUWA_OIDC_DISCOVERY_URL": provider.discovery_url,
                "KUWA_OIDC_CLIENT_ID": provider.client_id,
                "KUWA_OIDC_CLIENT_SECRET": provider.client_secret,
                "KUWA_OIDC_GROUP_CLAIM": "groups",
                "KUWA_OIDC_LABEL": "Example SSO",
            }
        )
        provider.redirect_uris.add(base + "/auth/oidc/callback")
        with Browser(base) as b:
            assert "Sign in with Example SSO" in b.get("/login").text
            provider.user = {
                "sub": "ada",
                "email": "Ada@Example.com",
                "email_verified": True,
                "name": "Ada Lovelace",
                "groups": ["Researchers"],
            }
            r = oidc_sign_in(b)
            assert r.status_code == 303 and r.headers["location"] == "/", r.text
            assert b.get("/password").status_code == 200  # signed in
        with store_of(stack) as store:
            ada = store.accounts.find_user("ada@example.com")
            assert ada is not None and ada.source == "oidc" and ada.group == "Researchers"
            assert store.identities.user_for("custom", "ada") == ada.id
        # An unverified address may not take over an existing account...
        provider.user = {
            "sub": "mallory",
            "email": "grace@example.com",
            "email_verified": False,
            "name": "Not Grace",
        }
        with Browser(base) as b:
            r = oidc_sign_in(b)
            assert r.status_code == 401 and "cannot be linked" in r.text
        # ...a verified one links to it.
        provider.user = {
            "sub": "grace-sub",
            "email": "grace@example.com",
            "email_verified": True,
            "name": "Grace",
        }
        with Browser(base) as b:
            assert oidc_sign_in(b).headers["location"] == "/"
        with store_of(stack) as store:
            grace = store.accounts.find_user("grace@example.com")
            assert (
                grace is not None and store.identities.user_for("custom", "grace-sub") == grace.id
            )
        # Cancelling at the provider comes back as a clear message.
        provider.deny_next = True
        with Browser(base) as b:
            r = oidc_sign_in(b)
            assert r.status_code == 401 and "cancelled" in r.text


# --- secrets stay out of logs ---------------------------------------------------------------
def test_passwords_and_tokens_never_reach_the_logs(stack: Stack) -> None:
    user = make_user(stack, "quiet@example.com", password="unmistakable-password-42")
    with store_of(stack) as store:
        token = store.accounts.ensure_token(user.id)
    with Browser(stack.base_url) as b:
        b.login("quiet@example.com", "unmistakable-password-42")
        b.login("quiet@example.com", "another-unmistakable-99")
    r = httpx.post(
        stack.base_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200
    time.sleep(0.2)
    logs = "".join(p.text() for p in stack.procs)
    for secret in ("unmistakable-password-42", "another-unmistakable-99", token):
        assert secret not in logs
