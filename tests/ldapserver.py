"""A real OpenLDAP ``slapd`` for the LDAP sign-in tests.

One private slapd in a temporary folder: an mdb database under ``dc=example,dc=org`` seeded
offline with ``slapadd``, plain LDAP (with StartTLS) and LDAPS on free 127.0.0.1 ports, and a
throwaway CA (``ca_file``) that signed a certificate for 127.0.0.1 only (not localhost).
Anonymous clients may read everything but passwords; ``admin_dn`` is the root DN.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.stack import free_port

INSTALL_HINT = "slapd is not installed: apt-get install slapd ldap-utils"
SCHEMAS = ("core", "cosine", "inetorgperson")
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap")

# LDAPMessage{id 1, BindRequest{version 3, name "", simple ""}}
ANONYMOUS_BIND = bytes.fromhex("300c020101600702010304008000")

# uid -> (password, mail or None, cn)
USERS: dict[str, tuple[str, str | None, str]] = {
    "alice": ("alice-password", "alice@example.org", "Alice Liddell"),
    "bob": ("bob-password", "bob@example.org", "Bob Builder"),
    "zoe": ("pässwörd-zoë", "Zoe.Chen@Example.ORG", "Zoë Chen"),
    "nomail": ("nomail-password", None, "No Mail"),
    "twin1": ("twin-password", "twins@example.org", "Twin One"),
    "twin2": ("twin-password", "twins@example.org", "Twin Two"),
    "star*(man)": ("star-password", "star@example.org", "Star Man"),
}


def find_binary(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)),
        None,
    )
    if not found:
        raise RuntimeError(f"{name} not found. {INSTALL_HINT}")
    return found


def ssha(password: str) -> str:
    """An RFC 2307 ``{SSHA}`` userPassword, which slapd verifies natively."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 -- the LDAP scheme
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _ldif_value(name: str, value: str) -> str:
    if value.isascii() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def _write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 only: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Kuwa test CA"))
        .issuer_name(name("Kuwa test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class LdapServer:
    """A private slapd; ``stop()``/``start()`` keep the data, ports and certificates."""

    base_dn = "dc=example,dc=org"
    people_dn = "ou=people,dc=example,dc=org"
    admin_dn = "cn=admin,dc=example,dc=org"
    admin_password = "admin-secret"
    users = USERS

    def __init__(self, folder: Path) -> None:
        self.slapd = find_binary("slapd")
        self.slapadd = find_binary("slapadd")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port, self.tls_port = free_port(), free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.tls_port}"
        self.listen = f"{self.url}/ {self.ldaps_url}/"
        self.log = folder / "slapd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ca_file, cert, key = _write_certificates(folder)
        self.config = folder / "slapd.conf"
        self.config.write_text(self._config(cert, key))
        (folder / "db").mkdir(exist_ok=True)
        seed = folder / "seed.ldif"
        seed.write_text(self._seed(), encoding="utf-8")
        subprocess.run(
            [self.slapadd, "-q", "-f", str(self.config), "-l", str(seed)],
            check=True,
            capture_output=True,
        )
        self.start()

    def _config(self, cert: Path, key: Path) -> str:
        module_dir = next((d for d in MODULE_DIRS if Path(d, "back_mdb.la").exists()), None)
        modules = f"modulepath {module_dir}\nmoduleload back_mdb\n" if module_dir else ""
        schemas = "".join(f"include /etc/ldap/schema/{s}.schema\n" for s in SCHEMAS)
        return (
            f"{schemas}pidfile {self.folder / 'slapd.pid'}\n{modules}"
            f"TLSCACertificateFile {self.ca_file}\n"
            f"TLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\n"
            f'database mdb\nmaxsize 10485760\nsuffix "{self.base_dn}"\n'
            f'rootdn "{self.admin_dn}"\nrootpw {self.admin_password}\n'
            f"directory {self.folder / 'db'}\n"
            "access to attrs=userPassword by self write by anonymous auth by * none\n"
            "access to * by * read\n"
        )

    def _seed(self) -> str:
        top = ["o: Example", "dc: example"]
        entries = [
            [f"dn: {self.base_dn}", "objectClass: dcObject", "objectClass: organization", *top],
            [f"dn: {self.people_dn}", "objectClass: organizationalUnit", "ou: people"],
        ]
        for uid, (password, mail, cn) in USERS.items():
            entry = [_ldif_value("dn", f"uid={uid},{self.people_dn}"), "objectClass: inetOrgPerson"]
            entry += [_ldif_value("uid", uid), _ldif_value("cn", cn), f"sn: {cn.split()[-1]}"]
            entry += [f"userPassword: {ssha(password)}"]
            entry += [_ldif_value("mail", mail)] if mail else []
            entries.append(entry)
        return "\n\n".join("\n".join(e) for e in entries) + "\n"

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None, "slapd is already running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.slapd, "-d", "0", "-f", str(self.config), "-h", self.listen],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"slapd did not start; its log:\n{self.log.read_text()}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        """Whether slapd answers an anonymous bind (raw BER: the helper needs no LDAP client)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(ANONYMOUS_BIND)
                reply = sock.recv(64)
        except OSError:
            return False
        # BindResponse (0x61) whose resultCode (ENUMERATED 0x0a, length 1) is success (0).
        return b"\x61" in reply and b"\x0a\x01\x00" in reply

    def stop(self) -> None:
        """Stop slapd (the data stays): sign-ins now find the server down."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)  # in case it was paused
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """Freeze slapd (SIGSTOP): connections are accepted but never answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> LdapServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
