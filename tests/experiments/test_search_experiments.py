"""Lesson 09's experiments: grid against random search on functions with one effective
dimension, checked against direct computations."""

import numpy as np
import pytest

from effdl.experiments import search as X


def test_grid_vs_random_rows_follow_the_setting():
    rows = X.grid_vs_random((0, 1, 2), verbose=False)
    assert [r["seed"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["trials"] == 16 and r["grid_distinct"] == 2 and r["random_distinct"] == 16
        # the grid's best is the quadratic at the nearest of the cell centres 0.25 and 0.75,
        # plus the minor dimensions' share at theirs
        c = np.array(r["optimum"])
        nearest = np.where(c < 0.5, 0.25, 0.75)
        want = (nearest[0] - c[0]) ** 2 + X.MINOR_WEIGHT * np.sum((nearest[1:] - c[1:]) ** 2)
        assert r["grid_best"] == pytest.approx(want)
        assert 0 <= r["random_best"] <= 1 + 3 * X.MINOR_WEIGHT
    assert X.grid_vs_random((1,), verbose=False)[0] == rows[1]  # the seed fixes everything


def test_paper_setting_counts_three_against_nine():
    rows = X.grid_vs_random((0, 1), n_axes=2, per_axis=3, verbose=False)
    assert {(r["grid_distinct"], r["random_distinct"], r["trials"]) for r in rows} == {(3, 9, 9)}


def test_summary_takes_medians_and_the_share_of_wins():
    rows = [
        {"grid_best": 0.02, "random_best": 0.01, "grid_distinct": 2, "random_distinct": 16,
         "trials": 16},
        {"grid_best": 0.01, "random_best": 0.03, "grid_distinct": 2, "random_distinct": 16,
         "trials": 16},
        {"grid_best": 0.04, "random_best": 0.04, "grid_distinct": 2, "random_distinct": 15,
         "trials": 16},
    ]  # fmt: skip
    s = X.grid_vs_random_summary(rows)
    assert s["grid_median"] == 0.02 and s["random_median"] == 0.03
    assert s["random_wins_share"] == pytest.approx(2 / 3)  # a tie counts as at least as good
    assert s["random_distinct"] == 16 and s["seeds"] == 3
    with pytest.raises(ValueError, match="grid_vs_random rows"):
        X.grid_vs_random_summary([{"seed": 0}])
    with pytest.raises(ValueError, match="important must be at most n_axes=2"):
        X.grid_vs_random((0,), n_axes=2, important=3)
