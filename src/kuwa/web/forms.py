"""The web pages' HTML forms as typed structs: the fields each form posts, for the OpenAPI
document (``application/x-www-form-urlencoded``, or ``multipart/form-data`` with a file).

The page handlers read their forms field by field, because a refused form comes back with
the values as sent and the reason above it; ``tests/test_openapi.py`` checks that every field
a handler reads is a field of the struct its route declares. Every form also carries the
``csrftoken`` field (see the ``csrf`` security scheme).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from kuwa.accounts import PROVIDERS

Password = Annotated[str, Meta(extra_json_schema={"format": "password"})]
PasswordAgain = Annotated[Password, Meta(description="The new password again.")]
Tick = Annotated[str, Meta(description="A checkbox: `on` (or yes, 1, true) when ticked.")]
Yes = Annotated[Literal["yes", ""], Meta(description="A checkbox: `yes` when ticked.")]
Number = Annotated[str, Meta(description="A number, or empty for the default.")]


class Form(msgspec.Struct, kw_only=True):
    """A form's fields; a field left out is empty."""


# --- signing in, signing up, account --------------------------------------------------------
class Login(Form):
    email: Annotated[str, Meta(description="Email (or LDAP user name).")] = ""
    password: Password = ""
    next: Annotated[str, Meta(description="Where to go after signing in (a local path).")] = ""


class Signup(Form):
    name: str = ""
    email: str = ""
    password: Password = ""
    invite: Annotated[str, Meta(description="A group's invite code.")] = ""


class Code(Form):
    code: Annotated[str, Meta(description="The code of the link that was mailed.")] = ""


class Forgot(Form):
    email: str = ""


class Reset(Form):
    code: str = ""
    password: Password = ""
    password2: PasswordAgain = ""


class PasswordChange(Form):
    current: Password = ""
    password: Password = ""
    password2: PasswordAgain = ""


class Terms(Form):
    accept: Yes = ""


class Name(Form):
    name: str = ""


class EmailChange(Form):
    email: str = ""
    password: Annotated[Password, Meta(description="Your password (if you have one).")] = ""


ProviderKeys = msgspec.defstruct(
    "ProviderKeys",
    [
        *((f"key_{p}", str, "") for p in PROVIDERS),
        *((f"remove_{p}", Yes, "") for p in PROVIDERS),
    ],
    bases=(Form,),
    kw_only=True,
    module=__name__,
)
"""Your own API key per provider (``key_PROVIDER``), or ``remove_PROVIDER=yes``."""


class DeleteAccount(Form):
    confirm: Yes = ""
    password: Password = ""
    confirm_email: Annotated[str, Meta(description="Without a password: your email.")] = ""


# --- manage ---------------------------------------------------------------------------------
class UserFields(Form):
    email: str = ""
    name: str = ""
    group: str = ""
    must_change_password: Tick = ""
    email_verified: Tick = ""
    password: Annotated[Password, Meta(description="A new password (empty: unchanged).")] = ""


class Confirm(Form):
    confirm: Tick = ""


class NewGroup(Form):
    name: str = ""
    description: str = ""
    copy_from: Annotated[str, Meta(description="Copy this group's permissions.")] = ""


class GroupFields(Form):
    name: str = ""
    description: str = ""
    max_jobs: Number = ""
    requests_per_minute: Number = ""
    max_temperature: Number = ""
    max_top_p: Number = ""
    max_tokens: Number = ""
    perm: Annotated[list[str], Meta(description="The permissions granted (repeated).")] = []


class Invite(Form):
    action: Literal["generate", "clear"] = "generate"


class ModelFields(Form):
    access_code: str = ""
    name: str = ""
    description: str = ""
    image: Annotated[str, Meta(description="An image URL (or data: URL).")] = ""
    image_file: Annotated[bytes, Meta(description="An uploaded image.")] = b""
    remove_image: Tick = ""
    order: Number = ""
    enabled: Tick = ""
    modelfile: str = ""
    react_buttons: list[str] = []
    queue_timeout: Number = ""
    idle_timeout: Number = ""
    quick: Annotated[Tick, Meta(description="Add a served code with the defaults.")] = ""


class SystemFields(Form):
    registration: Literal["open", "invite", "closed"] = "open"
    allowed_domains: str = ""
    announcement: str = ""
    terms: str = ""
    arena_pool: str = ""
    trash_days: Number = ""
    blind_groups: list[str] = []


class StressRun(Form):
    models: list[str] = []
    concurrency: Number = "8"
    requests: Number = "100"
    rate: Number = ""
    duration: Number = ""
    max_tokens: Number = ""


class StopRun(Form):
    run: Annotated[str, Meta(description="The run's id.")] = ""
