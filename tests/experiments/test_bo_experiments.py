"""Lesson 10's experiments: the test functions at their known minima, the runners' rows, and
the summaries against hand-made rows."""

import math

import numpy as np
import pytest

from effdl.experiments import bo as X


def test_branin_and_hartmann6_reach_their_published_minima():
    for x1, x2 in ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)):
        assert X.branin({"x1": x1, "x2": x2}) == pytest.approx(0.397887, abs=1e-6)
    argmin = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
    point = {f"x{i}": v for i, v in enumerate(argmin, start=1)}
    assert X.hartmann6(point) == pytest.approx(-3.32237, abs=1e-5)
    # and nothing on a fine random sample of either domain goes below them
    rng = np.random.default_rng(0)
    for bench in X.BENCHMARKS.values():
        names = list(bench.space)
        lows = np.array([d.low for d in bench.space.values()])
        highs = np.array([d.high for d in bench.space.values()])
        values = [
            bench.objective(dict(zip(names, lows + (highs - lows) * u, strict=True)))
            for u in rng.random((3000, len(names)))
        ]
        assert min(values) > bench.minimum


def test_run_method_rows_hold_the_curves():
    row = X.run_method("random", "branin", n_calls=12, seed=3)
    assert len(row["values"]) == len(row["best"]) == len(row["regret"]) == 12
    assert row["best"] == list(np.minimum.accumulate(row["values"]))
    assert row["regret"][-1] == pytest.approx(row["best"][-1] - 0.397887)
    assert row["seconds_per_suggestion"] == pytest.approx(row["seconds"] / 12)
    assert X.run_method("random", "branin", n_calls=12, seed=3)["values"] == row["values"]
    with pytest.raises(ValueError, match="method must be one of"):
        X.run_method("tpe", "branin")


def test_evaluations_to_reach_and_the_summary():
    assert X.evaluations_to_reach([5.0, 3.0, 1.0, 1.0], 1.0) == 3
    assert X.evaluations_to_reach([5.0, 3.0], 1.0) is None
    rows = [
        {"benchmark": "b", "method": m, "seed": s, "regret": [9.0] * 29 + [r30] + [0.0] * 20,
         "seconds_per_suggestion": t}
        for m, s, r30, t in (("a", 0, 1.0, 0.1), ("a", 1, 3.0, 0.3), ("a", 2, 2.0, 0.2),
                             ("z", 0, 5.0, 1.0))
    ]  # fmt: skip
    table = X.compare_summary(rows)
    assert table["b"]["a"] == {
        "seeds": 3, "regret@30": 2.0, "regret@50": 0.0, "seconds_per_suggestion": 0.2,
    }  # fmt: skip
    assert table["b"]["z"]["regret@30"] == 5.0


def test_evaluations_needed_takes_the_median_and_counts_misses_as_one_past_the_end():
    rows = [
        {"method": "a", "regret": [3.0, 1.0, 0.05, 0.01]},  # 3
        {"method": "a", "regret": [3.0, 0.09, 0.05, 0.01]},  # 2
        {"method": "a", "regret": [3.0, 2.0, 2.0, 2.0]},  # never: 5
        {"method": "b", "regret": [0.01, 0.01]},  # 1
    ]
    assert X.evaluations_needed(rows, 0.1) == {"a": 3, "b": 1}
    assert X.evaluations_needed(rows, 0.0) == {"a": 5, "b": 3}
    with pytest.raises(ValueError, match="target_regret"):
        X.evaluations_needed(rows, -1.0)
