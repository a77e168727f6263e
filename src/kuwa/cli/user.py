"""``kuwa-cli user``: create users and print their API tokens.

Works on the same database as ``kuwa-cli up`` when given the same data folder or
KUWA_DATABASE_URL, also while ``up`` is running.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings
from kuwa.errors import KuwaError

if TYPE_CHECKING:
    from kuwa.accounts import Accounts


@contextmanager
def _accounts(data_dir: Path | None, database_url: str | None) -> Iterator[Accounts]:
    from kuwa.accounts import Accounts, close_database, open_database

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    try:
        secret_key = settings.load_secret_key()
    except OSError as exc:
        raise click.ClickException(f"cannot read or create the secret key: {exc}") from None
    try:
        db = open_database(settings)
        try:
            yield Accounts(db, secret_key)
        finally:
            close_database(db)
    except KuwaError as exc:
        raise click.ClickException(exc.message) from None


@click.group("user")
def command() -> None:
    """Create users and print their API tokens."""


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
    help="Make the user an administrator.",
)
@options.data_dir
@options.database_url
def create(
    email: str,
    name: str,
    password: str,
    admin: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Create a user. Prints a confirmation on stderr."""
    with _accounts(data_dir, database_url) as accounts:
        user = accounts.create_user(email, name, password, is_admin=admin)
    role = "admin" if user.is_admin else "user"
    click.echo(f"created {role} {user.email} (id {user.id})", err=True)


@command.command("token")
@click.option(
    "--email", envvar="KUWA_USER_EMAIL", show_envvar=True, required=True, help="The user's email."
)
@options.data_dir
@options.database_url
def token(email: str, data_dir: Path | None, database_url: str | None) -> None:
    """Print a user's API token, creating one if none.

    Prints only the token, on one line of stdout, so scripts can capture it.
    """
    with _accounts(data_dir, database_url) as accounts:
        user = accounts.find_user(email)
        if user is None:
            raise click.ClickException(f"no user with email {email}")
        value = accounts.ensure_token(user.id)
    click.echo(value)
