"""Every table of the first release with migrations (git d73d389).

The models below are a frozen copy of ``kuwa/accounts/models.py`` at that release: fields,
docstrings and comments unchanged, only the base class differs (it belongs to no database;
``step.create_tables`` creates their tables in the database being migrated without binding
them). They never change:
later schema changes are later migrations. A database that ``create_tables`` made before
migrations existed already has exactly these tables, so :mod:`kuwa.accounts.migrate` checks
and stamps it as 0001 instead of applying this.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import peewee

if TYPE_CHECKING:
    from kuwa.accounts.migration_step import Step


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(peewee.Model):
    pass


class Group(BaseModel):
    id = peewee.AutoField()
    name = peewee.CharField(max_length=100, unique=True)
    description = peewee.TextField(default="")
    invite_code = peewee.CharField(max_length=64, unique=True, null=True)
    # Per-user limits for members (None: the gateway's KUWA_USER_* defaults; 0: no limit).
    max_jobs = peewee.IntegerField(null=True)
    requests_per_minute = peewee.IntegerField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "groups"


class GroupPermission(BaseModel):
    id = peewee.AutoField()
    group = peewee.ForeignKeyField(Group, backref="permissions", on_delete="CASCADE")
    permission = peewee.CharField(max_length=160)

    class Meta:
        table_name = "group_permissions"
        indexes = ((("group", "permission"), True),)


class User(BaseModel):
    id = peewee.AutoField()
    email = peewee.CharField(max_length=254, unique=True)  # always lower-case
    name = peewee.CharField(max_length=200)
    # argon2 (argon2-cffi PasswordHasher); "" for accounts that cannot sign in locally.
    password_hash = peewee.CharField(max_length=255)
    group = peewee.ForeignKeyField(Group, null=True, backref="users", on_delete="SET NULL")
    source = peewee.CharField(max_length=16, default="local")  # local, ldap, oidc
    email_verified_at = peewee.DateTimeField(null=True)
    must_change_password = peewee.BooleanField(default=False)
    terms_accepted = peewee.IntegerField(default=0)  # version of the terms accepted
    created_at = peewee.DateTimeField(default=utcnow)
    last_login_at = peewee.DateTimeField(null=True)

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


class ExternalIdentity(BaseModel):
    """An OIDC/OAuth2 account linked to a Kuwa account."""

    id = peewee.AutoField()
    user = peewee.ForeignKeyField(User, backref="identities", on_delete="CASCADE")
    provider = peewee.CharField(max_length=32)
    subject = peewee.CharField(max_length=255)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "external_identities"
        indexes = ((("provider", "subject"), True),)


class ProviderKey(BaseModel):
    """A user's own key for an upstream provider (openai, google, other), Fernet-encrypted."""

    id = peewee.AutoField()
    user = peewee.ForeignKeyField(User, backref="provider_keys", on_delete="CASCADE")
    provider = peewee.CharField(max_length=32)
    encrypted = peewee.TextField()
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "provider_keys"
        indexes = ((("user", "provider"), True),)


class OneTimeCode(BaseModel):
    """A single-use secret mailed to a user (email verification, password reset)."""

    id = peewee.AutoField()
    user = peewee.ForeignKeyField(User, backref="codes", on_delete="CASCADE")
    purpose = peewee.CharField(max_length=32)
    digest = peewee.CharField(max_length=64, unique=True)
    data = peewee.TextField(default="")  # e.g. the new address of an email change
    expires_at = peewee.DateTimeField()
    used_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "one_time_codes"


class Model(BaseModel):
    """A model people can chat with, by access code (what executors serve)."""

    id = peewee.AutoField()
    access_code = peewee.CharField(max_length=128, unique=True)
    name = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    image = peewee.TextField(default="")  # a URL or a data: URL (small images)
    order = peewee.IntegerField(default=0)
    enabled = peewee.BooleanField(default=True)
    modelfile = peewee.TextField(default="")
    react_buttons = peewee.CharField(
        max_length=200, default="copy,quote,translate,feedback,regenerate"
    )
    # Deadlines for this model's jobs (None: the KUWA_QUEUE_TIMEOUT / idle defaults).
    queue_timeout = peewee.FloatField(null=True)
    idle_timeout = peewee.FloatField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "models"


class AuditEvent(BaseModel):
    id = peewee.AutoField()
    at = peewee.DateTimeField(default=utcnow, index=True)
    user = peewee.ForeignKeyField(User, null=True, backref="audit", on_delete="SET NULL")
    actor = peewee.CharField(max_length=254, default="")  # email at the time, "" for none
    action = peewee.CharField(max_length=64, index=True)
    target = peewee.CharField(max_length=254, default="")
    detail = peewee.TextField(default="")
    ip = peewee.CharField(max_length=64, default="")
    ok = peewee.BooleanField(default=True)

    class Meta:
        table_name = "audit_events"


class SystemSetting(BaseModel):
    key = peewee.CharField(max_length=64, primary_key=True)
    value = peewee.TextField(default="")

    class Meta:
        table_name = "system_settings"


class Bot(BaseModel):
    """A bot: a base model (access code) with a Modelfile, shared at a visibility level."""

    id = peewee.AutoField()
    owner = peewee.ForeignKeyField(User, null=True, backref="bots", on_delete="SET NULL")
    group = peewee.ForeignKeyField(Group, null=True, backref="bots", on_delete="SET NULL")
    name = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    base = peewee.CharField(max_length=128)
    modelfile = peewee.TextField(default="")
    avatar = peewee.TextField(default="")  # a data:image/ URL
    react_buttons = peewee.CharField(
        max_length=200, default="copy,quote,translate,feedback,regenerate"
    )
    visibility = peewee.CharField(
        max_length=16, default="private"
    )  # system/community/group/private
    uses = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "bots"


class Room(BaseModel):
    """A chat room: one or more models answering each prompt side by side."""

    id = peewee.AutoField()
    owner = peewee.ForeignKeyField(User, backref="rooms", on_delete="CASCADE")
    title = peewee.CharField(max_length=200, default="")
    models = peewee.TextField(default="[]")  # JSON list of access codes, in column order
    chained = peewee.BooleanField(default=True)  # multi-turn: each model sees its thread
    share_token = peewee.CharField(max_length=64, null=True, unique=True)  # read-only link
    arena = peewee.BooleanField(default=False)  # a blinded battle: models shown as A and B
    revealed = peewee.BooleanField(default=False)  # the vote is in: names may be shown
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow, index=True)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "rooms"


class RoomMember(BaseModel):
    """A user or a group a room is shared with, as viewer or participant."""

    id = peewee.AutoField()
    room = peewee.ForeignKeyField(Room, backref="members", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, null=True, backref="shared_rooms", on_delete="CASCADE")
    group = peewee.ForeignKeyField(Group, null=True, backref="shared_rooms", on_delete="CASCADE")
    role = peewee.CharField(max_length=16)  # viewer, participant

    class Meta:
        table_name = "room_members"
        indexes = ((("room", "user"), True), (("room", "group"), True))


class Message(BaseModel):
    """A prompt (role user) or an answer (role assistant) in a room.

    An answer's ``parent`` is its prompt; a prompt's ``parent`` is the prompt before it.
    Siblings are versions (answers of one model to one prompt) or branches (edited prompts);
    ``selected`` marks the one shown."""

    id = peewee.AutoField()
    room = peewee.ForeignKeyField(Room, backref="messages", on_delete="CASCADE")
    parent = peewee.IntegerField(null=True, index=True)
    role = peewee.CharField(max_length=16)
    model = peewee.CharField(max_length=128, null=True)
    author = peewee.ForeignKeyField(User, null=True, backref="messages", on_delete="SET NULL")
    content = peewee.TextField(default="")
    status = peewee.CharField(max_length=16, default="done")  # running, done, failed, cancelled
    error = peewee.TextField(null=True)
    job_id = peewee.CharField(max_length=64, null=True)
    chain = peewee.BooleanField(default=True)
    selected = peewee.BooleanField(default=True)
    translation = peewee.TextField(null=True)
    translation_lang = peewee.CharField(max_length=16, null=True)
    translation_status = peewee.CharField(max_length=16, null=True)
    translation_job = peewee.CharField(max_length=64, null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "messages"


class ArenaBattle(BaseModel):
    """One vote in the arena: which of two models (sides A and B) answered better."""

    id = peewee.AutoField()
    room = peewee.ForeignKeyField(Room, backref="battles", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, null=True, backref="battles", on_delete="SET NULL")
    model_a = peewee.CharField(max_length=128)
    model_b = peewee.CharField(max_length=128)
    outcome = peewee.CharField(max_length=8)  # a, b, tie, bad
    flagged = peewee.BooleanField(default=False)  # an answer named its model: not ranked
    language = peewee.CharField(max_length=16, default="")
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "arena_battles"


class Feedback(BaseModel):
    """One user's rating of an answer, with Kuwa's detail flags and a comment."""

    id = peewee.AutoField()
    message = peewee.ForeignKeyField(Message, backref="feedback", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, backref="feedback", on_delete="CASCADE")
    rating = peewee.IntegerField(default=0)  # 1 up, -1 down, 0 none
    flags = peewee.CharField(max_length=200, default="")
    comment = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "feedback"
        indexes = ((("message", "user"), True),)


MODELS: tuple[type[BaseModel], ...] = (
    Group,
    GroupPermission,
    User,
    ApiToken,
    ExternalIdentity,
    ProviderKey,
    OneTimeCode,
    Model,
    AuditEvent,
    SystemSetting,
    Bot,
    Room,
    RoomMember,
    Message,
    Feedback,
    ArenaBattle,
)


def up(step: Step) -> None:
    step.create_tables(MODELS)
