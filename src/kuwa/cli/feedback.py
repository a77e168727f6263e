"""``kuwa-cli feedback export``: ratings as training data (same formats as the web export)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kuwa.cli import options
from kuwa.cli.user import open_store


@click.group("feedback")
def command() -> None:
    """Feedback people gave on answers."""


@command.command("export")
@click.option(
    "--format",
    "kind",
    envvar="KUWA_FEEDBACK_FORMAT",
    show_envvar=True,
    type=click.Choice(["preference", "openai", "dpo", "csv"]),
    default="preference",
    show_default=True,
    help="preference: Kuwa's JSONL (prompt, response, chosen, rejected; whole thread when "
    "chained); openai: fine-tuning chat JSONL of liked answers; dpo: pairs where one model "
    "was liked over another on the same prompt; csv: every rating with flags and comments.",
)
@click.option(
    "--model",
    "models",
    envvar="KUWA_FEEDBACK_MODEL",
    show_envvar=True,
    multiple=True,
    help="Only these access codes (repeatable).",
)
@click.option(
    "--since", envvar="KUWA_FEEDBACK_SINCE", show_envvar=True, help="From this date (UTC)."
)
@click.option(
    "--until", envvar="KUWA_FEEDBACK_UNTIL", show_envvar=True, help="Before this date (UTC)."
)
@click.option(
    "--rating",
    envvar="KUWA_FEEDBACK_RATING",
    show_envvar=True,
    type=click.Choice(["1", "-1", "0"]),
    default=None,
    help="Only liked (1), disliked (-1) or unrated (0) answers.",
)
@click.option(
    "-o",
    "--out",
    envvar="KUWA_FEEDBACK_OUT",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here instead of stdout.",
)
@options.data_dir
@options.database_url
def export(
    kind: str,
    models: tuple[str, ...],
    since: str | None,
    until: str | None,
    rating: str | None,
    out: Path | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Export feedback (soft-deleted answers included, as Kuwa did)."""
    from kuwa.errors import KuwaError
    from kuwa.rooms import Rooms
    from kuwa.rooms.training import export_feedback, parse_date

    with open_store(data_dir, database_url) as store:
        try:
            lines = export_feedback(
                Rooms(store.db),
                kind,
                models=set(models) or None,
                since=parse_date(since, "since"),
                until=parse_date(until, "until"),
                rating=int(rating) if rating is not None else None,
            )
            sink = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
            count = 0
            try:
                for line in lines:
                    sink.write(line)
                    count += 1
            finally:
                if out:
                    sink.close()
        except KuwaError as exc:
            raise click.ClickException(exc.message) from None
    if out:
        click.echo(f"wrote {count} lines to {out}", err=True)
