"""Arena leaderboard maths (kuwa.arena.ratings): pure, no services needed."""

from __future__ import annotations

import math
import random
import time

import pytest

from kuwa.arena import Battle, Rating, bradley_terry, elo, leaderboard, win_matrix

TRUE = {"m800": 800.0, "m900": 900.0, "m1000": 1000.0, "m1100": 1100.0, "m1200": 1200.0}
ORDER = ["m1200", "m1100", "m1000", "m900", "m800"]
SWAP = {"a": "b", "b": "a", "tie": "tie", "bad": "bad"}


def synth(n: int = 3000, seed: int = 0, ties: float = 0.1) -> list[Battle]:
    """Battles between random pairs drawn from the Bradley-Terry probabilities of TRUE.

    A fraction ``ties`` of the probability mass (half "tie", half "bad") is taken
    equally from both sides' wins, so the expected half-win credit of A stays the
    BT probability and the half-win fit is unbiased.
    """
    rng = random.Random(seed)
    names = sorted(TRUE)
    out = []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        p = 1.0 / (1.0 + 10 ** ((TRUE[b] - TRUE[a]) / 400))
        u = rng.random()
        if u < p - ties / 2:
            outcome = "a"
        elif u < p:
            outcome = "tie"
        elif u < p + ties / 2:
            outcome = "bad"
        else:
            outcome = "b"
        out.append(Battle(a, b, outcome))
    return out


@pytest.fixture(scope="module")
def battles() -> list[Battle]:
    return synth()


@pytest.fixture(scope="module")
def board(battles: list[Battle]) -> list[Rating]:
    return leaderboard(battles, rounds=200, seed=0)


def test_recovers_true_order_and_scores(battles: list[Battle]) -> None:
    scores = bradley_terry(battles)
    assert sorted(scores, key=scores.__getitem__, reverse=True) == ORDER
    assert math.fsum(scores.values()) / len(scores) == pytest.approx(1000.0)
    for m, true in TRUE.items():  # TRUE already has mean 1000
        assert abs(scores[m] - true) < 30, (m, scores[m])


def test_leaderboard_cis_cover_truth(battles: list[Battle], board: list[Rating]) -> None:
    assert [r.model for r in board] == ORDER
    scores = bradley_terry(battles)
    for r in board:
        assert r.score == pytest.approx(scores[r.model])
        assert r.low < r.score < r.high
        assert r.low <= TRUE[r.model] <= r.high, r
        # ~1200 battles per model here: a few tens of points, not 0 and not hundreds
        assert 10 < r.high - r.low < 80, r


def test_ci_coverage_over_several_data_sets() -> None:
    """95 % intervals: nearly every true score is covered (25/25 when verified)."""
    covered = 0
    for seed in range(1, 6):
        board = leaderboard(synth(seed=seed))
        assert [r.model for r in board] == ORDER
        covered += sum(r.low <= TRUE[r.model] <= r.high for r in board)
    assert covered >= 23


def test_leaderboard_counts(battles: list[Battle], board: list[Rating]) -> None:
    assert sum(r.battles for r in board) == 2 * len(battles)
    assert math.fsum(r.wins for r in board) == pytest.approx(len(battles))
    for r in board:
        mine = [bt for bt in battles if r.model in (bt.a, bt.b)]
        assert r.battles == len(mine)
        wins = sum(
            1.0
            if (bt.outcome == "a") == (bt.a == r.model) and bt.outcome in ("a", "b")
            else 0.5
            if bt.outcome in ("tie", "bad")
            else 0.0
            for bt in mine
        )
        assert r.wins == pytest.approx(wins)
        assert r.win_rate == pytest.approx(wins / len(mine))
    assert board[0].win_rate > board[-1].win_rate


def test_leaderboard_is_deterministic_per_seed(battles: list[Battle], board: list[Rating]) -> None:
    small = battles[:500]
    assert leaderboard(small, rounds=30, seed=3) == leaderboard(small, rounds=30, seed=3)
    other = leaderboard(small, rounds=30, seed=4)
    assert [r.score for r in other] == [r.score for r in leaderboard(small, rounds=30, seed=3)]
    assert [(r.low, r.high) for r in other] != [
        (r.low, r.high) for r in leaderboard(small, rounds=30, seed=3)
    ]
    assert board == leaderboard(battles, rounds=200, seed=0)


def test_symmetry_swapping_sides(battles: list[Battle]) -> None:
    swapped = [Battle(bt.b, bt.a, SWAP[bt.outcome]) for bt in battles]
    s1, s2 = bradley_terry(battles), bradley_terry(swapped)
    assert s1.keys() == s2.keys()
    for m in s1:
        assert s2[m] == pytest.approx(s1[m], abs=1e-9)
    w1, w2 = win_matrix(battles), win_matrix(swapped)
    assert w1.keys() == w2.keys()
    for row in w1:
        assert w1[row].keys() == w2[row].keys()
        for col, v in w1[row].items():
            assert v == (None if row == col else pytest.approx(w2[row][col]))


def test_always_winner_is_finite_and_top() -> None:
    battles = [Battle("champ", "x", "a"), Battle("y", "champ", "b")] * 20
    battles += [Battle("x", "y", o) for o in ("a", "b", "tie", "a")] * 5
    scores = bradley_terry(battles)
    assert all(math.isfinite(s) for s in scores.values())
    assert max(scores, key=scores.__getitem__) == "champ"
    assert scores["champ"] - max(scores["x"], scores["y"]) > 200
    board = leaderboard(battles, rounds=50)
    assert board[0].model == "champ"
    assert board[0].win_rate == 1.0
    assert all(math.isfinite(v) for r in board for v in (r.score, r.low, r.high))
    # a single one-sided battle stays finite too
    lone = bradley_terry([Battle("p", "q", "a")])
    assert lone["p"] > lone["q"]
    assert all(math.isfinite(s) for s in lone.values())


def test_ties_and_bad_are_equal() -> None:
    tie = [Battle("p", "q", "a"), Battle("p", "q", "tie"), Battle("q", "p", "tie")]
    bad = [Battle("p", "q", "a"), Battle("p", "q", "bad"), Battle("q", "p", "bad")]
    assert bradley_terry(tie) == pytest.approx(bradley_terry(bad))
    assert elo(tie) == pytest.approx(elo(bad))
    assert win_matrix(tie) == win_matrix(bad)
    even = bradley_terry([Battle("p", "q", "tie"), Battle("q", "p", "bad")])
    assert even == pytest.approx({"p": 1000.0, "q": 1000.0})


def test_elo_agrees_on_top_model(battles: list[Battle]) -> None:
    ratings = elo(battles)
    assert set(ratings) == set(TRUE)
    assert max(ratings, key=ratings.__getitem__) == "m1200"
    assert min(ratings, key=ratings.__getitem__) == "m800"
    # zero-sum updates: the mean stays at the initial rating
    assert math.fsum(ratings.values()) / len(ratings) == pytest.approx(1000.0)


def test_elo_by_hand() -> None:
    r = elo([Battle("p", "q", "a")], k=32)
    assert r == pytest.approx({"p": 1016.0, "q": 984.0})
    r = elo([Battle("p", "q", "a"), Battle("p", "q", "tie")], k=32, initial=1500)
    expected = 1 / (1 + 10 ** ((1484 - 1516) / 400))
    assert r["p"] == pytest.approx(1516 + 32 * (0.5 - expected))
    assert r["p"] + r["q"] == pytest.approx(3000)


def test_win_matrix_by_hand() -> None:
    battles = [
        Battle("p", "q", "a"),
        Battle("q", "p", "a"),
        Battle("p", "q", "tie"),
        Battle("q", "p", "b"),
        Battle("r", "p", "bad"),
        Battle("r", "r", "a"),  # self-battle: ignored
    ]
    m = win_matrix(battles)
    assert m == {
        "p": {"p": None, "q": 2.5 / 4, "r": 0.5},
        "q": {"p": 1.5 / 4, "q": None, "r": None},
        "r": {"p": 0.5, "q": None, "r": None},
    }


def test_empty_input() -> None:
    assert bradley_terry([]) == {}
    assert leaderboard([]) == []
    assert elo([]) == {}
    assert win_matrix([]) == {}
    assert leaderboard([Battle("p", "p", "a")]) == []


def test_unknown_outcome_rejected() -> None:
    for fn in (bradley_terry, leaderboard, elo, win_matrix):
        with pytest.raises(ValueError, match="outcome"):
            fn([Battle("p", "q", "draw")])


def test_runtime_3000_battles_200_rounds(battles: list[Battle]) -> None:
    start = time.perf_counter()
    leaderboard(battles, rounds=200, seed=1)
    assert time.perf_counter() - start < 5.0
