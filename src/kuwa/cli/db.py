"""``kuwa-cli db``: the database schema — apply the numbered migrations, show where it stands.

With the default ``KUWA_DB_AUTO_MIGRATE=true`` every process applies pending migrations itself
when it opens the database (under a lock). Deployments that migrate in a step of their own
(the compose file's one-shot service) run ``kuwa-cli db migrate`` before they start gateways
with ``KUWA_DB_AUTO_MIGRATE=false``. See docs/operations.md, "Schema migrations".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings
from kuwa.cli.user import echo_table
from kuwa.errors import KuwaError
from kuwa.settings import Settings

if TYPE_CHECKING:
    import peewee

    from kuwa.accounts.migrate import Outcome, SchemaState


T = TypeVar("T")


@click.group("db")
def command() -> None:
    """The database schema: apply migrations, show where it stands."""


@command.command("migrate")
@options.data_dir
@options.database_url
@click.option(
    "--to",
    "to",
    envvar="KUWA_DB_MIGRATE_TO",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Stop after migration number N. [default: the newest]",
)
@click.option(
    "--dry-run",
    envvar="KUWA_DB_MIGRATE_DRY_RUN",
    show_envvar=True,
    is_flag=True,
    help="Print what would be applied; change nothing.",
)
def migrate_(
    data_dir: Path | None, database_url: str | None, to: int | None, dry_run: bool
) -> None:
    """Apply the pending schema migrations, printing each; safe to run while Kuwa runs and
    from several places at once (one applies, the others wait and find it done)."""
    from kuwa.accounts.migrate import migrate, plan, read_state

    with _connected(data_dir, database_url) as db:
        state = read_state(db)
        click.echo(f"Schema: {state.describe()}; newest migration: {state.head:04d}")
        steps = _checked(lambda: plan(db, to=to, known=state.known))
        if not steps:
            click.echo(f"Nothing to do: {_where(state)}.")
            return
        for migration, action in steps:
            if dry_run:
                click.echo(f"Would {action} {migration.label}: {migration.title}")
                continue
            verb = "Stamping" if action == "stamp" else "Applying"
            click.echo(f"{verb} {migration.label}: {migration.title} … ", nl=False)
            try:
                done = migrate(db, only=migration.number, known=state.known)
            except KuwaError as exc:
                click.echo("failed")
                raise click.ClickException(exc.message) from None
            click.echo(_result(done))
        if dry_run:
            click.echo("Dry run: nothing was changed.")
        else:
            click.echo(f"Done: {_where(read_state(db, state.known))}.")


@command.command("status")
@options.data_dir
@options.database_url
def status(data_dir: Path | None, database_url: str | None) -> None:
    """Show the applied migrations (when, how) and the pending ones."""
    from kuwa.accounts.migrate import baseline_differences, read_state

    with _connected(data_dir, database_url) as db:
        state = read_state(db)
        click.echo(f"Schema: {state.describe()}; newest migration: {state.head:04d}")
        if state.applied:
            known = {m.number: m for m in state.known}
            echo_table(
                ("number", "name", "applied at (UTC)", "how"),
                [
                    (
                        f"{a.number:04d}",
                        a.name if a.number in known else f"{a.name} (unknown to this Kuwa)",
                        a.applied_at.strftime("%Y-%m-%d %H:%M:%S"),
                        a.how,
                    )
                    for a in state.applied
                ],
            )
        if state.unstamped:
            problems = _checked(lambda: baseline_differences(db))
            if problems:
                click.echo("These tables differ from migration 0001, so they cannot be stamped:")
                for line in problems:
                    click.echo(f"  {line}")
            else:
                click.echo("They match migration 0001: `kuwa-cli db migrate` stamps them.")
        if state.pending:
            click.echo("Pending:")
            for m in state.pending:
                click.echo(f"  {m.label}: {m.title}")
        else:
            click.echo(f"Pending: none ({_where(state)}).")


def prepare_database(settings: Settings) -> None:
    """Open the database once as a process starting would: migrate it (or refuse when it is
    behind and KUWA_DB_AUTO_MIGRATE is off) and seed it, then close it. Errors become
    ``Error: …`` and exit status 1, before anything starts serving."""
    from kuwa.accounts import close_database, open_database

    try:
        close_database(open_database(settings))
    except KuwaError as exc:
        raise click.ClickException(exc.message) from None


@contextmanager
def _connected(data_dir: Path | None, database_url: str | None) -> Iterator[peewee.Database]:
    from kuwa.accounts import close_database, connect_database
    from kuwa.accounts.db import redact_url

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    db = _checked(lambda: connect_database(settings))
    click.echo(f"Database: {redact_url(settings.effective_database_url)}")
    try:
        yield db
    finally:
        close_database(db)


def _checked(call: Callable[[], T]) -> T:
    try:
        return call()
    except KuwaError as exc:
        raise click.ClickException(exc.message) from None


def _where(state: SchemaState) -> str:
    if state.pending:
        return f"the schema is {state.describe()}, {len(state.pending)} pending"
    return f"the schema is at {state.current:04d}, the newest this Kuwa knows"


def _result(outcomes: list[Outcome]) -> str:
    if not outcomes or outcomes[0].action == "skipped":
        return "already applied by another process"
    outcome = outcomes[0]
    return f"{outcome.action} in {outcome.seconds:.2f} s"
