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


model_option = click.option(
    "--model",
    "models",
    envvar="KUWA_GROUP_MODELS",
    show_envvar=True,
    multiple=True,
    metavar="CODE",
    help="Shorthand for the permission model:CODE.",
)


@click.group("group")
def command() -> None:
    """Manage groups and the permissions their members have."""


@command.command("create")
@click.argument("name")
@click.option(
    "--permission",
    "permissions",
    envvar="KUWA_GROUP_PERMISSIONS",
    show_envvar=True,
    multiple=True,
    help="A permission to grant: a fixed name or model:ACCESS_CODE.",
)
@model_option
@click.option(
    "--description",
    envvar="KUWA_GROUP_DESCRIPTION",
    show_envvar=True,
    default="",
    help="What the group is for.",
)
@click.option(
    "--invite-code",
    envvar="KUWA_GROUP_INVITE_CODE",
    show_envvar=True,
    default=None,
    help="A code that puts people who sign up with it into this group.",
)
@options.data_dir
@options.database_url
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


@command.command("grant")
@click.argument("name")
@click.argument("permissions", nargs=-1)
@model_option
@options.data_dir
@options.database_url
def grant(
    name: str,
    permissions: tuple[str, ...],
    models: tuple[str, ...],
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Grant PERMISSIONS to the group NAME. Prints a confirmation on stderr."""
    wanted = _permissions(permissions, models)
    if not wanted:
        raise click.UsageError("name at least one permission (or --model CODE)")
    with open_store(data_dir, database_url) as store:
        before = _live_group(store, name).permissions
        after = store.groups.grant(name, wanted).permissions
        added = sorted_permissions(after - before)
        if added:
            store.audit.record("group_granted", actor=ACTOR, target=name, detail=", ".join(added))
    held = len(wanted) - len(added)
    note = f" ({held} already granted)" if held else ""
    click.echo(f"granted {len(added)} permission(s) to group {name}{note}", err=True)


@command.command("revoke")
@click.argument("name")
@click.argument("permissions", nargs=-1)
@model_option
@options.data_dir
@options.database_url
def revoke(
    name: str,
    permissions: tuple[str, ...],
    models: tuple[str, ...],
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Revoke PERMISSIONS from the group NAME. Prints a confirmation on stderr."""
    wanted = _permissions(permissions, models)
    if not wanted:
        raise click.UsageError("name at least one permission (or --model CODE)")
    with open_store(data_dir, database_url) as store:
        before = _live_group(store, name).permissions
        after = store.groups.revoke(name, wanted).permissions
        removed = sorted_permissions(before - after)
        if removed:
            store.audit.record("group_revoked", actor=ACTOR, target=name, detail=", ".join(removed))
    missing = len(wanted) - len(removed)
    note = f" ({missing} not granted)" if missing else ""
    click.echo(f"revoked {len(removed)} permission(s) from group {name}{note}", err=True)


@command.command("list")
@click.option(
    "--deleted",
    envvar="KUWA_GROUP_LIST_DELETED",
    show_envvar=True,
    is_flag=True,
    default=False,
    help="Also list deleted groups (marked in a DELETED column).",
)
@options.data_dir
@options.database_url
def list_(deleted: bool, data_dir: Path | None, database_url: str | None) -> None:
    """List groups (name, members, invite code, number of permissions) on stdout."""
    with open_store(data_dir, database_url) as store:
        groups = store.groups.list_groups(include_deleted=deleted)
    headers = ["NAME", "MEMBERS", "INVITE CODE", "PERMISSIONS"]
    rows: list[list[object]] = [
        [g.name, g.members, g.invite_code or "-", len(g.permissions)] for g in groups
    ]
    if deleted:
        headers.append("DELETED")
        for row, g in zip(rows, groups, strict=True):
            row.append("yes" if g.deleted_at else "no")
    echo_table(headers, rows)


@command.command("show")
@click.argument("name")
@options.data_dir
@options.database_url
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
@options.data_dir
@options.database_url
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
@options.data_dir
@options.database_url
def restore(name: str, data_dir: Path | None, database_url: str | None) -> None:
    """Restore the deleted group NAME (without its old invite code)."""
    with open_store(data_dir, database_url) as store:
        group = store.groups.get(name, include_deleted=True)
        if group.deleted_at is None:
            raise click.ClickException(f"group {group.name} is not deleted")
        store.groups.restore(group.id)
        store.audit.record("group_restored", actor=ACTOR, target=group.name)
    click.echo(f"restored group {group.name}", err=True)
