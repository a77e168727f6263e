"""``kuwa-cli room``: export a room to a file, import a chat file into a room."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

import click

from kuwa.cli import options
from kuwa.cli.user import open_store


@click.group("room")
def command() -> None:
    """Chat rooms: export and import (Kuwa's JSON and TSV formats, and Word)."""


@command.command("export")
@click.argument("room_id", type=int)
@click.option(
    "--format",
    "kind",
    envvar="KUWA_ROOM_FORMAT",
    show_envvar=True,
    type=click.Choice(["json", "tsv", "docx"]),
    default="json",
    show_default=True,
    help="File format.",
)
@click.option(
    "-o",
    "--out",
    envvar="KUWA_ROOM_OUT",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here instead of stdout (docx needs a file).",
)
@options.data_dir
@options.database_url
def export(
    room_id: int, kind: str, out: Path | None, data_dir: Path | None, database_url: str | None
) -> None:
    """Export ROOM_ID's conversation (soft-deleted messages included, as Kuwa did)."""
    from kuwa.errors import KuwaError
    from kuwa.rooms import Rooms, Transfer, formats
    from kuwa.rooms.transfer import room_docx_bytes

    if kind == "docx" and out is None:
        raise click.UsageError("a Word document needs --out FILE")
    with open_store(data_dir, database_url) as store:
        rooms = Rooms(store.db)
        try:
            owner = rooms.owner_of(room_id)
            room = rooms.get(room_id, owner, with_messages=False)
            thread = Transfer(store.db).export_thread(room_id)
        except KuwaError as exc:
            raise click.ClickException(exc.message) from None
    rows = [
        formats.Row(
            role=m["role"],
            content=m["content"],
            model=m["model"] if m["role"] == "assistant" else None,
            chain=bool(m["chain"]) if m["role"] == "assistant" else None,
        )
        for m in thread
    ]
    if kind == "json":
        data = formats.export_json(rows)
    elif kind == "tsv":
        data = formats.export_tsv(rows).encode()
    else:
        data = room_docx_bytes(room, thread)
    if out is None:
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)
        click.echo(f"wrote room {room_id} ({len(thread)} messages) to {out}", err=True)


@command.command("import")
@click.argument("room_id", type=int)
@click.argument("file", type=click.File("rb"))
@options.data_dir
@options.database_url
@options.redis_url
def import_(
    room_id: int,
    file: BinaryIO,
    data_dir: Path | None,
    database_url: str | None,
    redis_url: str | None,
) -> None:
    """Import FILE (Kuwa JSON or TSV, or one prompt per line; - for stdin) into ROOM_ID, as
    its owner. Prompts without answers are answered by the background worker (kuwa-cli
    worker) through Redis."""
    from kuwa.cli.common import build_settings
    from kuwa.errors import KuwaError
    from kuwa.rooms import Rooms, Transfer, formats_parser
    from kuwa.web.background import enqueue_pending

    settings = build_settings(data_dir=data_dir, database_url=database_url, redis_url=redis_url)
    pending: list[tuple[int, str]] = []
    with open_store(data_dir, database_url) as store:
        rooms = Rooms(store.db)
        try:
            owner = rooms.owner_of(room_id)
            room = rooms.get(room_id, owner, with_messages=False)
            Transfer(store.db).import_rows(
                room_id,
                owner,
                formats_parser.parse(file, max_rows=settings.import_max_rows),
                room["models"],
                room["chained"],
                pending,
            )
        except KuwaError as exc:
            raise click.ClickException(
                f"{exc.message} (rows before it were imported)" if pending else exc.message
            ) from None
        finally:
            if pending:
                enqueue_pending(settings, room_id, owner, pending, room["chained"])
    click.echo(f"imported into room {room_id}; {len(pending)} answers to write", err=True)
