"""The ``{name:id}`` path convertor: a database id, 0 through 2^63 - 1.

Starlette's ``int`` convertor takes any run of digits, so ``/app/rooms/9223372036854775808``
reached the database, where SQLite refused to bind the number (``OverflowError``, a 500). An
id past the 64-bit range cannot exist in either database Kuwa runs on, so routes name their
ids ``{room_id:id}``: the router matches only numbers in range and answers anything else with
the same 404 as any other path that is not there.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

MAX_ID = 2**63 - 1  # SQLite's INTEGER, PostgreSQL's bigint


def at_most(bound: int) -> str:
    """A regular expression for the decimal numbers from 0 through ``bound`` (leading zeros
    allowed, as Starlette's ``int`` allows them)."""
    digits = str(bound)
    n = len(digits)
    shorter = f"[0-9]{{1,{n - 1}}}" if n > 1 else None
    same_length = []
    for i, d in enumerate(digits):  # bound's first i digits, then a smaller digit, then any
        low = 1 if i == 0 and n > 1 else 0
        if int(d) > low:
            same_length.append(f"{digits[:i]}[{low}-{int(d) - 1}][0-9]{{{n - i - 1}}}")
    same_length.append(digits)
    return "0*(?:" + "|".join(filter(None, [shorter, *same_length])) + ")"


class IdConvertor(Convertor[int]):
    regex = at_most(MAX_ID)

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 <= value <= MAX_ID:
            raise ValueError(f"{value} is not a database id")
        return str(value)


register_url_convertor("id", IdConvertor())
