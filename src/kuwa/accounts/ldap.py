"""Sign-in against an LDAP directory (OpenLDAP, Active Directory, ...).

Synchronous: callers run :meth:`LdapAuthenticator.authenticate` in a thread. A sign-in is a
search for exactly one entry under ``ldap_base_dn`` (as ``ldap_bind_dn`` or anonymously), then
a simple bind as that entry's DN on a fresh connection to check the password. Passwords are
never logged and never appear in exception messages.
"""

from __future__ import annotations

import logging
import math
import ssl
import warnings
from dataclasses import dataclass
from typing import Any

with warnings.catch_warnings():
    # ldap3 2.9.1 imports pyasn1 (>= 0.6.1) names that warn "tagMap is deprecated. Please use
    # TAG_MAP instead." at import time; harmless, but an error where warnings are errors.
    warnings.filterwarnings("ignore", r".* is deprecated\. Please use", DeprecationWarning)
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars

from kuwa.settings import Settings

log = logging.getLogger(__name__)

# Result codes a search may end with and still be read: success, sizeLimitExceeded.
_SEARCH_OK = {0, 4}
_NO_SUCH_OBJECT = 32
# Bind result codes that say nothing about the password: busy, unavailable, other.
_SERVER_DOWN = {51, 52, 80}


class LdapUnavailable(Exception):
    """The LDAP server could not be reached or answered in time (message says which server,
    never a password). Also raised when the service account (``ldap_bind_dn``) is rejected:
    a misconfiguration the directory cannot answer through, so callers fall back as if the
    server were down."""


@dataclass(frozen=True, slots=True)
class LdapIdentity:
    dn: str
    username: str  # what the person typed, stripped
    email: str  # lower-cased; from settings.ldap_email_attribute
    name: str  # from settings.ldap_name_attribute (fallback: username)


def _first(attributes: Any, name: str) -> str:
    """The first non-empty value of an attribute as text, or ""."""
    value = attributes.get(name) if attributes is not None else None
    values = value if isinstance(value, list | tuple) else [value]
    for v in values:
        text = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v or "")
        if text.strip():
            return text.strip()
    return ""


class _Tls(ldap3.Tls):  # type: ignore[misc]
    """ldap3's Tls, but the ssl module itself checks the certificate's host name: ldap3 calls
    ``ssl.match_hostname`` (deprecated; gone in Python 3.12, where its fallback rejects IPs)."""

    def __init__(self, ca_file: str | None) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
        self.context = ssl.create_default_context(cafile=ca_file)

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self.context.wrap_socket(
            connection.socket,
            server_hostname=connection.server.host,
            do_handshake_on_connect=do_handshake,
        )


class LdapAuthenticator:
    def __init__(self, settings: Settings) -> None:
        if not settings.ldap_url:
            raise ValueError("LdapAuthenticator needs settings.ldap_url")
        self.settings = settings
        self.url = settings.ldap_url
        ca_file = str(settings.ldap_ca_file) if settings.ldap_ca_file else None
        self._tls = _Tls(ca_file)  # always verified; the default CAs without ldap_ca_file

    @classmethod
    def from_settings(cls, settings: Settings) -> LdapAuthenticator | None:
        return cls(settings) if settings.ldap_url else None

    def _connect(self, user: str | None, password: str | None) -> tuple[Any, bool]:
        """Open (and StartTLS) a connection and bind; (connection, bound). Caller unbinds."""
        # A fresh Server each time: ldap3 remembers a failed address and skips it for a while.
        server = ldap3.Server(
            self.url,  # an ldaps:// URL turns on SSL
            get_info=ldap3.NONE,
            tls=self._tls,
            connect_timeout=self.settings.ldap_timeout,
        )
        conn = ldap3.Connection(
            server,
            user=user,
            password=password if user else None,
            authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
            # ldap3 packs this into SO_RCVTIMEO as a C long on POSIX: whole seconds only.
            receive_timeout=max(1, math.ceil(self.settings.ldap_timeout)),
            auto_referrals=False,
            raise_exceptions=False,
            read_only=True,
        )
        try:
            conn.open()
            if self.settings.ldap_start_tls and not conn.start_tls():
                raise LdapUnavailable(f"LDAP server {self.url}: StartTLS failed")
            return conn, bool(conn.bind())
        except BaseException:
            conn.unbind()
            if conn.socket is not None:  # ldap3 leaves it open when connecting fails
                conn.socket.close()
            raise

    def authenticate(self, username: str, password: str) -> LdapIdentity | None:
        username = username.strip()
        if not username or not password:
            return None  # an empty password would be an unauthenticated bind: never a sign-in
        s = self.settings
        try:
            conn, bound = self._connect(s.ldap_bind_dn, s.ldap_bind_password or "")
            try:
                if not bound:
                    why = conn.result.get("description") if conn.result else "no answer"
                    raise LdapUnavailable(f"LDAP server {self.url}: service bind failed ({why})")
                query = s.ldap_user_filter.replace("{username}", escape_filter_chars(username))
                conn.search(
                    s.ldap_base_dn,
                    query,
                    search_scope=ldap3.SUBTREE,
                    attributes=[s.ldap_email_attribute, s.ldap_name_attribute],
                    size_limit=2,
                )
                code = (conn.result or {}).get("result")
                if code == _NO_SUCH_OBJECT:
                    log.warning("LDAP base DN %r does not exist on %s", s.ldap_base_dn, self.url)
                    return None
                if code not in _SEARCH_OK:
                    why = (conn.result or {}).get("description", "no answer")
                    raise LdapUnavailable(f"LDAP server {self.url}: search failed ({why})")
                entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
            finally:
                conn.unbind()
            if len(entries) != 1:
                if entries:
                    log.warning("LDAP sign-in %r matches several entries; refused", username)
                return None
            dn = str(entries[0]["dn"])
            email = _first(entries[0].get("attributes"), s.ldap_email_attribute).lower()
            name = _first(entries[0].get("attributes"), s.ldap_name_attribute) or username
            if not email:
                log.warning("LDAP entry %s has no %s; refused", dn, s.ldap_email_attribute)
                return None
            user_conn, ok = self._connect(dn, password)
            code = (user_conn.result or {}).get("result")
            user_conn.unbind()
            if not ok and code in _SERVER_DOWN:
                raise LdapUnavailable(f"LDAP server {self.url}: bind answered {code}")
        except LdapUnavailable:
            raise
        except (LDAPException, OSError) as exc:
            raise LdapUnavailable(f"LDAP server {self.url} unavailable: {exc}") from exc
        return LdapIdentity(dn=dn, username=username, email=email, name=name) if ok else None
