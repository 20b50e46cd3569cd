"""The automation claims: random-vs-grid runs for real (under a second)."""

from effdl.claims import REGISTRY
from effdl.claims.runner import run_claim, select


def test_random_vs_grid_carries_the_figure_and_judges_the_share_of_wins():
    select()
    entry = REGISTRY["random-vs-grid"]
    assert entry.published == {"random_wins_share": 0.5}
    assert "Figure 1" in entry.source and "3 distinct values" in entry.statement
    assert entry.verdict(entry.published, {"random_wins_share": 0.8}).verdict == "reproduced"
    assert entry.verdict(entry.published, {"random_wins_share": 0.45}).verdict == "close"
    assert entry.verdict(entry.published, {"random_wins_share": 0.2}).verdict == "differs"
    result = run_claim(entry)
    assert result.measured["grid_distinct"] == 2 and result.measured["random_distinct"] == 16
    assert result.measured["random_median_regret"] < result.measured["grid_median_regret"]
    assert result.verdict == "reproduced"
    assert "3x3 grid against 9 random trials" in result.reason
