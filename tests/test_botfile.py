"""The ``.bot`` file format: dump → load round trips, hand-written fixtures, and bad files."""

from __future__ import annotations

import base64
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from kuwa.bots import (
    AVATAR_LOCATION,
    MAX_AVATAR_BYTES,
    MAX_BOT_FILE_BYTES,
    BotFile,
    BotFileError,
    dump,
    load,
)
from kuwa.errors import InvalidRequestError

# A 1x1 transparent PNG.
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)

MODELFILE = '''SYSTEM """You translate.
Keep "quotes" and back\\slashes.
KUWABOT name "not a header, inside a block"
"""
PARAMETER temperature 0.2
BEFORE-PROMPT """Translate:
"""
MESSAGE user 你好
'''

FIXTURE_TEXT = '''KUWABOT version 0.3.3
KUWABOT name "Translator 翻譯"
KUWABOT description "Translates into English"
KUWABOT base "gpt-4o"
SYSTEM You translate.
PARAMETER temperature 0.2
BEFORE-PROMPT """Translate:
"""
'''

FIXTURE_MODELFILE = '''SYSTEM You translate.
PARAMETER temperature 0.2
BEFORE-PROMPT """Translate:
"""
'''


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


@pytest.mark.parametrize(
    "bot",
    [
        BotFile("Translator 翻譯", "Translates into English", "gpt-4o", MODELFILE),
        BotFile(
            'Quote " and back\\slash \\" 🤖🦊',
            '描述 with emoji 🎉 and "quotes" and a\nsecond line and a trailing \\',
            'base-with-"odd"-chars\\',
            MODELFILE,
            avatar=PNG,
            avatar_type="image/png",
        ),
        BotFile("Empty modelfile", "", "llama3", ""),
        BotFile("No trailing newline", "d", "llama3", "SYSTEM hi\nPARAMETER top_p 0.9"),
        BotFile("Leading blank lines", "d", "llama3", "\n\nSYSTEM hi\n\n"),
        BotFile("Version", "d", "llama3", "SYSTEM x\n", version="0.4.0"),
        BotFile("Odd version", "d", "llama3", "", version='dev "build" 7'),
        BotFile("A very long line", "d", "llama3", "SYSTEM " + "字" * 2000 + "\n"),
        BotFile("Jpeg", "d", "m", "", avatar=b"\xff\xd8\xff\xe0jpeg", avatar_type="image/jpeg"),
    ],
    ids=lambda bot: bot.name,
)
def test_dump_then_load_is_identical(bot: BotFile) -> None:
    assert load(dump(bot)) == bot


def test_dump_writes_the_mime_shape_kuwa_expects() -> None:
    data = dump(BotFile("Translator 翻譯", "Translates", "gpt-4o", "SYSTEM hi\n", PNG, "image/png"))
    assert b"\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    message = parse(data)
    assert message.get_content_type() == "multipart/related"
    assert message.get_param("type") == "application/vnd.kuwabot"
    assert message["MIME-Version"] == "1.0"
    text, image = list(message.iter_parts())

    assert text.get_content_type() == "application/vnd.kuwabot"
    assert text.get_content_charset() == "utf-8"
    body = text.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert body.decode("utf-8").replace("\r\n", "\n") == (
        "KUWABOT version 0.3.3\n"
        'KUWABOT name "Translator 翻譯"\n'
        'KUWABOT description "Translates"\n'
        'KUWABOT base "gpt-4o"\n'
        "SYSTEM hi\n"
    )

    assert image.get_content_type() == "image/png"
    assert image["Content-Location"] == AVATAR_LOCATION
    assert image["Content-Transfer-Encoding"] == "base64"
    assert image.get_payload(decode=True) == PNG
    raw = image.get_payload()
    assert isinstance(raw, str)
    assert base64.b64decode(raw) == PNG


def test_dump_without_avatar_has_one_part() -> None:
    message = parse(dump(BotFile("n", "d", "b", "SYSTEM hi\n")))
    assert message.get_content_type() == "multipart/related"
    assert [p.get_content_type() for p in message.iter_parts()] == ["application/vnd.kuwabot"]


def test_dump_sniffs_a_missing_avatar_type() -> None:
    bot = load(dump(BotFile("n", "d", "b", "", avatar=PNG)))
    assert bot.avatar == PNG
    assert bot.avatar_type == "image/png"


def test_the_bare_text_fixture_loads() -> None:
    bot = load(FIXTURE_TEXT.encode("utf-8"))
    assert bot == BotFile("Translator 翻譯", "Translates into English", "gpt-4o", FIXTURE_MODELFILE)
    assert load(crlf(FIXTURE_TEXT)) == bot
    assert load(b"\xef\xbb\xbf" + FIXTURE_TEXT.encode("utf-8")) == bot


def test_a_hand_written_mime_fixture_with_crlf_loads() -> None:
    avatar = base64.encodebytes(PNG).decode("ascii")
    document = (
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/related; type="application/vnd.kuwabot"; boundary="kuwa-b"\n'
        "\n"
        "--kuwa-b\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        f"{FIXTURE_TEXT}"
        "--kuwa-b\n"
        "Content-Type: image/png\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Location: /bot-avatar\n"
        "\n"
        f"{avatar}"
        "--kuwa-b--\n"
    )
    bot = load(crlf(document))
    assert bot.name == "Translator 翻譯"
    assert bot.description == "Translates into English"
    assert bot.base == "gpt-4o"
    assert bot.version == "0.3.3"
    assert bot.avatar == PNG
    assert bot.avatar_type == "image/png"
    # The CRLF before a boundary belongs to the boundary, so the final newline is dropped.
    assert bot.modelfile == FIXTURE_MODELFILE.removesuffix("\n")


def test_a_single_part_mime_document_loads() -> None:
    document = "Content-Type: application/vnd.kuwabot; charset=utf-8\n\n" + FIXTURE_TEXT
    bot = load(crlf(document))
    assert (bot.name, bot.base, bot.modelfile) == ("Translator 翻譯", "gpt-4o", FIXTURE_MODELFILE)


def test_unknown_keys_are_ignored_and_bare_values_and_escapes_are_read() -> None:
    text = (
        "KUWABOT version 0.3.2\n"
        "KUWABOT name Bare name\n"
        'KUWABOT colour "blue"\n'
        'KUWABOT base "a\\\\b\\"c\\q"\n'
        "SYSTEM hi\n"
    )
    bot = load(text.encode())
    assert bot.version == "0.3.2"
    assert bot.name == "Bare name"
    assert bot.base == 'a\\b"c\\q'
    assert bot.description == ""
    assert bot.modelfile == "SYSTEM hi\n"


def test_bot_file_error_is_an_invalid_request_with_its_code() -> None:
    with pytest.raises(BotFileError) as caught:
        load(b'KUWABOT name "n"\nSYSTEM hi\n')
    assert isinstance(caught.value, InvalidRequestError)
    assert caught.value.code == "bot_file"
    assert caught.value.status == 400
    assert caught.value.body()["error"]["code"] == "bot_file"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('KUWABOT name "n"\nSYSTEM hi\n', "base"),
        ('KUWABOT base "b"\nSYSTEM hi\n', "name"),
        ('KUWABOT name ""\nKUWABOT base "b"\n', "name"),
        ('KUWABOT name "n"\nKUWABOT base "b\n', "Line 2"),
        ('KUWABOT name "n" trailing\nKUWABOT base "b"\n', "Line 1"),
        ('KUWABOT name "n"\nKUWABOT\nKUWABOT base "b"\n', "Line 2"),
    ],
)
def test_bad_kuwabot_lines_are_refused(text: str, words: str) -> None:
    with pytest.raises(BotFileError, match=words):
        load(text.encode())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"\x00\x01\x02\xff\xfe garbage \x89PNG",
        b"just some words\nwith no header at all\n",
        b"Content-Type: text/html\n\n<p>hi</p>\n",
        b"Content-Type: multipart/related; boundary=x\n\n--x--\n",
        b'KUWABOT name "\xff\xfe"\nKUWABOT base "b"\n',
        PNG,
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(BotFileError):
        load(data)


def test_an_oversized_avatar_is_refused_on_load_and_dump() -> None:
    big = PNG + b"\x00" * MAX_AVATAR_BYTES
    with pytest.raises(BotFileError, match="avatar"):
        dump(BotFile("n", "d", "b", "", avatar=big, avatar_type="image/png"))
    ok = dump(BotFile("n", "d", "b", "", avatar=PNG, avatar_type="image/png"))
    encoded = parse(ok).get_payload()[1].get_payload()
    forged = ok.replace(encoded.encode("ascii"), base64.encodebytes(big).replace(b"\n", b"\r\n"))
    assert len(forged) < MAX_BOT_FILE_BYTES
    assert len(forged) > len(ok) + MAX_AVATAR_BYTES
    with pytest.raises(BotFileError, match="avatar"):
        load(forged)


def test_an_oversized_file_is_refused() -> None:
    data = FIXTURE_TEXT.encode() + b"# pad\n" * (MAX_BOT_FILE_BYTES // 6 + 1)
    with pytest.raises(BotFileError, match="at most"):
        load(data)


def test_an_unsupported_avatar_type_is_refused() -> None:
    with pytest.raises(BotFileError, match="avatar"):
        dump(BotFile("n", "d", "b", "", avatar=b"<svg/>", avatar_type="image/svg+xml"))
    with pytest.raises(BotFileError, match="avatar"):
        dump(BotFile("n", "d", "b", "", avatar=b"unknown bytes"))
    ok = dump(BotFile("n", "d", "b", "", avatar=PNG, avatar_type="image/png"))
    with pytest.raises(BotFileError, match="avatar"):
        load(ok.replace(b"Content-Type: image/png", b"Content-Type: image/svg+xml"))


def test_dump_refuses_what_would_not_read_back() -> None:
    with pytest.raises(BotFileError, match="name"):
        dump(BotFile(" ", "d", "b", ""))
    with pytest.raises(BotFileError, match="base"):
        dump(BotFile("n", "d", "", ""))
    with pytest.raises(BotFileError, match="line 2"):
        dump(BotFile("n", "d", "b", 'SYSTEM hi\nKUWABOT name "other"\n'))
