"""Users, passwords and API tokens: the door the rest of Kuwa uses to accounts.

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
from dataclasses import dataclass, field
from typing import Any

import peewee
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kuwa.accounts import permissions as perms
from kuwa.accounts.bounds import Bounds
from kuwa.accounts.models import ApiToken, Group, GroupPermission, User, utcnow
from kuwa.accounts.repo import Repo, aware, aware_or_none, db_errors
from kuwa.errors import ConfigError, ConflictError, InvalidRequestError, NotFoundError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "kuwa-"  # noqa: S105 -- a prefix, not a secret
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_TOKEN_LENGTH = 256
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)
_FERNET_INFO = b"kuwa/api-token-encryption/v1"


SOURCES = ("local", "ldap", "oidc")


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A signed-in or looked-up user with what their group allows."""

    id: int
    email: str
    name: str
    group: str | None = None
    permissions: frozenset[str] = field(default=frozenset(), repr=False)
    source: str = "local"
    email_verified: bool = False
    must_change_password: bool = False
    terms_accepted: int = 0
    max_jobs: int | None = None  # the group's limits (None: the gateway's defaults)
    requests_per_minute: int | None = None
    bounds: Bounds = field(default_factory=Bounds)  # what the group lets requests ask for

    @property
    def is_admin(self) -> bool:
        return "tab_Manage" in self.permissions

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def can_use_model(self, access_code: str) -> bool:
        return perms.model_permission(access_code) in self.permissions


@dataclass(frozen=True, slots=True)
class UserRow:
    """A user as the management pages list them."""

    id: int
    email: str
    name: str
    group: str | None
    source: str
    email_verified: bool
    must_change_password: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    created_at: dt.datetime  # aware, UTC
    last_used_at: dt.datetime | None  # aware, UTC
    # The token in clear, for its owner; None when it was encrypted with another secret key.
    token: str | None = field(repr=False)


_USER_SELECT = User.select(
    User.id,
    User.email,
    User.name,
    User.source,
    User.email_verified_at,
    User.must_change_password,
    User.terms_accepted,
    Group.id.alias("group_id"),
    Group.name.alias("group_name"),
    Group.deleted_at.alias("group_deleted"),
    Group.max_jobs,
    Group.requests_per_minute,
    Group.max_temperature,
    Group.max_top_p,
    Group.max_tokens,
).join(Group, peewee.JOIN.LEFT_OUTER, on=(User.group == Group.id))


class Accounts(Repo):
    def __init__(self, db: peewee.Database, secret_key: str) -> None:
        if not secret_key:
            raise ConfigError("the secret key must not be empty")
        super().__init__(db)
        self._fernet = Fernet(derive_fernet_key(secret_key))
        self._hasher = PasswordHasher()
        self._dummy_hash: str | None = None

    @property
    def fernet(self) -> Fernet:
        return self._fernet

    # --- users --------------------------------------------------------------------------
    def create_user(
        self,
        email: str,
        name: str,
        password: str | None,
        *,
        is_admin: bool = False,
        group: str | None = None,
        source: str = "local",
        email_verified: bool = False,
        must_change_password: bool = False,
    ) -> UserInfo:
        """A new account in ``group`` (default: Admins with ``is_admin``, else Users).

        ``password`` None makes an account that cannot sign in with a password (OIDC)."""
        email = normalize_email(email)
        name = check_name(name)
        if source not in SOURCES:
            raise InvalidRequestError(f"unknown account source {source!r}", param="source")
        password_hash = ""
        if password is not None:
            check_password_rules(password)
            password_hash = self._hasher.hash(password)
        group_name = perms.ADMINS if is_admin else (group or perms.USERS)
        with db_errors("creating a user"):
            try:
                with self._db.atomic():
                    group_id = self._group_id(group_name)
                    user_id = self._q(
                        User.insert(
                            email=email,
                            name=name,
                            password_hash=password_hash,
                            group=group_id,
                            source=source,
                            email_verified_at=utcnow() if email_verified else None,
                            must_change_password=must_change_password,
                            created_at=utcnow(),
                        )
                    ).execute()
            except peewee.IntegrityError:
                raise ConflictError(
                    f"a user with email {email} already exists", param="email"
                ) from None
        user = self.get_user(int(user_id))
        assert user is not None
        return user

    def find_user(self, email: str) -> UserInfo | None:
        with db_errors("finding a user"):
            row = self._user_row(email)
            return None if row is None else self._info(row)

    def get_user(self, user_id: int) -> UserInfo | None:
        with db_errors("finding a user"):
            rows = self._rows(_USER_SELECT.where(User.id == user_id).limit(1))
            return self._info(rows[0]) if rows else None

    def check_password(self, email: str, password: str) -> UserInfo | None:
        """The user when ``password`` is theirs, else None (also for unknown emails)."""
        with db_errors("checking a password"):
            row = self._user_row(email)
        if row is None or not row["password_hash"]:
            self._verify(self._dummy(), password)  # take as long as for a real user
            return None
        if not self._verify(row["password_hash"], password):
            return None
        if self._hasher.check_needs_rehash(row["password_hash"]):
            with db_errors("updating a password hash"):
                self._q(
                    User.update(password_hash=self._hasher.hash(password)).where(
                        User.id == row["id"]
                    )
                ).execute()
        with db_errors("reading a user"):
            return self._info(row)

    def set_password(self, user_id: int, password: str, *, must_change: bool = False) -> None:
        check_password_rules(password)
        password_hash = self._hasher.hash(password)
        self._update(user_id, password_hash=password_hash, must_change_password=must_change)

    def has_password(self, user_id: int) -> bool:
        with db_errors("reading a user"):
            rows = list(self._q(User.select(User.password_hash).where(User.id == user_id).tuples()))
        return bool(rows and rows[0][0])

    def update_user(
        self,
        user_id: int,
        *,
        name: str | None = None,
        email: str | None = None,
        group: str | None = None,
        must_change_password: bool | None = None,
        email_verified: bool | None = None,
    ) -> UserInfo:
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = check_name(name)
        if email is not None:
            changes["email"] = normalize_email(email)
        if must_change_password is not None:
            changes["must_change_password"] = must_change_password
        if email_verified is not None:
            changes["email_verified_at"] = utcnow() if email_verified else None
        with db_errors("updating a user"):
            if group is not None:
                changes["group"] = self._group_id(group)
            try:
                self._update(user_id, **changes)
            except peewee.IntegrityError:
                raise ConflictError(
                    f"a user with email {changes.get('email')} already exists", param="email"
                ) from None
            user = self.get_user(user_id)
        if user is None:
            raise NotFoundError(f"no user with id {user_id}", param="user_id")
        return user

    def record_login(self, user_id: int) -> None:
        self._update(user_id, last_login_at=utcnow())

    def accept_terms(self, user_id: int, version: int) -> None:
        self._update(user_id, terms_accepted=version)

    def delete_user(self, user_id: int) -> None:
        """Delete the account for good: tokens, identities, keys and codes go with it."""
        with db_errors("deleting a user"), self._db.atomic():
            self._require_user(user_id)
            self._q(User.delete().where(User.id == user_id)).execute()

    def list_users(self, search: str = "", *, limit: int = 50, offset: int = 0) -> list[UserRow]:
        query = _USER_SELECT.select_extend(User.created_at, User.last_login_at)
        if search.strip():
            needle = search.strip().lower()
            # contains() is a case-insensitive LIKE with % and _ escaped
            query = query.where(User.email.contains(needle) | User.name.contains(needle))
        with db_errors("listing users"):
            rows = self._rows(query.order_by(User.email).limit(limit).offset(offset))
        return [_user_row(row) for row in rows]

    def count_users(self) -> int:
        with db_errors("counting users"):
            return int(self._q(User.select()).count())

    # --- tokens -------------------------------------------------------------------------
    def create_token(self, user_id: int, name: str = "default") -> str:
        name = _check_token_name(name)
        with db_errors("creating a token"), self._db.atomic():
            self._require_user(user_id)
            return self._insert_token(user_id, name)

    def ensure_token(self, user_id: int) -> str:
        """The user's newest live token in clear, created first when there is none."""
        with db_errors("finding a token"), self._db.atomic():
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
        with db_errors("listing tokens"):
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
                created_at=aware(row["created_at"]),
                last_used_at=aware_or_none(row["last_used_at"]),
                token=self._decrypt(row["encrypted"]),
            )
            for row in rows
        ]

    def revoke_token(self, user_id: int, token_id: int) -> None:
        """Revoke one of the user's tokens; revoking it again does nothing."""
        with db_errors("revoking a token"), self._db.atomic():
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
        with db_errors("verifying a token"):
            rows = self._rows(
                _USER_SELECT.select_extend(
                    ApiToken.id.alias("token_id"), ApiToken.digest, ApiToken.last_used_at
                )
                .join_from(User, ApiToken, on=(ApiToken.user == User.id))
                .where((ApiToken.digest == digest) & ApiToken.revoked_at.is_null())
                .limit(1)
            )
            if not rows or not hmac.compare_digest(rows[0]["digest"], digest):
                return None
            user = self._info(rows[0])
        self._touch(rows[0]["token_id"], rows[0]["last_used_at"])
        return user

    def renew_token(self, user_id: int) -> str:
        """Revoke every live token of the user and make a new one."""
        with db_errors("renewing a token"), self._db.atomic():
            self._require_user(user_id)
            self._q(
                ApiToken.update(revoked_at=utcnow()).where(
                    (ApiToken.user == user_id) & ApiToken.revoked_at.is_null()
                )
            ).execute()
            return self._insert_token(user_id, "default")

    # --- helpers ------------------------------------------------------------------------
    def _user_row(self, email: str) -> dict[str, Any] | None:
        rows = self._rows(
            _USER_SELECT.select_extend(User.password_hash)
            .where(User.email == email.strip().lower())
            .limit(1)
        )
        return rows[0] if rows else None

    def _info(self, row: dict[str, Any]) -> UserInfo:
        """A UserInfo from a row of ``_USER_SELECT``, with its group's permissions."""
        granted: frozenset[str] = frozenset()
        if row.get("group_id") is not None and row.get("group_deleted") is None:
            granted = frozenset(
                p
                for (p,) in self._q(
                    GroupPermission.select(GroupPermission.permission)
                    .where(GroupPermission.group == row["group_id"])
                    .tuples()
                )
            )
        return UserInfo(
            id=int(row["id"]),
            email=row["email"],
            name=row["name"],
            group=row.get("group_name"),
            permissions=granted,
            source=row["source"],
            email_verified=row["email_verified_at"] is not None,
            must_change_password=bool(row["must_change_password"]),
            terms_accepted=int(row["terms_accepted"]),
            max_jobs=row.get("max_jobs"),
            requests_per_minute=row.get("requests_per_minute"),
            bounds=Bounds(row.get("max_temperature"), row.get("max_top_p"), row.get("max_tokens")),
        )

    def _group_id(self, name: str) -> int:
        rows = list(
            self._q(
                Group.select(Group.id)
                .where((Group.name == name) & Group.deleted_at.is_null())
                .tuples()
            )
        )
        if not rows:
            raise NotFoundError(f"there is no group named {name!r}", param="group")
        return int(rows[0][0])

    def _update(self, user_id: int, **changes: Any) -> None:
        if not changes:
            return
        with db_errors("updating a user"):
            n = self._q(User.update(**changes).where(User.id == user_id)).execute()
        if not n:
            raise NotFoundError(f"no user with id {user_id}", param="user_id")

    def _require_user(self, user_id: int) -> None:
        query = User.select(User.id).where(User.id == user_id)
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


def check_name(name: str) -> str:
    value = name.strip()
    if not value or len(value) > 200:
        raise InvalidRequestError("the name must be 1 to 200 characters long", param="name")
    return value


def check_password_rules(password: str) -> None:
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


def _user_row(row: dict[str, Any]) -> UserRow:
    return UserRow(
        id=int(row["id"]),
        email=row["email"],
        name=row["name"],
        group=row.get("group_name"),
        source=row["source"],
        email_verified=row["email_verified_at"] is not None,
        must_change_password=bool(row["must_change_password"]),
        created_at=aware(row["created_at"]),
        last_login_at=aware_or_none(row["last_login_at"]),
    )
