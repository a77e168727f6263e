"""``kuwa-cli group``: create groups, grant and revoke their permissions, delete and restore.

A permission is one of Kuwa's fixed names (``tab_Manage``, ``Room_update_send_message``, …)
or ``model:ACCESS_CODE``, the right to use one model. Works on the same database as
``kuwa-cli up`` (see ``kuwa-cli user``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kuwa.cli import options
from kuwa.cli.user import ACTOR, echo_table, open_store

if TYPE_CHECKING:
    from kuwa.accounts import GroupInfo, Store


def _permissions(names: Iterable[str], models: Iterable[str]) -> list[str]:
    """Permission names from arguments and ``--model`` codes, checked, in the given order."""
    from kuwa.accounts import permissions as perms

    wanted = [name.strip() for name in names] + [
        perms.model_permission(code.strip()) for code in models
    ]
    for name in wanted:
        if not perms.is_known(name):
            raise click.ClickException(
                f"unknown permission {name!r}: use a fixed name (`kuwa-cli group show Admins` "
                "prints them all) or model:ACCESS_CODE"
            )
    return list(dict.fromkeys(wanted))


def sorted_permissions(granted: Iterable[str]) -> list[str]:
    """Fixed permissions in Kuwa's order, then model permissions by access code."""
    from kuwa.accounts import permissions as perms

    order = {name: i for i, name in enumerate(perms.ALL)}
    return sorted(granted, key=lambda p: (order.get(p, len(order)), p))


def _live_group(store: Store, name: str) -> GroupInfo:
    return store.groups.get(name)


model_option = options.option(
    "--model",
    "models",
    envvar="KUWA_GROUP_MODELS",
    multiple=True,
    metavar="CODE",
    help="Shorthand for the permission model:CODE.",
)


@click.group("group")
def command() -> None:
    """Manage groups and the permissions their members have."""


@command.command("create")
@click.argument("name")
@options.option(
    "--permission",
    "permissions",
    envvar="KUWA_GROUP_PERMISSIONS",
    multiple=True,
    help="A permission to grant: a fixed name or model:ACCESS_CODE.",
)
@model_option
@options.option(
    "--description", envvar="KUWA_GROUP_DESCRIPTION", default="", help="What the group is for."
)
@options.option(
    "--invite-code",
    envvar="KUWA_GROUP_INVITE_CODE",
    help="A code that puts people who sign up with it into this group.",
)
@options.database
def create(
    name: str,
    permissions: tuple[str, ...],
    models: tuple[str, ...],
    description: str,
    invite_code: str | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Create the group NAME. Prints a confirmation on stderr."""
    granted = _permissions(permissions, models)
    with open_store(data_dir, database_url) as store:
        group = store.groups.create(
            name, description=description, permissions=granted, invite_code=invite_code
        )
        store.audit.record(
            "group_created",
            actor=ACTOR,
            target=group.name,
            detail="permissions: " + (", ".join(sorted_permissions(group.permissions)) or "none"),
        )
    count = len(group.permissions)
    click.echo(f"created group {group.name} with {count} permission(s)", err=True)


def _permission_command(verb: str, *, grant: bool, help: str) -> click.Command:
    """``grant`` or ``revoke``: the same arguments, the opposite change."""

    @command.command(verb, help=help)
    @click.argument("name")
    @click.argument("permissions", nargs=-1)
    @model_option
    @options.database
    def change(
        name: str,
        permissions: tuple[str, ...],
        models: tuple[str, ...],
        data_dir: Path | None,
        database_url: str | None,
    ) -> None:
        wanted = _permissions(permissions, models)
        if not wanted:
            raise click.UsageError("name at least one permission (or --model CODE)")
        with open_store(data_dir, database_url) as store:
            before = _live_group(store, name).permissions
            if grant:
                changed = sorted_permissions(store.groups.grant(name, wanted).permissions - before)
            else:
                changed = sorted_permissions(before - store.groups.revoke(name, wanted).permissions)
            if changed:
                action = "group_granted" if grant else "group_revoked"
                store.audit.record(action, actor=ACTOR, target=name, detail=", ".join(changed))
        rest = len(wanted) - len(changed)
        note = f" ({rest} {'already granted' if grant else 'not granted'})" if rest else ""
        done = "granted {} permission(s) to" if grant else "revoked {} permission(s) from"
        click.echo(f"{done.format(len(changed))} group {name}{note}", err=True)

    return change


grant = _permission_command(
    "grant",
    grant=True,
    help="Grant PERMISSIONS to the group NAME. Prints a confirmation on stderr.",
)
revoke = _permission_command(
    "revoke",
    grant=False,
    help="Revoke PERMISSIONS from the group NAME. Prints a confirmation on stderr.",
)


@command.command("list")
@options.list_deleted("KUWA_GROUP_LIST_DELETED", "groups")
@options.database
def list_(deleted: bool, data_dir: Path | None, database_url: str | None) -> None:
    """List groups (name, members, invite code, number of permissions) on stdout."""
    with open_store(data_dir, database_url) as store:
        groups = store.groups.list_groups(include_deleted=deleted)
    headers = ["NAME", "MEMBERS", "INVITE CODE", "PERMISSIONS"]
    rows: list[list[object]] = [
        [g.name, g.members, g.invite_code or "-", len(g.permissions)] for g in groups
    ]
    options.deleted_column(headers, rows, groups, deleted)
    echo_table(headers, rows)


@command.command("show")
@click.argument("name")
@options.database
def show(name: str, data_dir: Path | None, database_url: str | None) -> None:
    """Print the permissions of the group NAME on stdout, one per line."""
    with open_store(data_dir, database_url) as store:
        group = store.groups.get(name, include_deleted=True)
    if group.deleted_at is not None:
        click.echo(
            f"group {group.name} is deleted: its members have none of these permissions",
            err=True,
        )
    for permission in sorted_permissions(group.permissions):
        click.echo(permission)


@command.command("delete")
@click.argument("name")
@options.database
def delete(name: str, data_dir: Path | None, database_url: str | None) -> None:
    """Delete the group NAME; restorable. Members keep their accounts, not its permissions."""
    with open_store(data_dir, database_url) as store:
        group = _live_group(store, name)
        store.groups.delete(group.id)
        store.audit.record(
            "group_deleted", actor=ACTOR, target=group.name, detail=f"{group.members} member(s)"
        )
    click.echo(
        f"deleted group {group.name} ({group.members} member(s) lose its permissions)", err=True
    )


@command.command("restore")
@click.argument("name")
@options.database
def restore(name: str, data_dir: Path | None, database_url: str | None) -> None:
    """Restore the deleted group NAME (without its old invite code)."""
    with open_store(data_dir, database_url) as store:
        group = store.groups.get(name, include_deleted=True)
        if group.deleted_at is None:
            raise click.ClickException(f"group {group.name} is not deleted")
        store.groups.restore(group.id)
        store.audit.record("group_restored", actor=ACTOR, target=group.name)
    click.echo(f"restored group {group.name}", err=True)
