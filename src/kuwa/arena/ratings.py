"""Arena leaderboard maths: Bradley-Terry scores, bootstrap CIs, online Elo, win matrix.

Pure standard library.  Conventions shared by every function here:

* A :class:`Battle` outcome is ``"a"`` (side A better), ``"b"`` (side B better),
  ``"tie"`` or ``"bad"`` (both answers bad).  ``"bad"`` counts exactly like a tie for
  both models: half a win each, in the Bradley-Terry fit, in Elo and in win rates.
* Battles of a model against itself carry no information and are skipped everywhere.
* An unknown outcome raises :class:`ValueError`.
* Scores are on an Elo-like scale: ``400 * log10`` of the Bradley-Terry strength,
  shifted so the mean over the rated models is 1000.  A score gap of 400 means
  10:1 odds of winning.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["OUTCOMES", "Battle", "Rating", "bradley_terry", "elo", "leaderboard", "win_matrix"]

OUTCOMES: frozenset[str] = frozenset({"a", "b", "tie", "bad"})

_SCALE = 400.0
_BASE = 10.0
_MEAN = 1000.0
#: Virtual games each model plays against a fixed opponent of average strength,
#: all of them ties.  Keeps the MLE finite for models that always win (or lose)
#: and pins the otherwise free scale of the strengths.
_PRIOR_GAMES = 1.0


@dataclass(frozen=True, slots=True)
class Battle:
    a: str  # model (access code) on side A
    b: str
    outcome: str  # "a" (A better), "b", "tie", "bad" (both bad)


@dataclass(frozen=True, slots=True)
class Rating:
    model: str
    score: float  # Bradley-Terry score, 400 * log10 odds scale, mean 1000
    low: float  # bootstrap 95 % percentile interval
    high: float
    battles: int
    wins: float  # ties and "bad" count half
    win_rate: float


def _credit(outcome: str) -> float:
    """Side A's share of the win: 1, 0 or ½ (tie and "bad")."""
    if outcome == "a":
        return 1.0
    if outcome == "b":
        return 0.0
    if outcome in ("tie", "bad"):
        return 0.5
    raise ValueError(f"unknown battle outcome {outcome!r}; expected one of {sorted(OUTCOMES)}")


# Aggregated form: {(i, j): [games, wins of i]} with i < j (model names).
_Pairs = dict[tuple[str, str], list[float]]


def _aggregate(items: Iterable[tuple[str, str, float]]) -> _Pairs:
    pairs: _Pairs = {}
    for a, b, credit in items:
        if a == b:
            continue
        if a < b:
            key, w = (a, b), credit
        else:
            key, w = (b, a), 1.0 - credit
        cell = pairs.get(key)
        if cell is None:
            pairs[key] = [1.0, w]
        else:
            cell[0] += 1.0
            cell[1] += w
    return pairs


def _rescale(p: list[float]) -> list[float]:
    """Multiply all strengths by the factor that maximises the prior term.

    The real battles' likelihood is invariant under a common scale, so only the
    prior pins it, and plain MM moves along that direction very slowly (at a rate
    of prior games over real games).  An exact ascent step along it is cheap:
    solve ``sum(tanh((log p_i + t) / 2)) = 0`` for ``t`` (monotone in ``t``) by
    safeguarded Newton.
    """
    logs = [math.log(x) for x in p]
    lo, hi = -max(logs), -min(logs)
    t = -math.fsum(logs) / len(logs)
    for _ in range(60):
        th = [math.tanh((s + t) / 2.0) for s in logs]
        f = math.fsum(th)
        if f > 0.0:
            hi = t
        else:
            lo = t
        slope = math.fsum(0.5 * (1.0 - x * x) for x in th)
        step = t - f / slope if slope > 0.0 else lo - 1.0
        if not lo <= step <= hi:
            step = 0.5 * (lo + hi)
        if abs(step - t) < 1e-13:
            t = step
            break
        t = step
    scale = math.exp(t)
    return [x * scale for x in p]


def _fit(pairs: _Pairs, iterations: int, tol: float) -> dict[str, float]:
    """Bradley-Terry MAP fit by Hunter's (2004) MM algorithm on aggregated pair counts.

    Each model additionally plays ``_PRIOR_GAMES`` virtual tied games against a fixed
    opponent of strength 1, so every iteration is O(pairs) and the fixed point is finite.
    """
    models = sorted({m for key in pairs for m in key})
    if not models:
        return {}
    index = {m: n for n, m in enumerate(models)}
    edges = [(index[i], index[j], g) for (i, j), (g, _) in pairs.items()]
    wins = [0.5 * _PRIOR_GAMES] * len(models)
    for (ma, mb), (g, w) in pairs.items():
        wins[index[ma]] += w
        wins[index[mb]] += g - w
    p = [1.0] * len(models)
    for _ in range(max(1, iterations)):
        denom = [_PRIOR_GAMES / (x + 1.0) for x in p]
        for i, j, g in edges:
            t = g / (p[i] + p[j])
            denom[i] += t
            denom[j] += t
        new = _rescale([w / d for w, d in zip(wins, denom, strict=True)])
        change = max(abs(math.log(n / o)) for n, o in zip(new, p, strict=True))
        p = new
        if change < tol:
            break
    raw = [_SCALE * math.log10(x) for x in p]
    shift = _MEAN - math.fsum(raw) / len(raw)
    return {m: r + shift for m, r in zip(models, raw, strict=True)}


def bradley_terry(
    battles: Sequence[Battle], *, iterations: int = 200, tol: float = 1e-6
) -> dict[str, float]:
    """Bradley-Terry scores (400*log10 scale, mean 1000) by the MM algorithm.

    Ties and "bad" battles count as half a win for each side.  A tiny prior (one
    virtual tie per model against an average opponent) keeps models that always win
    or always lose finite.  ``tol`` bounds the largest change of a log-strength
    between iterations; ``iterations`` caps the number of MM steps.
    """
    pairs = _aggregate((bt.a, bt.b, _credit(bt.outcome)) for bt in battles)
    return _fit(pairs, iterations, tol)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in [0, 1]) of already sorted values."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] * (1.0 - frac) + sorted_values[hi] * frac


def leaderboard(battles: Sequence[Battle], *, rounds: int = 200, seed: int = 0) -> list[Rating]:
    """Bradley-Terry leaderboard with bootstrap 95 % percentile intervals.

    The battles are resampled with replacement ``rounds`` times (``random.Random(seed)``),
    each resample refitted; ``low``/``high`` are the 2.5th and 97.5th percentiles of
    a model's scores over the resamples it appears in.  Sorted by score, best first
    (ties by model name).
    """
    items = [(bt.a, bt.b, _credit(bt.outcome)) for bt in battles if bt.a != bt.b]
    if not items:
        return []
    scores = _fit(_aggregate(items), 200, 1e-6)

    played: dict[str, int] = dict.fromkeys(scores, 0)
    won: dict[str, float] = dict.fromkeys(scores, 0.0)
    for a, b, credit in items:
        played[a] += 1
        played[b] += 1
        won[a] += credit
        won[b] += 1.0 - credit

    # Resampling battles with replacement only changes how often each distinct
    # (a, b, credit) triple occurs, so draw from the distinct triples by weight.
    kinds: dict[tuple[str, str, float], int] = {}
    for item in items:
        kinds[item] = kinds.get(item, 0) + 1
    population = list(kinds)
    cum: list[float] = []
    total = 0.0
    for kind in population:
        total += kinds[kind]
        cum.append(total)

    rng = random.Random(seed)
    samples: dict[str, list[float]] = {m: [] for m in scores}
    n = len(items)
    for _ in range(max(0, rounds)):
        counts: dict[int, int] = {}
        for k in rng.choices(range(len(population)), cum_weights=cum, k=n):
            counts[k] = counts.get(k, 0) + 1
        pairs: _Pairs = {}
        for k, c in counts.items():
            a, b, credit = population[k]
            if a < b:
                key, w = (a, b), credit
            else:
                key, w = (b, a), 1.0 - credit
            cell = pairs.setdefault(key, [0.0, 0.0])
            cell[0] += c
            cell[1] += w * c
        for m, s in _fit(pairs, 200, 1e-6).items():
            samples[m].append(s)

    out: list[Rating] = []
    for m, s in scores.items():
        boot = sorted(samples[m])
        low, high = (_percentile(boot, 0.025), _percentile(boot, 0.975)) if boot else (s, s)
        out.append(
            Rating(
                model=m,
                score=s,
                low=low,
                high=high,
                battles=played[m],
                wins=won[m],
                win_rate=won[m] / played[m],
            )
        )
    out.sort(key=lambda r: (-r.score, r.model))
    return out


def elo(battles: Sequence[Battle], *, k: float = 4.0, initial: float = 1000.0) -> dict[str, float]:
    """Online Elo in battle order (LMSYS style); ties and "bad" score ½ for each side."""
    ratings: dict[str, float] = {}
    for bt in battles:
        credit = _credit(bt.outcome)
        if bt.a == bt.b:
            continue
        ra = ratings.setdefault(bt.a, initial)
        rb = ratings.setdefault(bt.b, initial)
        expected = 1.0 / (1.0 + _BASE ** ((rb - ra) / _SCALE))
        delta = k * (credit - expected)
        ratings[bt.a] = ra + delta
        ratings[bt.b] = rb - delta
    return ratings


def win_matrix(battles: Sequence[Battle]) -> dict[str, dict[str, float | None]]:
    """``m[row][col]``: row model's win rate against col (ties and "bad" half).

    Every model seen in a (non-self) battle is both a row and a column; the value is
    ``None`` where the two never met (including the diagonal).
    """
    pairs = _aggregate((bt.a, bt.b, _credit(bt.outcome)) for bt in battles)
    models = sorted({m for key in pairs for m in key})
    matrix: dict[str, dict[str, float | None]] = {r: dict.fromkeys(models) for r in models}
    for (i, j), (g, w) in pairs.items():
        matrix[i][j] = w / g
        matrix[j][i] = (g - w) / g
    return matrix
