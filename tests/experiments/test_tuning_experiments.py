"""The side-by-side tuning of the mnist1d CNN: the resumable objective trains a configuration
exactly as one uninterrupted run would, and every method stays within one Hyperband budget."""

import pytest

from effdl.experiments import tuning as T

PARAMS = {"lr": 0.05, "weight_decay": 1e-4, "channels": 8}


def test_a_resumed_configuration_follows_the_uninterrupted_run():
    resumed, straight = T.ResumableCNN(seed=1), T.ResumableCNN(seed=1)
    first = resumed(PARAMS, 2)
    last = resumed(PARAMS, 4)
    assert straight(PARAMS, 4) == last
    assert straight(PARAMS, 2) == first  # read back, not trained again
    assert resumed.epochs_trained == straight.epochs_trained == 4


def test_every_method_runs_within_one_hyperband_budget():
    rows = T.side_by_side(max_epochs=3, seed=0, verbose=False)
    assert [r["method"] for r in rows] == list(T.METHODS)
    budget = next(r["epochs"] for r in rows if r["method"] == "kit-hyperband")
    assert budget == T._hyperband_budget(3, 0) == 3 * 1 + 1 * (3 - 1) + 2 * 3  # brackets of R=3
    for r in rows:
        assert 0 <= r["best"] <= 100 and r["configs"] >= 1
        if r["method"] in ("kit-random", "kit-bo", "optuna-gp"):
            assert r["epochs"] == 3 * (budget // 3)  # whole runs that fit the budget
        elif r["method"] == "optuna-tpe-hyperband":
            assert budget <= r["epochs"] < budget + 3  # stops once the budget is spent
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        T.ResumableCNN()(PARAMS, 0)
