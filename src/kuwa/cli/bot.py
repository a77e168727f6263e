"""``kuwa-cli bot``: ``.bot`` files in and out of the bot store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kuwa.cli import options
from kuwa.cli.common import build_settings
from kuwa.cli.user import ACTOR, open_store

if TYPE_CHECKING:
    from kuwa.accounts import Store
    from kuwa.bots.botfile import Knowledge
    from kuwa.settings import Settings


@click.group("bot")
def command() -> None:
    """Bots: import and export Kuwa's .bot files."""


@command.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--owner",
    envvar="KUWA_BOT_OWNER",
    show_envvar=True,
    default=None,
    help="Email of the user who owns the bot (default: a system bot, owned by nobody).",
)
@options.data_dir
@options.database_url
@options.redis_url
def import_(
    file: Path,
    owner: str | None,
    data_dir: Path | None,
    database_url: str | None,
    redis_url: str | None,
) -> None:
    """Add the bot in FILE: a private bot of --owner, or a system bot without --owner. Its
    base model must be in the model catalog. Knowledge files in it are kept as --owner's
    (a system bot's knowledge needs an --owner too) and indexed by a worker (Redis)."""
    from kuwa.accounts.models import Bot, utcnow
    from kuwa.bots.botfile import MAX_BOT_FILE_BYTES, load
    from kuwa.bots.store import avatar_url
    from kuwa.errors import KuwaError

    settings = build_settings(data_dir=data_dir, database_url=database_url, redis_url=redis_url)
    limit = MAX_BOT_FILE_BYTES + 4 * settings.files_max_bytes
    with open_store(data_dir, database_url) as store:
        try:
            parsed = load(file.read_bytes(), limit)
            store.catalog.get(parsed.base)  # NotFoundError names the missing base model
        except KuwaError as exc:
            if exc.param == "model":
                raise click.ClickException(
                    f"the bot's base model {parsed.base!r} is not in the model catalog; "
                    "add it first (kuwa-cli model add) or start an executor serving it"
                ) from None
            raise click.ClickException(exc.message) from None
        owner_id = None
        if owner:
            user = store.accounts.find_user(owner)
            if user is None:
                raise click.ClickException(f"there is no user {owner}")
            owner_id = user.id
        if parsed.knowledge and owner_id is None:
            raise click.ClickException(
                f"the bot carries {len(parsed.knowledge)} knowledge files; name the user who "
                "keeps them with --owner"
            )
        avatar = avatar_url(parsed.avatar, parsed.avatar_type)
        bot_id = (
            Bot.insert(
                owner=owner_id,
                name=parsed.name,
                description=parsed.description,
                base=parsed.base,
                modelfile=parsed.modelfile,
                avatar=avatar,
                visibility="private" if owner_id else "system",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            .bind(store.db)
            .execute()
        )
        if parsed.knowledge and owner_id is not None:
            _add_knowledge(store, settings, owner_id, int(bot_id), parsed.knowledge)
        store.audit.record("bot_imported", actor=ACTOR, target=parsed.name, detail=str(file))
    kind = "private" if owner_id else "system"
    extra = f" with {len(parsed.knowledge)} knowledge files" if parsed.knowledge else ""
    click.echo(f"imported {kind} bot {bot_id}: {parsed.name}{extra}", err=True)


def _add_knowledge(
    store: Store, settings: Settings, owner_id: int, bot_id: int, knowledge: tuple[Knowledge, ...]
) -> None:
    """Keep the bot's knowledge and queue its indexing; all or nothing (and no bot)."""
    from redis.exceptions import RedisError

    from kuwa.accounts.models import Bot
    from kuwa.documents import Documents, enqueue_indexing
    from kuwa.errors import KuwaError

    docs = Documents(store.db, settings)
    rows: list[dict[str, object]] = []
    try:
        for item in knowledge:
            rows.append(docs.add(owner_id, item.name, item.data, bot_id=bot_id))
    except KuwaError as exc:
        for row in rows:
            docs.delete(row)
        Bot.delete().where(Bot.id == bot_id).bind(store.db).execute()
        raise click.ClickException(f"knowledge file {item.name!r}: {exc.message}") from None
    for row in rows:
        try:
            enqueue_indexing(settings, int(str(row["id"])))
        except RedisError as exc:
            raise click.ClickException(
                f"the bot was imported, but its knowledge could not be queued for indexing "
                f"(Redis at {settings.effective_redis_url}: {exc})"
            ) from None


@command.command("export")
@click.argument("name")
@click.option(
    "-o",
    "--out",
    envvar="KUWA_BOT_OUT",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here instead of stdout.",
)
@options.data_dir
@options.database_url
def export(name: str, out: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """Write the bot called NAME (the newest, if several) as a .bot file."""
    from kuwa.bots.botfile import MAX_BOT_FILE_BYTES, BotFile, Knowledge, dump
    from kuwa.bots.store import Bots, avatar_bytes
    from kuwa.documents import Documents

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    with open_store(data_dir, database_url) as store:
        bots = Bots(store.db)
        bot_id = bots.find_by_name(name)
        if bot_id is None:
            raise click.ClickException(f"there is no bot named {name!r}")
        row = bots.raw(bot_id)
        docs = Documents(store.db, settings)
        knowledge = tuple(Knowledge(str(r["name"]), docs.content(r)) for r in docs.of_bot(bot_id))
    avatar, avatar_type = avatar_bytes(str(row["avatar"]))
    data = dump(
        BotFile(
            name=row["name"],
            description=row["description"],
            base=row["base"],
            modelfile=row["modelfile"],
            avatar=avatar,
            avatar_type=avatar_type,
            knowledge=knowledge,
        ),
        MAX_BOT_FILE_BYTES + 4 * settings.files_max_bytes,
    )
    if out is None:
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)
        click.echo(f"wrote {name} to {out}", err=True)
