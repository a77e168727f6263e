"""Bots: the ``.bot`` file format (:mod:`kuwa.bots.botfile`) and the bot store."""

from kuwa.bots.botfile import (
    AVATAR_LOCATION,
    AVATAR_TYPES,
    BOT_CONTENT_TYPE,
    MAX_AVATAR_BYTES,
    MAX_BOT_FILE_BYTES,
    BotFile,
    BotFileError,
    Knowledge,
    dump,
    load,
)

__all__ = [
    "AVATAR_LOCATION",
    "AVATAR_TYPES",
    "BOT_CONTENT_TYPE",
    "MAX_AVATAR_BYTES",
    "MAX_BOT_FILE_BYTES",
    "BotFile",
    "BotFileError",
    "Knowledge",
    "dump",
    "load",
]
