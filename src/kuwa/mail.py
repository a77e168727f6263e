"""Outgoing mail (address verification, password reset) over SMTP.

One :class:`Mailer` per process, built from the ``smtp_*`` settings. :meth:`Mailer.send`
opens a connection per mail (these mails are rare), so there is no pool to keep alive.
Every failure — connection, TLS, login, a refused recipient — becomes a
:class:`~kuwa.errors.MailError` that names the server and the step that failed, never the
password.

``smtp_security``:

* ``starttls`` (default): connect in plaintext, then STARTTLS is *required*; a server that
  does not offer it is an error, never a silent fallback to plaintext.
* ``ssl``: TLS from the first byte (implicit TLS, usually port 465).
* ``none``: plaintext (a local relay only).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import anyio.to_thread

from kuwa.errors import MailError
from kuwa.settings import Settings

__all__ = ["MailError", "Mailer"]


class Mailer:
    """Sends Kuwa's mail through the SMTP server the settings name."""

    def __init__(self, settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        # The server certificate is checked against the system's CAs (and its hostname)
        # unless a context is given, e.g. one that trusts a private CA.
        self.ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()

    @property
    def enabled(self) -> bool:
        """Whether an SMTP server is configured; callers check this before :meth:`send`."""
        return bool(self.settings.smtp_host)

    # --- building -----------------------------------------------------------------------
    def message(self, to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
        """The mail :meth:`send` would send: text, or text and HTML as alternatives."""
        msg = EmailMessage()
        msg["From"] = self.settings.smtp_from
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid(domain=self._msgid_domain())
        msg.set_content(text, cte=_cte(text))
        if html is not None:
            msg.add_alternative(html, subtype="html", cte=_cte(html))
        return msg

    def _msgid_domain(self) -> str:
        domain = parseaddr(self.settings.smtp_from)[1].rpartition("@")[2].strip()
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            domain = ""
        return domain or "localhost"

    # --- sending ------------------------------------------------------------------------
    def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        """Hand one mail to the SMTP server (blocking; see :meth:`send_async`)."""
        if not self.enabled:
            raise MailError("mail is not configured")
        self._deliver(self.message(to, subject, text, html))

    async def send_async(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        """:meth:`send` in a worker thread, so the event loop keeps running."""
        await anyio.to_thread.run_sync(functools.partial(self.send, to, subject, text, html))

    def _deliver(self, msg: EmailMessage) -> None:
        s = self.settings
        host = s.smtp_host or ""
        where = f"SMTP server {host}:{s.smtp_port}"
        smtp: smtplib.SMTP | None = None
        step = "connecting"
        try:
            # The host goes to the constructor: smtplib checks the certificate against it.
            if s.smtp_security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    host, s.smtp_port, timeout=s.smtp_timeout, context=self.ssl_context
                )
            else:
                smtp = smtplib.SMTP(host, s.smtp_port, timeout=s.smtp_timeout)
            step = "greeting"
            smtp.ehlo_or_helo_if_needed()
            if s.smtp_security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise MailError(
                        f"{where} does not offer STARTTLS, which smtp_security=starttls "
                        "requires; not sending in plaintext (use smtp_security=ssl or none)"
                    )
                step = "starting TLS"
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo_or_helo_if_needed()
            if s.smtp_username:
                step = "logging in"
                _login(smtp, s.smtp_username, s.smtp_password or "")
            step = "sending"
            smtp.send_message(msg)
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()  # the server has accepted the mail; a failed goodbye is no error
        except (smtplib.SMTPException, OSError, UnicodeError) as exc:
            message = f"{where} failed while {step}: {_describe(exc)}"
            if s.smtp_password:
                message = message.replace(s.smtp_password, "***")
            # No chaining: the cause could carry the credentials (a UnicodeError does).
            raise MailError(message) from None
        finally:
            if smtp is not None:
                smtp.close()


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """Log in; smtplib only sends ASCII credentials, so others go as UTF-8 AUTH PLAIN."""
    if (username + password).isascii():
        smtp.login(username, password)
        return
    if not smtp.has_extn("auth") or "PLAIN" not in smtp.esmtp_features["auth"].upper().split():
        raise smtplib.SMTPException("non-ASCII credentials need AUTH PLAIN, which is not offered")
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, resp = smtp.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, resp)


def _cte(body: str) -> str | None:
    # Non-ASCII bodies go quoted-printable: plain 8bit would need BODY=8BITMIME.
    return None if body.isascii() else "quoted-printable"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(
            f"{rcpt} ({code} {resp.decode(errors='replace')})"
            for rcpt, (code, resp) in exc.recipients.items()
        )
        return f"recipient refused: {refused}"
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        return f"{exc.smtp_code} {text}"
    if isinstance(exc, UnicodeError):
        return f"{type(exc).__name__} (non-ASCII text the server cannot take)"
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
