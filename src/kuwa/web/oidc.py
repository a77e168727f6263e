"""Sign-in with an OpenID Connect or OAuth2 provider (Google, Microsoft, GitHub or any OIDC).

Built on authlib's Starlette client. The flow is the authorization-code flow with PKCE
(S256): :meth:`OidcClient.login_redirect` sends the browser to the provider, and
:meth:`OidcClient.finish` handles the callback: it checks ``state``, trades the code for tokens
and, for OIDC providers, validates the ID token (signature against the provider's JWKS,
``iss``, ``aud``, ``exp``/``iat``, ``nonce``) before it returns an :class:`OidcIdentity`.
GitHub has no OIDC for user sign-in; there the identity comes from its REST API (``GET user``
and the primary verified address of ``GET user/emails``).

The caller must install Starlette's ``SessionMiddleware`` (signed cookie) on the app:
authlib keeps ``state``, ``nonce``, the PKCE ``code_verifier`` and the redirect URI in
``request.session`` between the two requests. Use ``same_site="lax"`` (the default), not
``"strict"``: the provider's redirect back is a cross-site navigation, and a strict cookie
would not come along, so every sign-in would fail as "expired".

Every failure of :meth:`OidcClient.finish` is a :class:`kuwa.errors.AuthenticationError`
whose message a person can act on; the technical detail goes to the log.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import authlib.deprecate  # noqa: F401  (imported first: it installs its own warning filter)
import httpx
import joserfc.errors
from starlette.requests import Request
from starlette.responses import Response

from kuwa.errors import AuthenticationError, ConfigError
from kuwa.settings import Settings

with warnings.catch_warnings():
    # authlib >= 1.7 prefers the httpx2 package; without it, it falls back to httpx and warns
    # at import time. Either works for us (both kinds of network error are handled below).
    warnings.filterwarnings(
        "ignore", message="The httpx module is deprecated", category=DeprecationWarning
    )
    from authlib.common.errors import AuthlibBaseError
    from authlib.integrations.base_client.errors import MismatchingStateError
    from authlib.integrations.starlette_client import OAuth, OAuthError

log = logging.getLogger(__name__)

PROVIDERS = ("google", "microsoft", "github", "custom")
GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
MICROSOFT_DISCOVERY_URL = (
    "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
)
_LABELS = {
    "google": "Google",
    "microsoft": "Microsoft",
    "github": "GitHub",
    "custom": "single sign-on",
}
# Seconds to wait for the provider (discovery, JWKS, token, GitHub API) per request.
HTTP_TIMEOUT = 10.0

EXPIRED_MESSAGE = "the sign-in link expired or was opened in another browser; please try again"
CANCELLED_MESSAGE = "sign-in was cancelled at the provider"


def _network_errors() -> tuple[type[Exception], ...]:
    """HTTP client errors authlib may raise: it uses ``httpx2`` when installed, else ``httpx``."""
    errors: list[type[Exception]] = [httpx.HTTPError]
    with contextlib.suppress(ImportError):
        errors.append(importlib.import_module("httpx2").HTTPError)
    return tuple(errors)


_NETWORK_ERRORS = _network_errors()


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    """Who signed in, as the provider vouches for it."""

    provider: str  # "google" | "microsoft" | "github" | "custom"
    subject: str  # stable id at the provider ("sub"; GitHub: the numeric user id)
    email: str | None  # lower-cased
    email_verified: bool
    name: str  # display name (fallback: the email's local part, else the subject)
    group: str | None  # value of settings.oidc_group_claim, when configured and a string


class OidcClient:
    """One configured provider (``settings.oidc_*``)."""

    # GitHub's plain OAuth2 endpoints (class attributes so tests can point them elsewhere).
    GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
    GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"  # noqa: S105 (a URL)
    GITHUB_API_URL = "https://api.github.com/"
    GITHUB_SCOPE = "read:user user:email"

    def __init__(self, settings: Settings) -> None:
        provider = settings.oidc_provider
        if provider not in PROVIDERS:
            raise ConfigError(
                f"oidc_provider must be google, microsoft, github or custom, not {provider!r}"
            )
        assert provider is not None
        if not settings.oidc_client_id:
            raise ConfigError("oidc_provider needs oidc_client_id")
        self.provider: str = provider
        self.label: str = settings.oidc_label or _LABELS[provider]
        self.client_id: str = settings.oidc_client_id
        self.group_claim: str | None = settings.oidc_group_claim
        self.discovery_url: str | None = None
        self.authorize_url: str | None = None
        self.token_url: str | None = None
        self.api_base_url: str | None = None

        client_kwargs: dict[str, Any] = {
            "code_challenge_method": "S256",
            "timeout": HTTP_TIMEOUT,
        }
        register: dict[str, Any] = {
            "client_id": settings.oidc_client_id,
            "client_secret": settings.oidc_client_secret,
            "client_kwargs": client_kwargs,
        }
        if provider == "github":
            self.scope = self.GITHUB_SCOPE
            self.authorize_url = self.GITHUB_AUTHORIZE_URL
            self.token_url = self.GITHUB_TOKEN_URL
            self.api_base_url = self.GITHUB_API_URL
            # GitHub documents the secret as a form field of the token request.
            client_kwargs["token_endpoint_auth_method"] = "client_secret_post"  # noqa: S105
            register.update(
                authorize_url=self.authorize_url,
                access_token_url=self.token_url,
                api_base_url=self.api_base_url,
            )
        else:
            self.scope = settings.oidc_scopes
            if settings.oidc_discovery_url:
                self.discovery_url = settings.oidc_discovery_url
            elif provider == "google":
                self.discovery_url = GOOGLE_DISCOVERY_URL
            elif provider == "microsoft":
                self.discovery_url = MICROSOFT_DISCOVERY_URL.format(tenant=settings.oidc_tenant)
            else:
                raise ConfigError("oidc_provider custom needs oidc_discovery_url")
            if "openid" not in self.scope.split():
                raise ConfigError("oidc_scopes must include openid for an OIDC provider")
            register["server_metadata_url"] = self.discovery_url
        client_kwargs["scope"] = self.scope
        self._oauth = OAuth()
        self._app: Any = self._oauth.register(name="kuwa_oidc", **register)

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcClient | None:
        """The configured client, or None when ``oidc_provider`` is unset."""
        if not settings.oidc_provider:
            return None
        return cls(settings)

    # --- step 1: off to the provider ------------------------------------------------------
    async def login_redirect(self, request: Request, redirect_uri: str) -> Response:
        """A 302 to the provider's authorization endpoint (state, nonce, PKCE kept in the
        session). ``redirect_uri`` must be registered at the provider exactly as given."""
        try:
            response: Response = await self._app.authorize_redirect(request, redirect_uri)
        except _NETWORK_ERRORS as exc:
            log.warning("OIDC: cannot load %s's configuration: %r", self.label, exc)
            raise AuthenticationError(
                f"could not reach {self.label} to sign in; please try again later",
                code="oidc_unreachable",
            ) from None
        response.headers["Cache-Control"] = "no-store"
        return response

    # --- step 2: back from the provider ---------------------------------------------------
    async def finish(self, request: Request) -> OidcIdentity:
        """Check the callback request and return who signed in."""
        params = request.query_params
        error = params.get("error")
        if error:
            raise AuthenticationError(
                self._provider_error_message(error, params.get("error_description")),
                code="oidc_error",
            )
        if not params.get("state") or not params.get("code"):
            raise AuthenticationError(EXPIRED_MESSAGE, code="oidc_state")
        try:
            if self.provider == "github":
                token = await self._app.authorize_access_token(request)
                return await self._github_identity(token)
            metadata = await self._app.load_server_metadata()
            token = await self._app.authorize_access_token(
                request, claims_options=self._claims_options(metadata)
            )
            return await self._oidc_identity(token, metadata)
        except MismatchingStateError:
            raise AuthenticationError(EXPIRED_MESSAGE, code="oidc_state") from None
        except OAuthError as exc:
            log.warning("OIDC: %s refused the token request: %s", self.label, exc)
            raise AuthenticationError(
                f"{self.label} did not accept the sign-in ({exc.error}); please try again",
                code="oidc_error",
            ) from None
        except (AuthlibBaseError, joserfc.errors.JoseError) as exc:
            log.warning("OIDC: invalid ID token from %s: %r", self.label, exc)
            raise AuthenticationError(
                f"the answer from {self.label} could not be verified; please try again",
                code="oidc_invalid_token",
            ) from None
        except _NETWORK_ERRORS as exc:
            log.warning("OIDC: cannot reach %s: %r", self.label, exc)
            raise AuthenticationError(
                f"could not reach {self.label} to finish signing in; please try again later",
                code="oidc_unreachable",
            ) from None
        except ValueError as exc:  # a body that is not JSON, or not the expected shape
            log.warning("OIDC: unexpected answer from %s: %r", self.label, exc)
            raise AuthenticationError(
                f"{self.label} sent an answer Kuwa does not understand; please try again later",
                code="oidc_invalid_token",
            ) from None

    def _provider_error_message(self, error: str, description: str | None) -> str:
        log.info("OIDC: %s returned error=%s (%s)", self.label, error, description)
        if error == "access_denied":
            return CANCELLED_MESSAGE
        if error in {"login_required", "consent_required", "interaction_required"}:
            return f"{self.label} needs you to sign in there first; please try again"
        if error in {"server_error", "temporarily_unavailable"}:
            return f"{self.label} could not sign you in right now; please try again later"
        detail = f": {description[:200]}" if description else ""
        return f"{self.label} refused the sign-in ({error[:60]}{detail})"

    def _claims_options(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """What the ID token must say: our client id in ``aud`` (authlib alone only checks
        ``azp``) and the provider's issuer in ``iss``."""
        issuer = metadata.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("the discovery document has no issuer")
        iss: dict[str, Any] = {"essential": True}
        if "{tenantid}" in issuer:
            # Microsoft's multi-tenant endpoints (common, organizations, consumers) publish
            # an issuer template; each token's issuer names the user's own tenant ("tid").
            def issuer_matches(claims: Any, value: Any) -> bool:
                tid = claims.get("tid")
                if not isinstance(tid, str) or not tid:
                    return False
                return bool(value == issuer.replace("{tenantid}", tid))

            iss["validate"] = issuer_matches
        else:
            iss["values"] = [issuer]
        return {"iss": iss, "aud": {"essential": True, "values": [self.client_id]}}

    async def _oidc_identity(self, token: dict[str, Any], metadata: dict[str, Any]) -> OidcIdentity:
        claims = token.get("userinfo")
        if not claims:
            raise AuthenticationError(
                f"{self.label} did not send an ID token; check oidc_scopes includes openid",
                code="oidc_invalid_token",
            )
        merged: dict[str, Any] = dict(claims)
        subject = merged.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ValueError("the ID token has no subject")
        wanted = [c for c in ("email", self.group_claim) if c and c not in merged]
        if wanted and metadata.get("userinfo_endpoint"):
            # Some providers put only "sub" in the ID token; the rest is at /userinfo.
            extra = await self._app.userinfo(token=token)
            if extra.get("sub") == subject:  # OIDC core 5.3.2: must match, else ignore
                merged = dict(extra) | merged
            else:
                log.warning("OIDC: %s's userinfo is for another subject; ignored", self.label)
        return self._identity(subject, merged, merged.get("email_verified") is True)

    async def _github_identity(self, token: dict[str, Any]) -> OidcIdentity:
        response = await self._app.get("user", token=token)
        if response.status_code != 200:
            log.warning("OIDC: GitHub GET user answered %s", response.status_code)
            raise AuthenticationError(
                f"{self.label} did not share your profile; please try again",
                code="oidc_error",
            )
        user = response.json()
        if not isinstance(user, dict) or user.get("id") is None:
            raise ValueError("GitHub's user has no id")
        subject = str(user["id"])
        claims: dict[str, Any] = dict(user)
        claims["name"] = user.get("name") or user.get("login")
        claims["email"], verified = None, False
        emails = await self._app.get("user/emails", token=token)
        if emails.status_code == 200 and isinstance(emails.json(), list):
            for item in emails.json():
                if isinstance(item, dict) and item.get("primary") and item.get("verified"):
                    claims["email"], verified = item.get("email"), True
                    break
        else:
            log.warning("OIDC: GitHub GET user/emails answered %s", emails.status_code)
        if claims["email"] is None:  # the public profile address, if any: unverified
            claims["email"] = user.get("email")
        return self._identity(subject, claims, verified)

    def _identity(self, subject: str, claims: dict[str, Any], verified: bool) -> OidcIdentity:
        raw_email = claims.get("email")
        email = raw_email.strip().lower() if isinstance(raw_email, str) and raw_email else None
        name = claims.get("name")
        if not isinstance(name, str) or not name.strip():
            given = " ".join(str(claims[c]) for c in ("given_name", "family_name") if claims.get(c))
            name = given or (email.split("@", 1)[0] if email else subject)
        return OidcIdentity(
            provider=self.provider,
            subject=subject,
            email=email,
            # Microsoft sends no email_verified claim: its "email" may be any address a
            # tenant admin typed in, so it stays unverified (safe default).
            email_verified=verified and email is not None,
            name=name.strip(),
            group=self._group(claims),
        )

    def _group(self, claims: dict[str, Any]) -> str | None:
        if not self.group_claim:
            return None
        value = claims.get(self.group_claim)
        if isinstance(value, list):
            value = value[0] if value else None
        return value if isinstance(value, str) and value else None
