"""Kuwa's ``.bot`` file: a bot exported to a file and imported back (pure; no database).

The document is MIME, ``multipart/related; type=application/vnd.kuwabot``, built and read with
the stdlib :mod:`email` package. Its first part (``application/vnd.kuwabot``; ``text/plain`` is
accepted on import) holds ``KUWABOT <key> <value>`` lines followed by the bot's Modelfile::

    KUWABOT version 0.3.3
    KUWABOT name "Translator 翻譯"
    KUWABOT description "Translates into English"
    KUWABOT base "gpt-4o"
    SYSTEM You translate.

Values are double-quoted with ``\\"`` and ``\\\\`` escapes (``\\n``/``\\r`` for line breaks too),
or bare (the version). Every line that is not a KUWABOT line is the Modelfile, kept verbatim and in
order; a line inside an open ``\"\"\"`` block is always Modelfile. The optional second part is the
avatar image (base64, ``Content-Location: /bot-avatar``). Older exports were the bare text without
any MIME headers; :func:`load` reads those too. Line ends are normalised to ``\\n``.

A bot's knowledge (documents it answers from) follows as parts of their own
(``Content-Location: /bot-knowledge/N``, base64, the file name in ``Content-Disposition``).
"""

from __future__ import annotations

import binascii
import email.errors
import re
from dataclasses import dataclass, field, replace
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

from kuwa.errors import InvalidRequestError

__all__ = [
    "AVATAR_LOCATION",
    "AVATAR_TYPES",
    "BOT_CONTENT_TYPE",
    "KNOWLEDGE_LOCATION",
    "MAX_AVATAR_BYTES",
    "MAX_BOT_FILE_BYTES",
    "BotFile",
    "BotFileError",
    "Knowledge",
    "dump",
    "load",
]

BOT_CONTENT_TYPE = "application/vnd.kuwabot"
AVATAR_LOCATION = "/bot-avatar"
KNOWLEDGE_LOCATION = "/bot-knowledge/"
AVATAR_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MAX_BOT_FILE_BYTES = 2 * 1024 * 1024
MAX_AVATAR_BYTES = 512 * 1024
DEFAULT_VERSION = "0.3.3"

_TEXT_TYPES = (BOT_CONTENT_TYPE, "text/plain")
_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
_MAX_8BIT_LINE = 990  # RFC 5322 allows 998 octets a line; longer text goes quoted-printable
_KUWABOT_LINE = re.compile(r"KUWABOT(?:[ \t]+(.*))?\Z", re.IGNORECASE)
_KEY_VALUE = re.compile(r"(\S+)(?:[ \t]+(.*))?\Z")
_BARE_VALUE = re.compile(r"[^\s\"\\]+\Z")
_UNESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_WRITE_POLICY = policy.default.clone(linesep="\r\n")


class BotFileError(InvalidRequestError):
    """A ``.bot`` file that cannot be read (or a bot that cannot be written as one)."""

    code = "bot_file"


@dataclass(frozen=True, slots=True)
class Knowledge:
    """A document of the bot's knowledge: its file name and bytes."""

    name: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class BotFile:
    name: str
    description: str
    base: str  # the base model's access code
    modelfile: str  # the Modelfile text (may be empty)
    avatar: bytes | None = field(default=None, repr=False)
    avatar_type: str | None = None  # e.g. "image/png"
    version: str = DEFAULT_VERSION
    knowledge: tuple[Knowledge, ...] = ()


# -- writing -------------------------------------------------------------------------------------


def dump(bot: BotFile, max_bytes: int = MAX_BOT_FILE_BYTES) -> bytes:
    """The ``.bot`` document for ``bot`` (CRLF line ends; the text part in UTF-8)."""
    if not bot.name.strip():
        raise BotFileError("A bot file needs a name.", param="name")
    if not bot.base.strip():
        raise BotFileError("A bot file needs a base model.", param="base")
    version = bot.version.strip() or DEFAULT_VERSION
    modelfile = _normalise_newlines(bot.modelfile)
    _check_modelfile_lines(modelfile)

    head = [
        f"KUWABOT version {version if _BARE_VALUE.match(version) else _quote(version)}",
        f"KUWABOT name {_quote(bot.name)}",
        f"KUWABOT description {_quote(bot.description)}",
        f"KUWABOT base {_quote(bot.base)}",
    ]
    text = "".join(line + "\n" for line in head) + modelfile
    raw = text.encode("utf-8")
    long_line = any(len(line) > _MAX_8BIT_LINE for line in raw.split(b"\n"))

    root = EmailMessage(policy=_WRITE_POLICY)
    root["MIME-Version"] = "1.0"
    root.make_related()
    root.set_param("type", BOT_CONTENT_TYPE)

    text_part = _part()
    maintype, subtype = BOT_CONTENT_TYPE.split("/")
    text_part.set_content(
        raw,
        maintype=maintype,
        subtype=subtype,
        cte="quoted-printable" if long_line else "8bit",
        params={"charset": "utf-8"},
    )
    del text_part["MIME-Version"]
    root.attach(text_part)

    if bot.avatar is not None:
        avatar_type = _avatar_type_for_dump(bot.avatar, bot.avatar_type)
        image = _part()
        image.set_content(
            bot.avatar, maintype="image", subtype=avatar_type.split("/")[1], cte="base64"
        )
        image["Content-Location"] = AVATAR_LOCATION
        del image["MIME-Version"]
        root.attach(image)

    for n, item in enumerate(bot.knowledge, 1):
        part = _part()
        part.set_content(
            item.data,
            maintype="application",
            subtype="octet-stream",
            cte="base64",
            disposition="attachment",
            filename=item.name,
        )
        part["Content-Location"] = f"{KNOWLEDGE_LOCATION}{n}"
        del part["MIME-Version"]
        root.attach(part)

    data = root.as_bytes()
    if len(data) > max_bytes:
        raise BotFileError(f"The bot file would exceed {max_bytes} bytes.")
    return data


def _part() -> EmailMessage:
    return EmailMessage(policy=_WRITE_POLICY)


def _quote(value: str) -> str:
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def _check_modelfile_lines(modelfile: str) -> None:
    """Refuse a Modelfile that would read back differently (a line taken as a KUWABOT line)."""
    for number, line, is_kuwabot in _classify(modelfile.split("\n")):
        if is_kuwabot:
            raise BotFileError(
                f"Modelfile line {number} would be read as a KUWABOT line: {line[:80]!r}",
                param="modelfile",
            )


def _avatar_type_for_dump(avatar: bytes, given: str | None) -> str:
    if not avatar:
        raise BotFileError("The avatar is empty.", param="avatar")
    if len(avatar) > MAX_AVATAR_BYTES:
        raise BotFileError(
            f"The avatar is {len(avatar)} bytes; at most {MAX_AVATAR_BYTES} are allowed.",
            param="avatar",
        )
    kind = _normalise_type(given) if given else _sniff(avatar)
    if kind not in AVATAR_TYPES:
        raise BotFileError(
            f"Unsupported avatar type {given or 'unknown'!s}; "
            f"use one of {', '.join(AVATAR_TYPES)}.",
            param="avatar_type",
        )
    return kind


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# -- reading -------------------------------------------------------------------------------------


def load(data: bytes, max_bytes: int = MAX_BOT_FILE_BYTES) -> BotFile:
    """Read a ``.bot`` file: the MIME document :func:`dump` writes, or an older bare text."""
    if len(data) > max_bytes:
        raise BotFileError(f"The bot file is {len(data)} bytes; at most {max_bytes} are allowed.")
    if not data.strip():
        raise BotFileError("The bot file is empty.")
    body = data.removeprefix(b"\xef\xbb\xbf")
    if _KUWABOT_LINE.match(body.lstrip().split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")):
        return _from_text(_decode(body, "utf-8"))

    try:
        message = BytesParser(policy=policy.default).parsebytes(body)
    except (email.errors.MessageError, ValueError, LookupError) as exc:
        raise BotFileError(f"The bot file is not a readable MIME document: {exc}") from exc
    if message.get("Content-Type") is None:
        # No MIME headers: an older export that starts with something other than KUWABOT.
        return _from_text(_decode(body, "utf-8"))

    if not message.is_multipart():
        return _from_text(_text_of(message))
    payload = message.get_payload()
    parts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    if not parts:
        raise BotFileError("The bot file has no parts.")
    text = _text_of(parts[0])
    knowledge = [p for p in parts[1:] if _location(p).startswith(KNOWLEDGE_LOCATION)]
    others = [p for p in parts[1:] if not _location(p).startswith(KNOWLEDGE_LOCATION)]
    avatar, avatar_type = _avatar_of(others)
    bot = _from_text(text, avatar, avatar_type)
    files = tuple(Knowledge(p.get_filename() or "document", _payload(p)) for p in knowledge)
    return replace(bot, knowledge=files) if files else bot


def _location(part: Message) -> str:
    return str(part.get("Content-Location") or "").strip()


def _text_of(part: Message) -> str:
    kind = part.get_content_type()
    if kind not in _TEXT_TYPES:
        raise BotFileError(
            f"The bot file's first part is {kind}; expected {' or '.join(_TEXT_TYPES)}."
        )
    payload = _payload(part)
    return _decode(payload, part.get_content_charset() or "utf-8")


def _avatar_of(parts: list[Message]) -> tuple[bytes | None, str | None]:
    located = [p for p in parts if (p.get("Content-Location") or "").strip() == AVATAR_LOCATION]
    images = located or [p for p in parts if p.get_content_maintype() == "image"]
    if not images:
        return None, None
    part = images[0]
    kind = _normalise_type(part.get_content_type())
    if kind not in AVATAR_TYPES:
        raise BotFileError(
            f"Unsupported avatar type {kind}; use one of {', '.join(AVATAR_TYPES)}.",
            param="avatar",
        )
    payload = _payload(part)
    if len(payload) > MAX_AVATAR_BYTES:
        raise BotFileError(
            f"The avatar is {len(payload)} bytes; at most {MAX_AVATAR_BYTES} are allowed.",
            param="avatar",
        )
    if not payload:
        return None, None
    return payload, kind


def _payload(part: Message) -> bytes:
    if part.is_multipart():
        raise BotFileError(f"Unexpected nested {part.get_content_type()} part in the bot file.")
    try:
        payload = part.get_payload(decode=True)
    except (binascii.Error, ValueError) as exc:
        raise BotFileError(f"A part of the bot file cannot be decoded: {exc}") from exc
    if not isinstance(payload, bytes):
        raise BotFileError("A part of the bot file cannot be decoded.")
    return payload


def _decode(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset).removeprefix("\ufeff")
    except LookupError as exc:
        raise BotFileError(f"Unknown charset {charset!r} in the bot file.") from exc
    except UnicodeDecodeError as exc:
        raise BotFileError(f"The bot file is not valid {charset} text.") from exc


def _from_text(text: str, avatar: bytes | None = None, avatar_type: str | None = None) -> BotFile:
    if "\x00" in text:
        raise BotFileError("The bot file is binary, not text.")
    fields: dict[str, str] = {}
    modelfile: list[str] = []
    lines = _normalise_newlines(text).split("\n")
    for number, line, is_kuwabot in _classify(lines):
        if not is_kuwabot:
            modelfile.append(line)
            continue
        key, value = _parse_kuwabot(line, number)
        fields[key] = value  # the last one wins; unknown keys are kept here and ignored
    name = fields.get("name", "")
    base = fields.get("base", "")
    if not name.strip():
        raise BotFileError("The bot file has no KUWABOT name line.", param="name")
    if not base.strip():
        raise BotFileError("The bot file has no KUWABOT base line.", param="base")
    return BotFile(
        name=name,
        description=fields.get("description", ""),
        base=base,
        modelfile="\n".join(modelfile),
        avatar=avatar,
        avatar_type=avatar_type if avatar is not None else None,
        version=fields.get("version") or DEFAULT_VERSION,
    )


def _classify(lines: list[str]) -> list[tuple[int, str, bool]]:
    """Each line with its 1-based number and whether it is a KUWABOT line.

    A line inside an open triple-quoted block belongs to the Modelfile whatever it says.
    """
    out: list[tuple[int, str, bool]] = []
    in_block = False
    for number, line in enumerate(lines, start=1):
        if not in_block and _KUWABOT_LINE.match(line.strip()):
            out.append((number, line, True))
            continue
        if line.count('"""') % 2:
            in_block = not in_block
        out.append((number, line, False))
    return out


def _parse_kuwabot(line: str, number: int) -> tuple[str, str]:
    match = _KUWABOT_LINE.match(line.strip())
    rest = (match.group(1) or "").strip() if match else ""
    key_value = _KEY_VALUE.match(rest)
    if not key_value:
        raise BotFileError(f"Line {number}: KUWABOT without a key: {line[:80]!r}")
    key, value = key_value.group(1).lower(), (key_value.group(2) or "").strip()
    if not value.startswith('"'):
        return key, value
    out: list[str] = []
    i = 1
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append(_UNESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        if char == '"':
            if value[i + 1 :].strip():
                raise BotFileError(
                    f"Line {number}: unexpected text after the quoted KUWABOT {key} value: "
                    f"{line[:80]!r}"
                )
            return key, "".join(out)
        out.append(char)
        i += 1
    raise BotFileError(f"Line {number}: unterminated quoted KUWABOT {key} value: {line[:80]!r}")


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _normalise_type(kind: str) -> str:
    kind = kind.strip().lower()
    return _TYPE_ALIASES.get(kind, kind)
