"""``kuwa-cli model``: the model catalog (what people may chat with, by access code).

A new model is open to every group; narrow it with ``kuwa-cli group revoke``. Works on the
same database as ``kuwa-cli up`` (see ``kuwa-cli user``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import click

from kuwa.cli import options
from kuwa.cli.user import ACTOR, echo_table, open_store


@click.group("model")
def command() -> None:
    """Manage the model catalog: add, change, delete and restore models."""


name_option = options.option("--name", envvar="KUWA_MODEL_NAME", help="Display name.")
description_option = options.option(
    "--description", envvar="KUWA_MODEL_DESCRIPTION", help="What the model is good for."
)
order_option = options.option(
    "--order",
    envvar="KUWA_MODEL_ORDER",
    type=int,
    help="Where the model appears in lists (lower first).",
)


@command.command("list")
@options.list_deleted("KUWA_MODEL_LIST_DELETED", "models")
@options.database
def list_(deleted: bool, data_dir: Path | None, database_url: str | None) -> None:
    """List models (access code, name, enabled, order) on stdout, in display order."""
    with open_store(data_dir, database_url) as store:
        models = store.catalog.list_models(include_deleted=deleted)
    headers = ["ACCESS CODE", "NAME", "ENABLED", "ORDER"]
    rows: list[list[object]] = [
        [m.access_code, m.name, "yes" if m.enabled else "no", m.order] for m in models
    ]
    options.deleted_column(headers, rows, models, deleted)
    echo_table(headers, rows)


@command.command("add")
@click.argument("code")
@name_option
@description_option
@order_option
@options.flag(
    "--disabled", envvar="KUWA_MODEL_DISABLED", help="Add it switched off (hidden until enabled)."
)
@options.database
def add(
    code: str,
    name: str | None,
    description: str | None,
    order: int | None,
    disabled: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Add the model with access code CODE, open to every group. Prints a confirmation on
    stderr."""
    with open_store(data_dir, database_url) as store:
        model = store.catalog.create(
            code, name or "", description=description, order=order, enabled=not disabled
        )
        store.audit.record(
            "model_created",
            actor=ACTOR,
            target=model.access_code,
            detail=f"name {model.name!r}, enabled {model.enabled}, order {model.order}",
        )
    state = "enabled" if model.enabled else "disabled"
    click.echo(f"added model {model.access_code} ({model.name}, {state})", err=True)


@command.command("set")
@click.argument("code")
@name_option
@description_option
@options.option(
    "--enable/--disable", "enabled", envvar="KUWA_MODEL_ENABLED", help="Switch the model on or off."
)
@order_option
@options.option(
    "--modelfile",
    envvar="KUWA_MODEL_MODELFILE",
    type=click.File("r", encoding="utf-8"),
    metavar="FILE",
    help="Replace the model's modelfile with this file's text ('-' reads stdin).",
)
@options.database
def set_(
    code: str,
    name: str | None,
    description: str | None,
    enabled: bool | None,
    order: int | None,
    modelfile: TextIO | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Change the model with access code CODE. Prints a confirmation on stderr."""
    changes: dict[str, Any] = {
        "name": name,
        "description": description,
        "enabled": enabled,
        "order": order,
        "modelfile": modelfile.read() if modelfile is not None else None,
    }
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes:
        raise click.UsageError(
            "nothing to change: give --name, --description, --enable/--disable, --order "
            "or --modelfile"
        )
    with open_store(data_dir, database_url) as store:
        model = store.catalog.update(code, **changes)
        store.audit.record(
            "model_updated", actor=ACTOR, target=model.access_code, detail=", ".join(changes)
        )
    click.echo(f"changed {', '.join(changes)} of model {model.access_code}", err=True)


@command.command("delete")
@click.argument("code")
@options.database
def delete(code: str, data_dir: Path | None, database_url: str | None) -> None:
    """Delete the model CODE (hidden from everyone; restorable)."""
    with open_store(data_dir, database_url) as store:
        store.catalog.delete(code)
        store.audit.record("model_deleted", actor=ACTOR, target=code)
    click.echo(f"deleted model {code}", err=True)


@command.command("restore")
@click.argument("code")
@options.database
def restore(code: str, data_dir: Path | None, database_url: str | None) -> None:
    """Restore the deleted model CODE."""
    with open_store(data_dir, database_url) as store:
        model = store.catalog.get(code, include_deleted=True)
        if model.deleted_at is None:
            raise click.ClickException(f"model {code} is not deleted")
        store.catalog.restore(code)
        store.audit.record("model_restored", actor=ACTOR, target=code)
    click.echo(f"restored model {code}", err=True)
