"""kuwa.mail against a real SMTP server (aiosmtpd, see tests/smtpserver.py)."""

from __future__ import annotations

import datetime
import socket
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from kuwa.errors import MailError
from kuwa.mail import Mailer
from kuwa.settings import Settings
from tests.smtpserver import SmtpServer

FROM = "Kuwa Prüfstelle <kuwa@example.org>"
TO = "Jürgen Müller <juergen@example.org>"
SUBJECT = "Bestätigen Sie Ihre Adresse ✓ — 確認"
TEXT = "Hallo Jürgen,\n\nbitte bestätigen: https://kuwa.example.org/verify?t=äöü\n\n— Kuwa 🐦\n"
HTML = "<p>Hallo Jürgen, <a href='https://kuwa.example.org/verify'>bestätigen</a> 🐦</p>\n"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plaintext SMTP server without AUTH, for this test only."""
    with SmtpServer() as server:
        yield server


def settings_for(server: SmtpServer, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": server.host,
        "smtp_port": server.port,
        "smtp_security": server.tls,
        "smtp_from": FROM,
        "smtp_timeout": 5.0,
    }
    values.update(changes)
    return Settings(**values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- what arrives ---------------------------------------------------------------------------
def test_plain_text_mail_arrives_with_its_headers(smtp_server: SmtpServer) -> None:
    Mailer(settings_for(smtp_server)).send(TO, SUBJECT, TEXT)

    [got] = smtp_server.wait_for(1)
    assert got.mail_from == "kuwa@example.org"
    assert got.rcpt_tos == ["juergen@example.org"]
    assert got.login is None
    assert not got.tls
    # Non-ASCII only in encoded form on the wire: no 8BITMIME/SMTPUTF8 needed.
    assert got.raw.isascii()

    msg = got.message
    assert msg["Subject"] == SUBJECT
    assert msg["From"].addresses[0].display_name == "Kuwa Prüfstelle"
    assert msg["From"].addresses[0].addr_spec == "kuwa@example.org"
    assert msg["To"].addresses[0].display_name == "Jürgen Müller"
    assert msg["To"].addresses[0].addr_spec == "juergen@example.org"
    sent = parsedate_to_datetime(str(msg["Date"]))
    assert abs(sent - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(minutes=1)
    assert str(msg["Message-ID"]).startswith("<")
    assert str(msg["Message-ID"]).endswith("@example.org>")
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg.get_content() == TEXT


def test_each_mail_gets_its_own_message_id(smtp_server: SmtpServer) -> None:
    mailer = Mailer(settings_for(smtp_server))
    mailer.send("a@example.org", "one", "first")
    mailer.send("b@example.org", "two", "second")

    first, second = smtp_server.wait_for(2)
    assert first.message["Message-ID"] != second.message["Message-ID"]
    assert first.message.get_content() == "first\n"
    assert second.rcpt_tos == ["b@example.org"]


def test_text_and_html_are_alternatives(smtp_server: SmtpServer) -> None:
    Mailer(settings_for(smtp_server)).send(TO, SUBJECT, TEXT, html=HTML)

    [got] = smtp_server.wait_for(1)
    msg = got.message
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    assert text_part.get_content() == TEXT
    assert html_part.get_content() == HTML
    assert msg["Subject"] == SUBJECT


# --- TLS and login ----------------------------------------------------------------------
@pytest.mark.parametrize("password", ["s3cret-ascii", "pässwörd-ü"], ids=["ascii", "utf8"])
def test_starttls_with_login(password: str) -> None:
    with SmtpServer(tls="starttls", username="kuwa", password=password) as server:
        settings = settings_for(server, smtp_username="kuwa", smtp_password=password)
        Mailer(settings, ssl_context=server.client_context()).send(TO, SUBJECT, TEXT)

        [got] = server.wait_for(1)
    assert got.tls
    assert got.login == "kuwa"
    assert got.message["Subject"] == SUBJECT
    assert got.message.get_content() == TEXT


def test_starttls_checks_the_certificate() -> None:
    """The default context trusts only the system CAs, not the test CA."""
    with SmtpServer(tls="starttls") as server:
        with pytest.raises(MailError) as info:
            Mailer(settings_for(server)).send(TO, SUBJECT, TEXT)
        assert server.messages == []
    assert "starting TLS" in info.value.message
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.message


def test_implicit_tls_with_login() -> None:
    with SmtpServer(tls="ssl", username="kuwa", password="s3cret") as server:
        settings = settings_for(server, smtp_username="kuwa", smtp_password="s3cret")
        Mailer(settings, ssl_context=server.client_context()).send(TO, SUBJECT, TEXT, HTML)

        [got] = server.wait_for(1)
    assert got.tls
    assert got.login == "kuwa"
    assert got.message.get_content_type() == "multipart/alternative"


def test_no_login_without_a_username() -> None:
    with SmtpServer(tls="starttls") as server:
        Mailer(settings_for(server), ssl_context=server.client_context()).send(TO, "hi", "x")
        [got] = server.wait_for(1)
    assert got.tls
    assert got.login is None


# --- failures ---------------------------------------------------------------------------
@pytest.mark.parametrize("wrong", ["Wr0ng-ascii", "Wr0ng-pässwörd"], ids=["ascii", "utf8"])
def test_wrong_password_is_a_mail_error_without_the_password(wrong: str) -> None:
    with SmtpServer(tls="starttls", username="kuwa", password="right-one") as server:
        settings = settings_for(server, smtp_username="kuwa", smtp_password=wrong)
        mailer = Mailer(settings, ssl_context=server.client_context())
        where = f"{server.host}:{server.port}"
        with pytest.raises(MailError) as info:
            mailer.send(TO, SUBJECT, TEXT)
        assert server.messages == []

    exc = info.value
    assert exc.status == 502
    assert exc.body()["error"]["code"] == "mail_failed"
    assert where in exc.message
    assert "logging in" in exc.message
    assert "535" in exc.message
    for text in (str(exc), repr(exc), exc.message, repr(exc.body())):
        assert wrong not in text
        assert "Wr0ng" not in text
    assert exc.__cause__ is None
    assert exc.__suppress_context__


def test_server_down_is_a_quick_mail_error() -> None:
    port = free_port()
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
    started = time.monotonic()
    with pytest.raises(MailError) as info:
        Mailer(settings).send(TO, SUBJECT, TEXT)
    assert time.monotonic() - started < 3
    assert f"127.0.0.1:{port}" in info.value.message
    assert "connecting" in info.value.message
    assert "ConnectionRefusedError" in info.value.message


def test_silent_server_times_out_after_smtp_timeout() -> None:
    """A server that accepts the connection but never greets: smtp_timeout bounds the wait."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # connections complete in the backlog; nothing ever answers
        port = listener.getsockname()[1]
        settings = Settings(
            smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", smtp_timeout=0.3
        )
        started = time.monotonic()
        with pytest.raises(MailError) as info:
            Mailer(settings).send(TO, SUBJECT, TEXT)
        elapsed = time.monotonic() - started
    assert 0.2 < elapsed < 3
    assert "timed out" in info.value.message


def test_starttls_required_but_not_offered(smtp_server: SmtpServer) -> None:
    settings = settings_for(smtp_server, smtp_security="starttls")
    with pytest.raises(MailError, match="does not offer STARTTLS"):
        Mailer(settings).send(TO, SUBJECT, TEXT)
    assert smtp_server.messages == []


def test_not_configured() -> None:
    mailer = Mailer(Settings())
    assert not mailer.enabled
    with pytest.raises(MailError, match="mail is not configured"):
        mailer.send(TO, SUBJECT, TEXT)
    assert Mailer(Settings(smtp_host="mail.example.org")).enabled


# --- async ------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_send_async(smtp_server: SmtpServer) -> None:
    mailer = Mailer(settings_for(smtp_server))
    await mailer.send_async(TO, SUBJECT, TEXT, html=HTML)

    [got] = smtp_server.messages  # send_async returns once the server has accepted it
    assert got.message["Subject"] == SUBJECT
    assert got.message.get_body(preferencelist=("plain",)) is not None

    down = Mailer(Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none"))
    with pytest.raises(MailError):
        await down.send_async(TO, SUBJECT, TEXT)
