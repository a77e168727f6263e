"""Users and API tokens: the one door the rest of Kuwa uses to the accounts database.

All methods are synchronous (the gateway calls them in a thread pool) and return plain frozen
dataclasses, never peewee objects. peewee errors are translated into :mod:`kuwa.errors` here.

A token is stored twice: as its SHA-256 hex digest (unique index, for lookup) and as a Fernet
ciphertext, so its owner can see it again. The Fernet key is derived from the secret key with
HKDF-SHA256, so any string works as a secret; every process sharing a database needs the same
one to read tokens back (verifying them needs only the digest).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import peewee
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kuwa.accounts.models import ApiToken, User, utcnow
from kuwa.errors import ConfigError, ConflictError, InvalidRequestError, KuwaError, NotFoundError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "kuwa-"  # noqa: S105 -- a prefix, not a secret
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_TOKEN_LENGTH = 256
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)
_FERNET_INFO = b"kuwa/api-token-encryption/v1"


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    email: str
    name: str
    is_admin: bool


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    created_at: dt.datetime  # aware, UTC
    last_used_at: dt.datetime | None  # aware, UTC
    # The token in clear, for its owner; None when it was encrypted with another secret key.
    token: str | None = field(repr=False)


class Accounts:
    def __init__(self, db: peewee.Database, secret_key: str) -> None:
        if not secret_key:
            raise ConfigError("the secret key must not be empty")
        self._db = db
        self._fernet = Fernet(derive_fernet_key(secret_key))
        self._hasher = PasswordHasher()
        self._dummy_hash: str | None = None

    # --- users --------------------------------------------------------------------------
    def create_user(
        self, email: str, name: str, password: str, *, is_admin: bool = False
    ) -> UserInfo:
        email = normalize_email(email)
        name = _check_name(name)
        _check_password(password)
        password_hash = self._hasher.hash(password)
        with _db_errors("creating a user"):
            try:
                with self._db.atomic():
                    user_id = self._q(
                        User.insert(
                            email=email,
                            name=name,
                            password_hash=password_hash,
                            is_admin=is_admin,
                            created_at=utcnow(),
                        )
                    ).execute()
            except peewee.IntegrityError:
                raise ConflictError(
                    f"a user with email {email} already exists", param="email"
                ) from None
        return UserInfo(id=int(user_id), email=email, name=name, is_admin=is_admin)

    def find_user(self, email: str) -> UserInfo | None:
        with _db_errors("finding a user"):
            row = self._user_row(email)
        return None if row is None else _user_info(row)

    def check_password(self, email: str, password: str) -> UserInfo | None:
        """The user when ``password`` is theirs, else None (also for unknown emails)."""
        with _db_errors("checking a password"):
            row = self._user_row(email)
        if row is None:
            self._verify(self._dummy(), password)  # take as long as for a real user
            return None
        if not self._verify(row["password_hash"], password):
            return None
        if self._hasher.check_needs_rehash(row["password_hash"]):
            with _db_errors("updating a password hash"):
                self._q(
                    User.update(password_hash=self._hasher.hash(password)).where(
                        User.id == row["id"]
                    )
                ).execute()
        return _user_info(row)

    # --- tokens -------------------------------------------------------------------------
    def create_token(self, user_id: int, name: str = "default") -> str:
        name = _check_token_name(name)
        with _db_errors("creating a token"), self._db.atomic():
            self._require_user(user_id)
            return self._insert_token(user_id, name)

    def ensure_token(self, user_id: int) -> str:
        """The user's newest live token in clear, created first when there is none."""
        with _db_errors("finding a token"), self._db.atomic():
            self._require_user(user_id)
            rows = list(
                self._q(
                    ApiToken.select(ApiToken.encrypted)
                    .where((ApiToken.user == user_id) & ApiToken.revoked_at.is_null())
                    .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
                    .limit(1)
                    .tuples()
                )
            )
            if not rows:
                return self._insert_token(user_id, "default")
        token = self._decrypt(rows[0][0])
        if token is None:
            raise ConfigError(
                "this user's token was encrypted with another secret key; use the server's "
                "key (KUWA_SECRET_KEY or DATA_DIR/secret.key), or revoke the token"
            )
        return token

    def list_tokens(self, user_id: int) -> list[TokenInfo]:
        """The user's live (not revoked) tokens, newest first."""
        with _db_errors("listing tokens"):
            rows = list(
                self._q(
                    ApiToken.select(
                        ApiToken.id,
                        ApiToken.name,
                        ApiToken.created_at,
                        ApiToken.last_used_at,
                        ApiToken.encrypted,
                    )
                    .where((ApiToken.user == user_id) & ApiToken.revoked_at.is_null())
                    .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
                    .dicts()
                )
            )
        return [
            TokenInfo(
                id=row["id"],
                name=row["name"],
                created_at=_aware(row["created_at"]),
                last_used_at=_aware_or_none(row["last_used_at"]),
                token=self._decrypt(row["encrypted"]),
            )
            for row in rows
        ]

    def revoke_token(self, user_id: int, token_id: int) -> None:
        """Revoke one of the user's tokens; revoking it again does nothing."""
        with _db_errors("revoking a token"), self._db.atomic():
            rows = list(
                self._q(
                    ApiToken.select(ApiToken.revoked_at)
                    .where((ApiToken.id == token_id) & (ApiToken.user == user_id))
                    .tuples()
                )
            )
            if not rows:
                raise NotFoundError(f"no token {token_id} for this user", param="token_id")
            if rows[0][0] is None:
                self._q(
                    ApiToken.update(revoked_at=utcnow()).where(ApiToken.id == token_id)
                ).execute()

    def verify_token(self, token: str) -> UserInfo | None:
        """The live user owning ``token``, or None. One indexed SELECT on the digest."""
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        digest = token_digest(token)
        with _db_errors("verifying a token"):
            rows = list(
                self._q(
                    ApiToken.select(
                        ApiToken.id.alias("token_id"),
                        ApiToken.digest,
                        ApiToken.last_used_at,
                        User.id,
                        User.email,
                        User.name,
                        User.is_admin,
                    )
                    .join(User)
                    .where(
                        (ApiToken.digest == digest)
                        & ApiToken.revoked_at.is_null()
                        & User.deleted_at.is_null()
                    )
                    .limit(1)
                    .dicts()
                )
            )
        if not rows or not hmac.compare_digest(rows[0]["digest"], digest):
            return None
        row = rows[0]
        self._touch(row["token_id"], row["last_used_at"])
        return _user_info(row)

    # --- helpers ------------------------------------------------------------------------
    def _q(self, query: Any) -> Any:
        """Bind a query to this service's database (not whichever was opened last)."""
        return query.bind(self._db)

    def _user_row(self, email: str) -> dict[str, Any] | None:
        rows = list(
            self._q(
                User.select(User.id, User.email, User.name, User.is_admin, User.password_hash)
                .where((User.email == email.strip().lower()) & User.deleted_at.is_null())
                .limit(1)
                .dicts()
            )
        )
        return rows[0] if rows else None

    def _require_user(self, user_id: int) -> None:
        query = User.select(User.id).where((User.id == user_id) & User.deleted_at.is_null())
        if not list(self._q(query.tuples())):
            raise NotFoundError(f"no user with id {user_id}", param="user_id")

    def _insert_token(self, user_id: int, name: str) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._q(
            ApiToken.insert(
                user=user_id,
                name=name,
                digest=token_digest(token),
                encrypted=self._fernet.encrypt(token.encode()).decode(),
                created_at=utcnow(),
            )
        ).execute()
        return token

    def _decrypt(self, ciphertext: str) -> str | None:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            return None

    def _touch(self, token_id: int, last_used_at: dt.datetime | None) -> None:
        """Record use at most once per LAST_USED_RESOLUTION, so most requests never write."""
        now = utcnow()
        cutoff = now - LAST_USED_RESOLUTION
        if last_used_at is not None and last_used_at > cutoff:
            return
        stale = ApiToken.last_used_at.is_null() | (ApiToken.last_used_at <= cutoff)
        try:
            self._q(
                ApiToken.update(last_used_at=now).where((ApiToken.id == token_id) & stale)
            ).execute()
        except peewee.PeeweeException as exc:  # bookkeeping only: never fail the request
            log.warning("could not record use of API token %s: %s", token_id, exc)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash


# --- pure helpers ---------------------------------------------------------------------------
def derive_fernet_key(secret_key: str) -> bytes:
    """A Fernet key from any string, via HKDF-SHA256 with a label of its own."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_FERNET_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    """``email`` stripped and lower-cased; InvalidRequestError when it is not one."""
    value = email.strip().lower()
    local, _, domain = value.partition("@")
    if (
        value.count("@") != 1
        or not local
        or not domain
        or len(value) > 254
        or any(ch.isspace() for ch in value)
    ):
        raise InvalidRequestError(
            f"{email!r} is not an email address like name@example.com", param="email"
        )
    return value


def _check_name(name: str) -> str:
    value = name.strip()
    if not value or len(value) > 200:
        raise InvalidRequestError("the name must be 1 to 200 characters long", param="name")
    return value


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequestError(
            f"the password must be at least {MIN_PASSWORD_LENGTH} characters long",
            param="password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidRequestError(
            f"the password must be at most {MAX_PASSWORD_LENGTH} characters long",
            param="password",
        )


def _check_token_name(name: str) -> str:
    value = name.strip()
    if not value or len(value) > 100:
        raise InvalidRequestError("a token name must be 1 to 100 characters long", param="name")
    return value


def _user_info(row: dict[str, Any]) -> UserInfo:
    return UserInfo(
        id=int(row["id"]), email=row["email"], name=row["name"], is_admin=bool(row["is_admin"])
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC)


def _aware_or_none(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else _aware(value)


@contextmanager
def _db_errors(action: str) -> Iterator[None]:
    """Translate peewee errors into kuwa.errors; ours pass through unchanged."""
    try:
        yield
    except KuwaError:
        raise
    except peewee.IntegrityError as exc:
        raise ConflictError(f"{action} clashes with existing data: {exc}") from exc
    except peewee.PeeweeException as exc:
        raise KuwaError(
            f"database error while {action}: {type(exc).__name__}: {exc}", code="database_error"
        ) from exc
