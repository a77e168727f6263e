"""peewee models for users and API tokens.

The models are bound to :data:`database_proxy`, which :func:`kuwa.accounts.db.open_database`
points at the database it opens. :class:`kuwa.accounts.Accounts` also binds each of its
queries to its own database, so it never depends on which database was opened last.

Times are stored as naive UTC datetimes (the same in SQLite and PostgreSQL); see :func:`utcnow`.
"""

from __future__ import annotations

import datetime as dt

import peewee

database_proxy = peewee.DatabaseProxy()


def utcnow() -> dt.datetime:
    """The current time as a naive UTC datetime, the form every DateTimeField stores."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(peewee.Model):
    class Meta:
        database = database_proxy


class User(BaseModel):
    id = peewee.AutoField()
    email = peewee.CharField(max_length=254, unique=True)  # always lower-case
    name = peewee.CharField(max_length=200)
    password_hash = peewee.CharField(max_length=255)  # argon2 (argon2-cffi PasswordHasher)
    is_admin = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "users"


class ApiToken(BaseModel):
    id = peewee.AutoField()
    user = peewee.ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    name = peewee.CharField(max_length=100, default="default")
    digest = peewee.CharField(max_length=64, unique=True)  # sha256 hex of the token
    encrypted = peewee.TextField()  # Fernet ciphertext of the token, for its owner to see
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "api_tokens"


MODELS: tuple[type[BaseModel], ...] = (User, ApiToken)
