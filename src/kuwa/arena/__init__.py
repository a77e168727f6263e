"""Arena: blind side-by-side battles between models and the leaderboard maths."""

from kuwa.arena.ratings import (
    OUTCOMES,
    Battle,
    Rating,
    bradley_terry,
    elo,
    leaderboard,
    win_matrix,
)

__all__ = ["OUTCOMES", "Battle", "Rating", "bradley_terry", "elo", "leaderboard", "win_matrix"]
