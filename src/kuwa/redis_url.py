"""``KUWA_REDIS_URL``'s Sentinel form, read without touching the network.

``redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/SERVICE[/DB]`` names the
Sentinels (port 26379 unless given) that watch the primary called SERVICE; the password, if
any, is the Redis servers' (the primary's and its replicas'). ``?sentinel_password=…`` gives
the Sentinels' own, for Sentinels that require one. ``rediss+sentinel://`` speaks TLS to the
Redis servers. Every other URL (``redis://``, ``rediss://``, ``unix://``) is redis-py's own.

Settings validate the URL with :func:`parse` at start-up; :mod:`kuwa.broker.connection`
builds the clients from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
DEFAULT_SENTINEL_PORT = 26379
PLAIN_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False


def is_sentinel(url: str) -> bool:
    return url.partition("://")[0].lower() in SCHEMES


def parse(url: str) -> SentinelUrl | None:
    """The Sentinel URL's parts, or None for a plain Redis URL; ValueError says what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in (*SCHEMES, *PLAIN_SCHEMES):
        raise ValueError(
            f"{redact(url)!r} is not a Redis URL: use redis://host:6379/0, rediss://…, "
            "unix:///path/redis.sock or redis+sentinel://host:26379,host:26379/SERVICE"
        )
    if scheme.lower() not in SCHEMES:
        return None
    parts = urlsplit("x://" + rest)
    login, _, hosts = parts.netloc.rpartition("@")
    username, _, password = login.partition(":") if login else ("", "", "")
    sentinels = tuple(_address(h) for h in hosts.split(","))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(
            f"{redact(url)!r} names no service: use redis+sentinel://HOST:PORT,…/SERVICE[/DB]"
        )
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ValueError(f"{redact(url)!r}: the database {path[1]!r} is not a number") from None
    query = parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"{redact(url)!r}: unknown option {sorted(unknown)[0]!r}")
    return SentinelUrl(
        sentinels=sentinels,
        service=unquote(path[0]),
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=query["sentinel_password"][0] if "sentinel_password" in query else None,
        ssl=SCHEMES[scheme.lower()],
    )


def _address(text: str) -> tuple[str, int]:
    host, port = text.strip(), str(DEFAULT_SENTINEL_PORT)
    if host.startswith("["):  # [IPv6]:port
        host, _, tail = host[1:].partition("]")
        if tail:
            port = tail.removeprefix(":")
    elif ":" in host:
        host, _, port = host.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not a Sentinel address (host:port)")
    return host, int(port)


def redact(url: str) -> str:
    """``url`` without its passwords, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    tail = tail.split("?", 1)[0] + ("?…" if "?" in tail else "")
    return f"{scheme}{sep}{netloc}{slash}{tail}"
