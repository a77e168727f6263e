"""OIDC / OAuth2 sign-in (kuwa.web.oidc) against a real provider served on 127.0.0.1.

A tiny Starlette site (SessionMiddleware, /login and /callback) and the test provider
(tests/oidcprovider.py) each run under uvicorn; a real httpx.Client plays the browser,
keeping cookies and following redirects across both servers. authlib treats loopback
http:// addresses as secure (RFC 8252 7.3), so AUTHLIB_INSECURE_TRANSPORT is not needed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kuwa.errors import AuthenticationError
from kuwa.settings import Settings
from kuwa.web.oidc import (
    CANCELLED_MESSAGE,
    EXPIRED_MESSAGE,
    GOOGLE_DISCOVERY_URL,
    OidcClient,
    OidcIdentity,
)
from tests.oidcprovider import OidcProvider, ServerThread


class Site:
    """The relying party: the two routes a Kuwa web UI needs, around one OidcClient."""

    def __init__(self) -> None:
        self.client: OidcClient | None = None
        self.app = Starlette(
            routes=[
                Route("/login", self.login, name="login"),
                Route("/callback", self.callback, name="callback"),
            ],
            middleware=[Middleware(SessionMiddleware, secret_key=secrets.token_urlsafe(32))],
        )
        self.server = ServerThread(self.app, "oidc-site")
        self.url = self.server.url
        self.callback_url = f"{self.url}/callback"

    async def login(self, request: Request) -> Response:
        assert self.client is not None
        return await self.client.login_redirect(request, str(request.url_for("callback")))

    async def callback(self, request: Request) -> Response:
        assert self.client is not None
        try:
            identity = await self.client.finish(request)
        except AuthenticationError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(
            {
                "provider": identity.provider,
                "subject": identity.subject,
                "email": identity.email,
                "email_verified": identity.email_verified,
                "name": identity.name,
                "group": identity.group,
            }
        )


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    s = Site()
    yield s
    s.server.stop()


@pytest.fixture
def provider(site: Site) -> Iterator[OidcProvider]:
    with OidcProvider() as p:
        p.redirect_uris.add(site.callback_url)
        yield p


def settings_for(provider: OidcProvider, **extra: Any) -> Settings:
    return Settings(
        oidc_provider="custom",
        oidc_discovery_url=provider.discovery_url,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        **extra,
    )


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def use(site: Site, provider: OidcProvider, **extra: Any) -> OidcClient:
    client = OidcClient(settings_for(provider, **extra))
    site.client = client
    return client


def sign_in(browser: httpx.Client, site: Site) -> httpx.Response:
    return browser.get(f"{site.url}/login", follow_redirects=True)


def to_callback(browser: httpx.Client, site: Site, provider: OidcProvider) -> str:
    """Run the flow up to the provider's redirect back; return that callback URL."""
    first = browser.get(f"{site.url}/login")
    assert first.status_code == 302
    assert first.headers["location"].startswith(f"{provider.issuer}/authorize?")
    second = browser.get(first.headers["location"])
    assert second.status_code == 302, second.text
    location = second.headers["location"]
    assert location.startswith(site.callback_url)
    return location


def error_message(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    message: str = response.json()["error"]["message"]
    return message


# --- the full flow -----------------------------------------------------------------------
def test_sign_in_returns_the_identity(
    site: Site, provider: OidcProvider, browser: httpx.Client
) -> None:
    provider.user |= {"groups": ["Staff", "Admins"]}
    use(site, provider, oidc_group_claim="groups")
    response = sign_in(browser, site)
    assert response.status_code == 200, response.text
    assert response.url == httpx.URL(site.callback_url).copy_with(query=response.url.query)
    assert response.json() == {
        "provider": "custom",
        "subject": "user-1",
        "email": "ada.lovelace@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "group": "Staff",
    }
    # The authorization request used PKCE S256 and asked for the configured scopes.
    (request,) = provider.authorize_requests
    assert request["code_challenge_method"] == "S256"
    assert request["scope"] == "openid email profile"
    assert request["nonce"] and request["state"]
    assert provider.token_auth_methods == ["client_secret_basic"]
    assert provider.codes == {}


def test_unverified_email_and_fallback_name(
    site: Site, provider: OidcProvider, browser: httpx.Client
) -> None:
    provider.user = {"sub": "u2", "email": "Bob@Example.org", "email_verified": False}
    use(site, provider, oidc_group_claim="groups")
    body = sign_in(browser, site).json()
    assert body["email"] == "bob@example.org"
    assert body["email_verified"] is False
    assert body["name"] == "bob"
    assert body["group"] is None


def test_email_verified_must_be_literally_true(
    site: Site, provider: OidcProvider, browser: httpx.Client
) -> None:
    provider.user |= {"email_verified": "true", "groups": "Staff"}
    use(site, provider, oidc_group_claim="groups")
    body = sign_in(browser, site).json()
    assert body["email_verified"] is False
    assert body["group"] == "Staff"


def test_claims_only_at_userinfo_are_fetched(
    site: Site, provider: OidcProvider, browser: httpx.Client
) -> None:
    provider.claims_in_id_token = False
    use(site, provider)
    body = sign_in(browser, site).json()
    assert body["email"] == "ada.lovelace@example.com"
    assert body["email_verified"] is True
    assert body["name"] == "Ada Lovelace"


def test_github_flow(
    site: Site, provider: OidcProvider, browser: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"{provider.issuer}/github"
    monkeypatch.setattr(OidcClient, "GITHUB_AUTHORIZE_URL", f"{base}/login/oauth/authorize")
    monkeypatch.setattr(OidcClient, "GITHUB_TOKEN_URL", f"{base}/login/oauth/access_token")
    monkeypatch.setattr(OidcClient, "GITHUB_API_URL", f"{base}/api/")
    site.client = OidcClient(
        Settings(
            oidc_provider="github",
            oidc_client_id=provider.client_id,
            oidc_client_secret=provider.client_secret,
        )
    )
    body = sign_in(browser, site).json()
    assert body == {
        "provider": "github",
        "subject": "583231",
        "email": "octo@github.example",
        "email_verified": True,
        "name": "The Octocat",
        "group": None,
    }
    assert provider.authorize_requests[0]["scope"] == "read:user user:email"
    assert provider.token_auth_methods == ["client_secret_post"]

    # No verified primary address: the public profile address, unverified.
    provider.github_emails = [{"email": "x@example.org", "primary": True, "verified": False}]
    provider.github_user |= {"email": "Public@Example.org", "name": None}
    body = sign_in(browser, site).json()
    assert (body["email"], body["email_verified"], body["name"]) == (
        "public@example.org",
        False,
        "octocat",
    )


# --- failures: always a 401 with a message a person understands --------------------------
def test_access_denied_at_the_provider(
    site: Site, provider: OidcProvider, browser: httpx.Client
) -> None:
    use(site, provider)
    provider.deny_next = True
    assert error_message(sign_in(browser, site)) == CANCELLED_MESSAGE
    # The next try works.
    assert sign_in(browser, site).status_code == 200


def test_tampered_state(site: Site, provider: OidcProvider, browser: httpx.Client) -> None:
    use(site, provider)
    parts = urlsplit(to_callback(browser, site, provider))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = query["state"][:-2] + ("AA" if query["state"][-2:] != "AA" else "BB")
    response = browser.get(f"{site.callback_url}?{urlencode(query)}")
    assert error_message(response) == EXPIRED_MESSAGE


def test_callback_in_another_browser_or_replayed(
    site: Site, provider: OidcProvider, browser: httpx.Client
) -> None:
    use(site, provider)
    callback = to_callback(browser, site, provider)
    with httpx.Client(timeout=10) as other:  # no session cookie
        assert error_message(other.get(callback)) == EXPIRED_MESSAGE
    assert browser.get(callback).status_code == 200
    assert error_message(browser.get(callback)) == EXPIRED_MESSAGE  # state is one-time
    assert error_message(browser.get(site.callback_url)) == EXPIRED_MESSAGE  # no code


def test_id_token_signed_with_the_wrong_key(
    site: Site, provider: OidcProvider, browser: httpx.Client
) -> None:
    use(site, provider)
    provider.wrong_key = True
    assert "could not be verified" in error_message(sign_in(browser, site))


def test_id_token_for_another_audience(
    site: Site, provider: OidcProvider, browser: httpx.Client
) -> None:
    use(site, provider)
    provider.audience = "some-other-client"  # azp still names us: aud must be checked too
    assert "could not be verified" in error_message(sign_in(browser, site))


def test_provider_down_at_callback(site: Site, browser: httpx.Client) -> None:
    with OidcProvider() as provider:
        provider.redirect_uris.add(site.callback_url)
        use(site, provider)
        callback = to_callback(browser, site, provider)
    response = browser.get(callback)  # the token endpoint is gone now
    message = error_message(response)
    assert message.startswith("could not reach single sign-on")
    assert "try again later" in message


def test_provider_down_at_login(site: Site, browser: httpx.Client) -> None:
    with OidcProvider() as provider:
        client = OidcClient(settings_for(provider))
    with pytest.raises(AuthenticationError, match="could not reach single sign-on"):
        anyio.run(client.login_redirect, _fake_request(), site.callback_url)


def _fake_request() -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/login",
        "query_string": b"",
        "headers": [],
        "session": {},
    }
    return Request(scope)


# --- configuration (no network) ----------------------------------------------------------
def test_from_settings_is_none_when_unset() -> None:
    assert OidcClient.from_settings(Settings()) is None


def test_presets() -> None:
    google = OidcClient.from_settings(Settings(oidc_provider="google", oidc_client_id="g"))
    assert google is not None
    assert (google.provider, google.label) == ("google", "Google")
    assert google.discovery_url == GOOGLE_DISCOVERY_URL
    assert google.discovery_url == "https://accounts.google.com/.well-known/openid-configuration"
    assert google.scope == "openid email profile"

    ms = OidcClient(Settings(oidc_provider="microsoft", oidc_client_id="m"))
    assert ms.label == "Microsoft"
    assert ms.discovery_url == (
        "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
    )
    ms = OidcClient(
        Settings(oidc_provider="microsoft", oidc_client_id="m", oidc_tenant="contoso.example")
    )
    assert ms.discovery_url == (
        "https://login.microsoftonline.com/contoso.example/v2.0/.well-known/openid-configuration"
    )
    ms = OidcClient(
        Settings(
            oidc_provider="microsoft",
            oidc_client_id="m",
            oidc_discovery_url="https://login.example/.well-known/openid-configuration",
            oidc_label="Contoso",
        )
    )
    assert ms.discovery_url == "https://login.example/.well-known/openid-configuration"
    assert ms.label == "Contoso"

    gh = OidcClient(Settings(oidc_provider="github", oidc_client_id="h"))
    assert gh.label == "GitHub"
    assert gh.discovery_url is None
    assert gh.authorize_url == "https://github.com/login/oauth/authorize"
    assert gh.token_url == "https://github.com/login/oauth/access_token"
    assert gh.api_base_url == "https://api.github.com/"
    assert gh.scope == "read:user user:email"

    custom = OidcClient(
        Settings(
            oidc_provider="custom",
            oidc_client_id="c",
            oidc_discovery_url="https://idp.example/.well-known/openid-configuration",
        )
    )
    assert custom.label == "single sign-on"
    assert custom.discovery_url == "https://idp.example/.well-known/openid-configuration"


def test_microsoft_multi_tenant_issuer() -> None:
    ms = OidcClient(Settings(oidc_provider="microsoft", oidc_client_id="m"))
    options = ms._claims_options({"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0"})
    assert options["aud"]["values"] == ["m"]
    check = options["iss"]["validate"]
    good = "https://login.microsoftonline.com/t-1/v2.0"
    assert check({"tid": "t-1"}, good)
    assert not check({"tid": "t-2"}, good)
    assert not check({}, good)
    single = ms._claims_options({"issuer": good})
    assert single["iss"]["values"] == [good]


def test_identity_is_frozen() -> None:
    identity = OidcIdentity("custom", "s", None, False, "s", None)
    with pytest.raises(AttributeError):
        identity.name = "x"  # type: ignore[misc]
