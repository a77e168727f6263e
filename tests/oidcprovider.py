"""A small but real OpenID Connect provider for tests, served over HTTP on 127.0.0.1.

Authorization-code flow only: discovery, JWKS, /authorize (no login form: it approves at
once as :attr:`OidcProvider.user`), /token (client_secret_basic or client_secret_post,
one-time codes, PKCE S256 required), /userinfo. ID tokens are RS256 JWTs signed with a key
made at start (joserfc, the JOSE library authlib itself now uses; ``authlib.jose`` is
deprecated and warns on import). Switches make it misbehave the ways a test needs:
:attr:`deny_next`, :attr:`wrong_key`, :attr:`audience`, :attr:`claims_in_id_token`.

It also plays GitHub (plain OAuth2, no ID token) under ``/github``: the same /authorize and
/token, plus ``/github/api/user`` and ``/github/api/user/emails`` from
:attr:`github_user` and :attr:`github_emails`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.stack import free_port, wait_until

KID = "test-key-1"


class ServerThread:
    """An ASGI app served by uvicorn in a background thread on a free 127.0.0.1 port."""

    def __init__(self, app: Any, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 10, f"the {name} server")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    scope: list[str]
    nonce: str | None
    code_challenge: str
    user: dict[str, Any]
    expires: float


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcProvider:
    """Start with :meth:`start` (or ``with OidcProvider() as p``); :attr:`issuer` is its URL."""

    def __init__(self, client_id: str = "kuwa-test-client") -> None:
        self.client_id = client_id
        self.client_secret = secrets.token_urlsafe(24)
        self.redirect_uris: set[str] = set()
        self.key = RSAKey.generate_key(
            2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"}, private=True
        )
        # Same kid, other key: the signature check (not the key lookup) must catch it.
        self.other_key = RSAKey.generate_key(
            2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"}, private=True
        )
        self.user: dict[str, Any] = {
            "sub": "user-1",
            "email": "Ada.Lovelace@Example.COM",
            "email_verified": True,
            "name": "Ada Lovelace",
        }
        self.deny_next = False  # the next /authorize answers error=access_denied
        self.wrong_key = False  # sign ID tokens with a key that is not in the JWKS
        self.audience: str | None = None  # "aud" other than the client id (azp stays ours)
        self.claims_in_id_token = True  # False: only sub in the ID token, the rest at /userinfo
        self.github_user: dict[str, Any] = {
            "id": 583231,
            "login": "octocat",
            "name": "The Octocat",
            "email": None,
        }
        self.github_emails: list[dict[str, Any]] = [
            {"email": "Octo@GitHub.example", "primary": True, "verified": True},
            {"email": "other@example.org", "primary": False, "verified": True},
        ]
        self.codes: dict[str, Grant] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_auth_methods: list[str] = []
        self.server: ServerThread | None = None
        self.issuer = ""
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo, methods=["GET", "POST"]),
                Route("/github/login/oauth/authorize", self.authorize),
                Route("/github/login/oauth/access_token", self.token, methods=["POST"]),
                Route("/github/api/user", self.github_api_user),
                Route("/github/api/user/emails", self.github_api_emails),
            ]
        )

    # --- life cycle --------------------------------------------------------------------
    def start(self) -> OidcProvider:
        self.server = ServerThread(self.app, "oidc-provider")
        self.issuer = self.server.url
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    # --- endpoints ---------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.authorize_requests.append(q)
        redirect_uri = q.get("redirect_uri", "")
        # Per RFC 6749 4.1.2.1: a bad client or redirect URI gets an error page, no redirect.
        if q.get("client_id") != self.client_id:
            return PlainTextResponse("unknown client_id", status_code=400)
        if redirect_uri not in self.redirect_uris:
            return PlainTextResponse("redirect_uri is not registered", status_code=400)

        def back(**params: str) -> Response:
            if "state" in q:
                params["state"] = q["state"]
            return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

        if self.deny_next:
            self.deny_next = False
            return back(error="access_denied", error_description="The user said no")
        if q.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        code = secrets.token_urlsafe(24)
        self.codes[code] = Grant(
            client_id=q["client_id"],
            redirect_uri=redirect_uri,
            scope=q.get("scope", "").split(),
            nonce=q.get("nonce"),
            code_challenge=q["code_challenge"],
            user=dict(self.user),
            expires=time.time() + 60,
        )
        return back(code=code)

    def _client_auth(self, request: Request, form: dict[str, str]) -> tuple[str | None, str]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            raw = base64.b64decode(header[6:]).decode()
            client_id, _, secret = raw.partition(":")
            self.token_auth_methods.append("client_secret_basic")
            return unquote(client_id), unquote(secret)
        self.token_auth_methods.append("client_secret_post")
        return form.get("client_id"), form.get("client_secret", "")

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}

        def fail(error: str, status: int = 400) -> Response:
            return JSONResponse({"error": error}, status_code=status)

        client_id, secret = self._client_auth(request, form)
        if client_id != self.client_id or not secrets.compare_digest(secret, self.client_secret):
            return fail("invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return fail("unsupported_grant_type")
        grant = self.codes.pop(form.get("code", ""), None)  # one-time
        if grant is None or grant.expires < time.time() or grant.client_id != client_id:
            return fail("invalid_grant")
        if form.get("redirect_uri") != grant.redirect_uri:
            return fail("invalid_grant")
        if _s256(form.get("code_verifier", "")) != grant.code_challenge:
            return fail("invalid_grant")
        access_token = secrets.token_urlsafe(24)
        self.access_tokens[access_token] = grant.user
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": " ".join(grant.scope),
        }
        if "openid" in grant.scope:
            body["id_token"] = self.id_token(grant)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience or self.client_id,
            "azp": self.client_id,
            "sub": grant.user["sub"],
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        if self.claims_in_id_token:
            claims |= {k: v for k, v in grant.user.items() if k not in claims}
        key = self.other_key if self.wrong_key else self.key
        return jwt.encode({"alg": "RS256", "kid": KID, "typ": "JWT"}, claims, key)

    def _bearer(self, request: Request) -> dict[str, Any] | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        return self.access_tokens.get(header[7:].strip())

    async def userinfo(self, request: Request) -> Response:
        user = self._bearer(request)
        if user is None:
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return JSONResponse(user)

    async def github_api_user(self, request: Request) -> Response:
        if self._bearer(request) is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(self.github_user)

    async def github_api_emails(self, request: Request) -> Response:
        if self._bearer(request) is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(self.github_emails)
