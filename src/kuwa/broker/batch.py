"""Write commands gathered into one script call (``batch.lua``).

A finished job's bookkeeping is a dozen small writes (acknowledge, delete, status, counters,
latency samples, the job log, the day's usage). Sent as separate commands in a pipeline, each
costs the executor a command to pack and a reply to parse (~25 µs of Python each); gathered
into one ``EVALSHA`` they cost one. :class:`CommandBatch` offers the pipeline methods that
the bookkeeping code calls (``hset``, ``hincrby``, ``xadd``, …), so that code writes to either.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any

SCRIPT = resources.files("kuwa.broker").joinpath("batch.lua").read_text()

Word = bytes | str | int | float


class CommandBatch:
    """Commands to send in one :data:`SCRIPT` call; see :meth:`args`."""

    __slots__ = ("_words", "commands")

    def __init__(self) -> None:
        self._words: list[Word] = []
        self.commands = 0

    def call(self, *words: Word) -> None:
        self._words.append(len(words))
        self._words.extend(words)
        self.commands += 1

    def args(self) -> list[Word]:
        """The script's ``ARGV``."""
        return self._words

    # --- the pipeline methods the bookkeeping uses ------------------------------------------
    def hset(
        self,
        name: str,
        key: str | None = None,
        value: Word | None = None,
        mapping: Mapping[str, Word] | None = None,
    ) -> None:
        words: list[Word] = []
        if key is not None and value is not None:
            words += [key, value]
        for k, v in (mapping or {}).items():
            words += [k, v]
        self.call("HSET", name, *words)

    def hincrby(self, name: str, key: str, amount: int = 1) -> None:
        self.call("HINCRBY", name, key, amount)

    def expire(self, name: str, seconds: int) -> None:
        self.call("EXPIRE", name, seconds)

    def lpush(self, name: str, *values: Word) -> None:
        self.call("LPUSH", name, *values)

    def ltrim(self, name: str, start: int, end: int) -> None:
        self.call("LTRIM", name, start, end)

    def zrem(self, name: str, *members: Word) -> None:
        self.call("ZREM", name, *members)

    def xack(self, name: str, group: str, *ids: Word) -> None:
        self.call("XACK", name, group, *ids)

    def xdel(self, name: str, *ids: Word) -> None:
        self.call("XDEL", name, *ids)

    def xadd(
        self,
        name: str,
        fields: Mapping[str, Any],
        *,
        maxlen: int | None = None,
        approximate: bool = True,
    ) -> None:
        words: list[Word] = []
        if maxlen is not None:
            words += ["MAXLEN", "~" if approximate else "=", maxlen]
        words.append("*")
        for k, v in fields.items():
            words += [k, v]
        self.call("XADD", name, *words)
