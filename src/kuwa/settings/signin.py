"""Settings of signing in to the web app: its security, and mail, LDAP and OIDC."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kuwa.settings.values import doc


@dataclass(frozen=True)
class SignInSettings:
    """Sign-in and its limits, the mail server, LDAP and OIDC."""

    __slots__ = ()  # Settings holds the fields in slots of its own
    # --- web sign-in and security --------------------------------------------------------
    public_url: str | None = field(
        default=None,
        metadata=doc(
            "Address people reach Kuwa at, e.g. https://kuwa.example.org, for links in mail "
            "and OIDC redirects (default: the address of the request)."
        ),
    )
    trusted_proxies: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Proxy addresses (IPs or CIDRs, comma-separated) whose X-Forwarded-For/-Proto "
            "headers are trusted; empty: those headers are ignored."
        ),
    )
    ip_allowlist: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Client addresses (IPs or CIDRs, comma-separated) allowed to use the gateway; "
            "empty: everyone. /healthz stays open."
        ),
    )
    session_max_age: int = field(
        default=14 * 24 * 3600, metadata=doc("Seconds a web sign-in lasts.")
    )
    login_max_failures: int = field(
        default=5,
        metadata=doc("Failed sign-ins per account within login_window before it is throttled."),
    )
    login_ip_max_failures: int = field(
        default=30,
        metadata=doc("Failed sign-ins per client address within login_window before throttling."),
    )
    login_window: int = field(
        default=900, metadata=doc("Seconds over which failed sign-ins are counted.")
    )
    # --- mail ---------------------------------------------------------------------------
    smtp_host: str | None = field(
        default=None,
        metadata=doc(
            "SMTP server for verification and password-reset mail; unset: no mail is sent "
            "(the pages say so)."
        ),
    )
    smtp_port: int = field(default=587, metadata=doc("SMTP server port."))
    smtp_security: str = field(
        default="starttls", metadata=doc("SMTP transport security: starttls, ssl or none.")
    )
    smtp_username: str | None = field(default=None, metadata=doc("SMTP login name."))
    smtp_password: str | None = field(
        default=None, repr=False, metadata=doc("SMTP password; never logged.")
    )
    smtp_from: str = field(
        default="Kuwa <kuwa@localhost>", metadata=doc("Sender address of Kuwa's mail.")
    )
    smtp_timeout: float = field(default=10.0, metadata=doc("Seconds to wait for the SMTP server."))
    # --- LDAP ---------------------------------------------------------------------------
    ldap_url: str | None = field(
        default=None,
        metadata=doc("LDAP server, ldap://host:389 or ldaps://host:636; unset: no LDAP sign-in."),
    )
    ldap_start_tls: bool = field(
        default=False, metadata=doc("LDAP: upgrade ldap:// connections with StartTLS.")
    )
    ldap_ca_file: Path | None = field(
        default=None, metadata=doc("LDAP: CA certificates (PEM) to verify the server with.")
    )
    ldap_base_dn: str = field(
        default="",
        metadata=doc("LDAP: where to search for users, e.g. ou=people,dc=example,dc=org."),
    )
    ldap_user_filter: str = field(
        default="(|(uid={username})(mail={username}))",
        metadata=doc(
            "LDAP: search filter for a user; {username} is replaced by the escaped sign-in name."
        ),
    )
    ldap_bind_dn: str | None = field(
        default=None,
        metadata=doc(
            "LDAP: account that searches for users (unset: anonymous search). The user's own "
            "password is then checked by binding as the user."
        ),
    )
    ldap_bind_password: str | None = field(
        default=None, repr=False, metadata=doc("LDAP: password of ldap_bind_dn; never logged.")
    )
    ldap_email_attribute: str = field(
        default="mail", metadata=doc("LDAP: attribute with the email.")
    )
    ldap_name_attribute: str = field(
        default="cn", metadata=doc("LDAP: attribute with the display name.")
    )
    ldap_group: str = field(
        default="Users", metadata=doc("Group that accounts created on first LDAP sign-in join.")
    )
    ldap_timeout: float = field(
        default=5.0, metadata=doc("LDAP: seconds to wait for the server before local fallback.")
    )
    # --- OIDC ---------------------------------------------------------------------------
    oidc_provider: str | None = field(
        default=None,
        metadata=doc(
            "OIDC/OAuth2 sign-in: google, microsoft, github or custom (custom needs "
            "oidc_discovery_url); unset: none."
        ),
    )
    oidc_discovery_url: str | None = field(
        default=None,
        metadata=doc("OIDC discovery URL (…/.well-known/openid-configuration) for custom."),
    )
    oidc_client_id: str | None = field(default=None, metadata=doc("OIDC client id."))
    oidc_client_secret: str | None = field(
        default=None, repr=False, metadata=doc("OIDC client secret; never logged.")
    )
    oidc_scopes: str = field(
        default="openid email profile", metadata=doc("OIDC scopes to ask for.")
    )
    oidc_label: str | None = field(
        default=None, metadata=doc("Text of the sign-in button (default: the provider's name).")
    )
    oidc_tenant: str = field(
        default="common", metadata=doc("microsoft preset: the Entra ID tenant.")
    )
    oidc_group_claim: str | None = field(
        default=None,
        metadata=doc(
            "Claim whose value names the Kuwa group of an account created on first OIDC "
            "sign-in (unset or unknown group: oidc_group)."
        ),
    )
    oidc_group: str = field(
        default="Users", metadata=doc("Group that accounts created on first OIDC sign-in join.")
    )
