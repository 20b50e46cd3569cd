"""Lesson 07's experiments on small settings: paired rows and the summary against direct
computations."""

import statistics

import pytest

from effdl.experiments import dsd as X


def test_dsd_vs_dense_pairs_each_seed(monkeypatch):
    monkeypatch.setitem(X.SETTINGS, "digits", {"epochs": (1, 1, 1), "lr": 0.05, "batch_size": 64})
    rows = X.dsd_vs_dense("digits", (0, 1), verbose=False)
    assert [(r["seed"], r["arm"]) for r in rows] == [
        (0, "dense"),
        (0, "dsd"),
        (1, "dense"),
        (1, "dsd"),
    ]
    for r in rows:
        assert r["phases"] == ["dense", "sparse", "re-dense"] and len(r["val_curve"]) == 3
    dsd = rows[1]
    assert dsd["sparsity_curve"][0] == 0.0 and abs(dsd["sparsity_curve"][1] - 0.3) < 0.01
    assert rows[0]["sparsity_curve"] == [0.0, 0.0, 0.0]
    again = X.dsd_vs_dense("digits", (1,), verbose=False)
    assert again[1]["accuracy"] == rows[3]["accuracy"]


def test_dsd_summary_is_paired():
    rows = [
        {"seed": 0, "arm": "dense", "accuracy": 90.0},
        {"seed": 0, "arm": "dsd", "accuracy": 91.0},
        {"seed": 1, "arm": "dense", "accuracy": 80.0},
        {"seed": 1, "arm": "dsd", "accuracy": 83.0},
        {"seed": 2, "arm": "dense", "accuracy": 85.0},  # unpaired: left out
    ]
    s = X.dsd_summary(rows)
    assert s["gains"] == [1.0, 3.0] and s["gain"] == 2.0 and s["seeds"] == 2
    assert s["gain_std"] == pytest.approx(statistics.stdev([1.0, 3.0]))
    assert s["significant"] is False  # 2 < 2 * 1.41
    assert s["dense"] == 85.0 and s["dsd"] == 87.0
    with pytest.raises(ValueError, match="rows"):
        X.dsd_summary([{"seed": 0, "arm": "dense", "accuracy": 1.0}])
    with pytest.raises(ValueError, match="rows"):
        X.dsd_summary([{"seed": 0, "arm": "other", "accuracy": 1.0}])


def test_sparsity_runs_reach_each_sparsity(monkeypatch):
    monkeypatch.setitem(X.SETTINGS, "digits", {"epochs": (1, 1, 1), "lr": 0.05, "batch_size": 64})
    rows = X.sparsity_runs("digits", (0.0, 0.5), verbose=False)
    assert [r["sparsity"] for r in rows] == [0.0, 0.5]
    assert abs(rows[1]["sparsity_curve"][1] - 0.5) < 0.01 and rows[0]["sparsity_curve"][1] == 0.0


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: X.dsd_vs_dense("cifar"), "dataset"),
        (lambda: X.dsd_vs_dense("digits", ()), "seeds"),
        (lambda: X.dsd_vs_dense("digits", (0,), sparsity=1.0), "sparsity"),
        (lambda: X.sparsity_runs("digits", (1.5,), verbose=False), "sparsities"),
        (lambda: X.build_model("mnist"), "dataset"),
    ],
)
def test_bad_settings_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
