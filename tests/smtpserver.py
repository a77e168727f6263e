"""A real SMTP server for tests: aiosmtpd in a thread, keeping what it receives.

``SmtpServer()`` speaks plaintext; ``tls="starttls"`` offers (and requires) STARTTLS,
``tls="ssl"`` speaks TLS from the first byte; ``username``/``password`` require AUTH. The
certificate is made in-process for ``localhost``/``127.0.0.1`` and signed by a throwaway CA;
:meth:`SmtpServer.client_context` trusts that CA.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One mail the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes  # the message as it came over the wire
    login: str | None  # the user that authenticated, if any
    tls: bool  # whether the session was encrypted (STARTTLS or implicit TLS)

    def __getitem__(self, header: str) -> Any:
        return self.message[header]


class _Handler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.arrived = threading.Condition(self.lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        # Stored with Unix line ends, as a mailbox on disk would be.
        message = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
        assert isinstance(message, EmailMessage)
        # STARTTLS sets session.ssl; implicit TLS shows on the transport.
        implicit_tls = server.transport is not None and (
            server.transport.get_extra_info("sslcontext") is not None
        )
        item = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=message,
            raw=raw,
            login=session.auth_data if session.authenticated else None,
            tls=session.ssl is not None or implicit_tls,
        )
        with self.arrived:
            self.received.append(item)
            self.arrived.notify_all()
        return "250 OK"


class _Controller(Controller):
    """Binds port 0 and learns the port the OS chose before aiosmtpd connects to it."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


def _make_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost/127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kuwa test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


class SmtpServer:
    """An aiosmtpd server on a free port of 127.0.0.1 that keeps every mail it accepts."""

    host = HOST

    def __init__(
        self,
        *,
        tls: Literal["none", "starttls", "ssl"] = "none",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.tls = tls
        self.username = username
        self.password = password
        self._handler = _Handler()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._controller: _Controller | None = None
        self.ca_file: Path | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> SmtpServer:
        kwargs: dict[str, Any] = {}
        if self.tls != "none":
            self._tmp = tempfile.TemporaryDirectory(prefix="kuwa-smtp-")
            self.ca_file, cert, key = _make_certs(Path(self._tmp.name))
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ctx.load_cert_chain(cert, key)
            if self.tls == "starttls":
                kwargs.update(tls_context=server_ctx, require_starttls=True)
            else:
                kwargs.update(ssl_context=server_ctx)
        if self.username is not None:
            kwargs["authenticator"] = self._authenticate
            if self.tls == "ssl":
                # aiosmtpd only counts STARTTLS as encryption, so over implicit TLS it would
                # refuse AUTH; and auth_required without auth_require_tls emits a
                # UserWarning, so AUTH is offered (and checked) here but not enforced.
                kwargs["auth_require_tls"] = False
            else:
                kwargs["auth_required"] = True
        self._controller = _Controller(self._handler, hostname=HOST, port=0, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._controller is not None, "server not started"
        port: int = self._controller.port
        return port

    # --- what arrived -------------------------------------------------------------------
    @property
    def messages(self) -> list[Received]:
        """A snapshot of the mails received so far, oldest first."""
        with self._handler.lock:
            return list(self._handler.received)

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[Received]:
        """Block until at least ``count`` mails have arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._handler.arrived:
            while len(self._handler.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"expected {count} mail(s), got {len(self._handler.received)}"
                    )
                self._handler.arrived.wait(left)
            return list(self._handler.received)

    # --- clients ------------------------------------------------------------------------
    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this server's CA (hostnames are checked)."""
        assert self.ca_file is not None, "server has no TLS"
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.username is not None
            and self.password is not None
            and data.login == self.username.encode()
            and data.password == self.password.encode()
        )
        if not ok:
            # handled=False: aiosmtpd answers 535 itself (handled=True would answer nothing)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=self.username)
