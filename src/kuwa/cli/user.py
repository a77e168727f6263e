"""``kuwa-cli user``: create, list, change and delete users, and print their API tokens.

Works on the same database as ``kuwa-cli up`` when given the same data folder or
KUWA_DATABASE_URL, also while ``up`` is running. Also home of :func:`open_store` and
:func:`echo_table`, which ``kuwa-cli group`` and ``kuwa-cli model`` share.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings
from kuwa.errors import KuwaError

if TYPE_CHECKING:
    from kuwa.accounts import Store, UserInfo, UserRow

ACTOR = "cli"
"""The actor of every audit event the CLI writes."""

LIST_PAGE = 500


@contextmanager
def open_store(data_dir: Path | None, database_url: str | None) -> Iterator[Store]:
    """The accounts services over the configured database; KuwaError becomes ``Error: ...``."""
    from kuwa.accounts import Store, close_database, open_database

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    try:
        secret_key = settings.load_secret_key()
    except OSError as exc:
        raise click.ClickException(f"cannot read or create the secret key: {exc}") from None
    try:
        db = open_database(settings)
        try:
            yield Store.over(db, secret_key)
        finally:
            close_database(db)
    except KuwaError as exc:
        raise click.ClickException(exc.message) from None


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print ``rows`` under ``headers`` on stdout, in columns separated by two spaces."""
    cells = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def require_user(store: Store, email: str) -> UserInfo:
    user = store.accounts.find_user(email)
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    return user


def _admin_or_group(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """Reject ``--admin`` with ``--group`` before the password is asked for."""
    other = "group" if param.name == "admin" else "admin"
    if value and ctx.params.get(other):
        raise click.ClickException(
            "--admin and --group cannot be used together (administrators are in the Admins group)"
        )
    return value


email_option = click.option(
    "--email", envvar="KUWA_USER_EMAIL", show_envvar=True, required=True, help="The user's email."
)


@click.group("user")
def command() -> None:
    """Manage users: create, list, change group or password, delete, print API tokens."""


@command.command("create")
@click.option(
    "--email", envvar="KUWA_USER_EMAIL", show_envvar=True, required=True, help="Login email."
)
@click.option(
    "--name", envvar="KUWA_USER_NAME", show_envvar=True, required=True, help="Display name."
)
@click.option(
    "--password",
    envvar="KUWA_USER_PASSWORD",
    show_envvar=True,
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 8 characters. Omit it to be asked (hidden, twice).",
)
@click.option(
    "--admin",
    envvar="KUWA_USER_ADMIN",
    show_envvar=True,
    is_flag=True,
    default=False,
    callback=_admin_or_group,
    help="Make the user an administrator (a member of the Admins group).",
)
@click.option(
    "--group",
    envvar="KUWA_USER_GROUP",
    show_envvar=True,
    default=None,
    callback=_admin_or_group,
    help="Put the user in this group instead of Users. Not with --admin.",
)
@options.data_dir
@options.database_url
def create(
    email: str,
    name: str,
    password: str,
    admin: bool,
    group: str | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Create a user. Prints a confirmation on stderr."""
    with open_store(data_dir, database_url) as store:
        user = store.accounts.create_user(
            email, name, password, is_admin=admin, group=group, email_verified=True
        )
        store.audit.record(
            "account_created",
            user_id=user.id,
            actor=ACTOR,
            target=user.email,
            detail=f"group {user.group}",
        )
    role = "admin" if user.is_admin else "user"
    click.echo(f"created {role} {user.email} (id {user.id}) in group {user.group}", err=True)


@command.command("token")
@email_option
@options.data_dir
@options.database_url
def token(email: str, data_dir: Path | None, database_url: str | None) -> None:
    """Print a user's API token, creating one if none.

    Prints only the token, on one line of stdout, so scripts can capture it.
    """
    with open_store(data_dir, database_url) as store:
        user = require_user(store, email)
        value = store.accounts.ensure_token(user.id)
    click.echo(value)


@command.command("list")
@click.option(
    "--search",
    envvar="KUWA_USER_SEARCH",
    show_envvar=True,
    default="",
    help="Only users whose email or name contains this text (any case).",
)
@options.data_dir
@options.database_url
def list_(search: str, data_dir: Path | None, database_url: str | None) -> None:
    """List users (email, name, group, source) on stdout, by email."""
    with open_store(data_dir, database_url) as store:
        users: list[UserRow] = []
        while True:
            page = store.accounts.list_users(search, limit=LIST_PAGE, offset=len(users))
            users += page
            if len(page) < LIST_PAGE:
                break
    echo_table(
        ("EMAIL", "NAME", "GROUP", "SOURCE"),
        ((u.email, u.name, u.group or "-", u.source) for u in users),
    )


@command.command("set-group")
@email_option
@click.argument("group")
@options.data_dir
@options.database_url
def set_group(email: str, group: str, data_dir: Path | None, database_url: str | None) -> None:
    """Move a user into GROUP. Prints a confirmation on stderr."""
    with open_store(data_dir, database_url) as store:
        user = require_user(store, email)
        updated = store.accounts.update_user(user.id, group=group)
        store.audit.record(
            "user_group_changed",
            user_id=user.id,
            actor=ACTOR,
            target=user.email,
            detail=f"{user.group} -> {updated.group}",
        )
    click.echo(f"moved {user.email} from group {user.group} to {updated.group}", err=True)


@command.command("set-password")
@email_option
@click.option(
    "--password",
    envvar="KUWA_USER_PASSWORD",
    show_envvar=True,
    default=None,
    help="The new password, at least 8 characters. Omit it to be asked (hidden, twice).",
)
@click.option(
    "--must-change",
    envvar="KUWA_USER_MUST_CHANGE",
    show_envvar=True,
    is_flag=True,
    default=False,
    help="Make the user choose a new password at their next sign-in.",
)
@options.data_dir
@options.database_url
def set_password(
    email: str,
    password: str | None,
    must_change: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Set a user's password. Prints a confirmation on stderr."""
    with open_store(data_dir, database_url) as store:
        user = require_user(store, email)
        if password is None:
            password = str(click.prompt("New password", hide_input=True, confirmation_prompt=True))
        store.accounts.set_password(user.id, password, must_change=must_change)
        store.audit.record(
            "password_set",
            user_id=user.id,
            actor=ACTOR,
            target=user.email,
            detail="must change at next sign-in" if must_change else "",
        )
    note = "; it must be changed at the next sign-in" if must_change else ""
    click.echo(f"set the password of {user.email}{note}", err=True)


@command.command("delete")
@email_option
@click.option(
    "--yes",
    envvar="KUWA_USER_DELETE_YES",
    show_envvar=True,
    is_flag=True,
    default=False,
    help="Do not ask for confirmation.",
)
@options.data_dir
@options.database_url
def delete(email: str, yes: bool, data_dir: Path | None, database_url: str | None) -> None:
    """Delete a user for good, with their API tokens. Asks first unless --yes."""
    with open_store(data_dir, database_url) as store:
        user = require_user(store, email)
        if not yes:
            click.confirm(
                f"Delete {user.email} ({user.name}) and their API tokens for good?",
                abort=True,
                err=True,
            )
        store.accounts.delete_user(user.id)
        store.audit.record("user_deleted", actor=ACTOR, target=user.email, detail=f"id {user.id}")
    click.echo(f"deleted user {user.email} (id {user.id})", err=True)
