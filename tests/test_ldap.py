"""kuwa.accounts.ldap against a real OpenLDAP slapd (tests/ldapserver.py).

A rejected service account (``ldap_bind_dn``/``ldap_bind_password``) raises LdapUnavailable,
like a server that is down: no sign-in can be decided, so callers fall back to local accounts
and log the message (which names the server, never a password).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kuwa.accounts.ldap import LdapAuthenticator, LdapIdentity, LdapUnavailable
from kuwa.settings import Settings
from tests import ldapserver
from tests.ldapserver import LdapServer

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def ldap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapServer]:
    try:
        server = LdapServer(tmp_path_factory.mktemp("ldap"))
    except RuntimeError as exc:  # slapd missing or not starting: fail loudly, never skip
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


def make(server: LdapServer, **overrides: Any) -> LdapAuthenticator:
    fields: dict[str, Any] = {
        "ldap_url": server.url,
        "ldap_base_dn": server.people_dn,
        "ldap_timeout": TIMEOUT,
    }
    fields.update(overrides)
    auth = LdapAuthenticator.from_settings(Settings(**fields))
    assert auth is not None
    return auth


def password(uid: str) -> str:
    return LdapServer.users[uid][0]


def test_no_url_means_no_ldap() -> None:
    assert LdapAuthenticator.from_settings(Settings()) is None


def test_correct_login_returns_identity(ldap_server: LdapServer) -> None:
    assert make(ldap_server).authenticate("alice", password("alice")) == LdapIdentity(
        dn="uid=alice,ou=people,dc=example,dc=org",
        username="alice",
        email="alice@example.org",
        name="Alice Liddell",
    )


def test_non_ascii_name_and_password_round_trip(ldap_server: LdapServer) -> None:
    identity = make(ldap_server).authenticate("  zoe ", "pässwörd-zoë")
    assert identity is not None
    assert identity.username == "zoe"
    assert identity.name == "Zoë Chen"
    assert identity.email == "zoe.chen@example.org"  # lower-cased


def test_login_by_mail(ldap_server: LdapServer) -> None:
    identity = make(ldap_server).authenticate("Alice@Example.org", password("alice"))
    assert identity is not None
    assert identity.dn == "uid=alice,ou=people,dc=example,dc=org"
    assert identity.username == "Alice@Example.org"
    assert identity.email == "alice@example.org"


@pytest.mark.parametrize("wrong", ["wrong", "ALICE-PASSWORD", " ", password("bob")])
def test_wrong_password(ldap_server: LdapServer, wrong: str) -> None:
    assert make(ldap_server).authenticate("alice", wrong) is None


def test_empty_password_is_never_a_sign_in(ldap_server: LdapServer) -> None:
    # An empty password would be an unauthenticated bind, which LDAP servers may accept.
    auth = make(ldap_server)
    assert auth.authenticate("alice", "") is None
    assert auth.authenticate("", "") is None
    assert auth.authenticate("   ", password("alice")) is None


def test_unknown_user(ldap_server: LdapServer) -> None:
    assert make(ldap_server).authenticate("mallory", "anything") is None


@pytest.mark.parametrize(
    "username", ["*", "*)(uid=*", "alice)(|(uid=*", "a*", "*)(objectClass=*", "alice\\", "(uid=*)"]
)
def test_filter_injection_matches_nobody(ldap_server: LdapServer, username: str) -> None:
    auth = make(ldap_server)
    # Every seeded user shares a password with someone else in some test; try them all.
    for uid in LdapServer.users:
        assert auth.authenticate(username, password(uid)) is None


def test_special_characters_are_matched_literally(ldap_server: LdapServer) -> None:
    identity = make(ldap_server).authenticate("star*(man)", password("star*(man)"))
    assert identity is not None
    assert identity.email == "star@example.org"


def test_several_matches_are_refused(ldap_server: LdapServer) -> None:
    auth = make(ldap_server)
    assert auth.authenticate("twins@example.org", password("twin1")) is None
    identity = auth.authenticate("twin1", password("twin1"))
    assert identity is not None
    assert identity.email == "twins@example.org"


def test_entry_without_email_is_refused(ldap_server: LdapServer) -> None:
    assert make(ldap_server).authenticate("nomail", password("nomail")) is None


def test_name_falls_back_to_username(ldap_server: LdapServer) -> None:
    identity = make(ldap_server, ldap_name_attribute="displayName").authenticate(
        "bob", password("bob")
    )
    assert identity is not None
    assert identity.name == "bob"


def test_missing_base_dn_finds_nobody(ldap_server: LdapServer) -> None:
    auth = make(ldap_server, ldap_base_dn="ou=nobody,dc=example,dc=org")
    assert auth.authenticate("alice", password("alice")) is None


def test_custom_filter(ldap_server: LdapServer) -> None:
    auth = make(ldap_server, ldap_user_filter="(&(objectClass=inetOrgPerson)(cn={username}))")
    identity = auth.authenticate("Bob Builder", password("bob"))
    assert identity is not None
    assert identity.email == "bob@example.org"


def test_service_account_bind(ldap_server: LdapServer) -> None:
    auth = make(
        ldap_server,
        ldap_bind_dn=ldap_server.admin_dn,
        ldap_bind_password=ldap_server.admin_password,
    )
    identity = auth.authenticate("alice", password("alice"))
    assert identity is not None
    assert identity.email == "alice@example.org"
    assert auth.authenticate("alice", "wrong") is None


def test_wrong_service_password_is_unavailable(
    ldap_server: LdapServer, caplog: pytest.LogCaptureFixture
) -> None:
    auth = make(
        ldap_server, ldap_bind_dn=ldap_server.admin_dn, ldap_bind_password="not-the-admin-pw"
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(LdapUnavailable) as info:
        auth.authenticate("alice", password("alice"))
    assert ldap_server.url in str(info.value)
    assert "invalidCredentials" in str(info.value)
    for secret in ("not-the-admin-pw", password("alice")):
        assert secret not in str(info.value)
        assert secret not in caplog.text
    assert "not-the-admin-pw" not in repr(auth.settings)


def test_passwords_are_never_logged(
    ldap_server: LdapServer, caplog: pytest.LogCaptureFixture
) -> None:
    auth = make(ldap_server)
    with caplog.at_level(logging.DEBUG):
        auth.authenticate("twins@example.org", "secret-twin-guess")
        auth.authenticate("nomail", "secret-nomail-guess")
        auth.authenticate("alice", "secret-alice-guess")
    assert "secret-" not in caplog.text


def test_server_down_is_unavailable(ldap_server: LdapServer) -> None:
    auth = make(ldap_server)
    ldap_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(LdapUnavailable, match=re.escape(ldap_server.url)):
            auth.authenticate("alice", password("alice"))
        assert time.monotonic() - started < TIMEOUT + 1
    finally:
        ldap_server.start()
    assert auth.authenticate("alice", password("alice")) is not None  # and back again


def test_server_not_answering_times_out(ldap_server: LdapServer) -> None:
    auth = make(ldap_server)
    ldap_server.pause()  # the kernel accepts the connection; slapd never answers
    try:
        started = time.monotonic()
        with pytest.raises(LdapUnavailable, match=re.escape(ldap_server.url)):
            auth.authenticate("alice", password("alice"))
        elapsed = time.monotonic() - started
    finally:
        ldap_server.resume()
    assert TIMEOUT - 0.1 < elapsed < TIMEOUT + 1
    assert auth.authenticate("alice", password("alice")) is not None


def test_unreachable_host_times_out() -> None:
    # 192.0.2.0/24 is TEST-NET-1: packets go nowhere (or fail at once without a route).
    auth = LdapAuthenticator(Settings(ldap_url="ldap://192.0.2.1:389", ldap_timeout=TIMEOUT))
    started = time.monotonic()
    with pytest.raises(LdapUnavailable, match=re.escape("192.0.2.1")):
        auth.authenticate("alice", "password")
    assert time.monotonic() - started < TIMEOUT + 1


def test_ldaps(ldap_server: LdapServer) -> None:
    auth = make(ldap_server, ldap_url=ldap_server.ldaps_url, ldap_ca_file=ldap_server.ca_file)
    identity = auth.authenticate("alice", password("alice"))
    assert identity is not None
    assert identity.email == "alice@example.org"
    assert auth.authenticate("alice", "wrong") is None


def test_start_tls(ldap_server: LdapServer) -> None:
    auth = make(ldap_server, ldap_start_tls=True, ldap_ca_file=ldap_server.ca_file)
    assert auth.authenticate("alice", password("alice")) is not None


@pytest.mark.parametrize("start_tls", [False, True])
def test_untrusted_certificate_is_unavailable(ldap_server: LdapServer, start_tls: bool) -> None:
    # Without ldap_ca_file only the system CAs count, and they never signed the test CA.
    url = ldap_server.url if start_tls else ldap_server.ldaps_url
    auth = make(ldap_server, ldap_url=url, ldap_start_tls=start_tls)
    with pytest.raises(LdapUnavailable, match=re.escape("127.0.0.1")):
        auth.authenticate("alice", password("alice"))


def test_certificate_must_name_the_host(ldap_server: LdapServer) -> None:
    # The certificate names 127.0.0.1 only; "localhost" reaches the same server.
    url = ldap_server.ldaps_url.replace("127.0.0.1", "localhost")
    auth = make(ldap_server, ldap_url=url, ldap_ca_file=ldap_server.ca_file)
    with pytest.raises(LdapUnavailable, match="localhost"):
        auth.authenticate("alice", password("alice"))


def test_missing_slapd_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ldapserver.shutil, "which", lambda name: None)
    monkeypatch.setattr(ldapserver.os, "access", lambda path, mode: False)
    with pytest.raises(RuntimeError, match=re.escape("apt-get install slapd ldap-utils")):
        ldapserver.find_binary("slapd")
