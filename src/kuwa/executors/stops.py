"""Stop strings for backends that apply them themselves (vLLM does it in the engine).

A backend cuts its answer before the first stop string and holds back text that could still
turn out to be the start of one, so a stop string never reaches the reader even when it
arrives split over several tokens.
"""

from __future__ import annotations


def stop_index(text: str, stops: tuple[str, ...], start: int = 0) -> int | None:
    """Where the first stop string begins in ``text`` (searching from ``start``)."""
    found = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(found) if found else None


def held_back(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that could be the start of a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best
