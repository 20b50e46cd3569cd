"""Lesson 11's experiments on fabricated curve tables (the shipped table is read by the ledger
and the lesson): lookups, Hyperband against random search, the median rule's saving."""

import json

import numpy as np
import pytest

from effdl.experiments import early_stopping as X
from effdl.hpo.hyperband import hyperband, resource_spent


def _table(n=81, epochs=27, seed=0):
    # Decaying curves with random floors and speeds: they cross, as real ones do.
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1)
    configs = []
    for _ in range(n):
        floor, start, speed = rng.uniform(5, 60), rng.uniform(70, 90), rng.uniform(0.05, 0.6)
        curve = floor + (start - floor) * np.exp(-speed * t)
        configs.append({"params": {}, "curve": curve.tolist()})
    return {"format": X.CURVES_FORMAT, "version": X.CURVES_VERSION, "epochs": epochs,
            "seed": seed, "configs": configs}  # fmt: skip


def test_table_objective_looks_the_curves_up():
    table = _table(n=5, epochs=4)
    objective = X.table_objective(table)
    assert objective({"config": 3}, 2) == table["configs"][3]["curve"][1]
    assert X.table_space(table)["config"].choices == (0, 1, 2, 3, 4)


def test_hyperband_against_random_search_rows():
    table = _table()
    rows = X.hyperband_vs_random(table, seeds=(0, 1, 2))
    for r in rows:
        study = hyperband(X.table_objective(table), X.table_space(table), max_resource=27,
                          seed=r["seed"], verbose=False)  # fmt: skip
        assert r["hyperband_epochs"] == resource_spent(study)
        assert r["hyperband_best"] == study.best_value
        assert r["random_configs"] == r["hyperband_epochs"] // 27
        assert r["random_epochs"] == 27 * r["random_configs"]
        if r["epochs_to_match"] is not None:
            assert r["epochs_to_match"] <= r["hyperband_epochs"]
            assert r["speedup"] == pytest.approx(r["random_epochs"] / r["epochs_to_match"])
            assert r["hyperband_best"] <= r["random_best"]
    assert X.hyperband_vs_random(table, seeds=(1,))[0] == rows[1]


def test_median_rule_saves_epochs_and_nothing_when_the_curves_are_alike():
    table = _table()
    rows = X.median_stop_runs(table, seeds=(0, 1), n_trials=20)
    for r in rows:
        assert r["epochs_full"] == 20 * 27 and r["epochs_stopped"] < r["epochs_full"]
        assert r["saving"] == pytest.approx(r["epochs_full"] / r["epochs_stopped"])
        assert r["best_stopped"] >= r["best_full"]
        assert isinstance(r["best_survived"], bool)
        assert r["best_survived"] == (r["best_stopped"] == r["best_full"])
    same = {**table, "configs": [table["configs"][0]] * 81}
    flat = X.median_stop_runs(same, seeds=(0,), n_trials=10)[0]
    assert flat["saving"] == 1.0 and flat["best_survived"]  # never strictly worse than median


def test_load_curves_says_how_to_make_the_table(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m effdl.experiments.early_stopping"):
        X.load_curves(tmp_path / "missing.json")
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": X.CURVES_FORMAT, "version": 0}))
    with pytest.raises(ValueError, match=r"not a version 1 effdl-hpo-curves table .*version 0"):
        X.load_curves(path)


def test_the_shipped_table_loads_and_holds_real_curves():
    table = X.load_curves()
    assert len(table["configs"]) == X.N_CONFIGS and table["epochs"] == X.MAX_EPOCHS
    finals = [c["curve"][-1] for c in table["configs"]]
    assert all(len(c["curve"]) == X.MAX_EPOCHS for c in table["configs"])
    assert all(0 <= e <= 100 for c in table["configs"] for e in c["curve"])
    assert min(finals) < 30 < max(finals)  # good and bad configurations both present


def test_learning_curve_trains_for_the_epochs_asked_and_ends_at_the_objective():
    from effdl.experiments.search import mnist1d_cnn_error

    params = {"lr": 0.05, "weight_decay": 1e-4, "channels": 8}
    curve = X.learning_curve(params, epochs=2)
    assert len(curve) == 2 and all(0 <= e <= 100 for e in curve)
    assert mnist1d_cnn_error(params, epochs=2) == curve[-1]
