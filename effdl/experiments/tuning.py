"""Lessons 09-11 side by side on a real objective: the mnist1d CNN's learning rate, weight decay
and width (lesson 09's `CNN_SPACE`), with epochs as the resource, tuned at the same budget of
epochs by the kit's random search, BO and Hyperband and by Optuna's TPE with its Hyperband
pruner and its GPSampler. Start with `ResumableCNN` (the objective, which resumes a
configuration from where it stopped), then `side_by_side`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from effdl._checks import check_positive_int
from effdl.data import load_mnist1d
from effdl.experiments.search import CNN_SPACE, build_cnn
from effdl.hpo.bo import BOSampler
from effdl.hpo.hyperband import hyperband, resource_spent
from effdl.hpo.space import check_params
from effdl.hpo.study import minimize
from effdl.measure import torch_threads
from effdl.train import evaluate, fit

#: The methods `side_by_side` runs, each at the same budget of epochs.
METHODS = ("kit-random", "kit-bo", "kit-hyperband", "optuna-tpe-hyperband", "optuna-gp")


class ResumableCNN:
    """The mnist1d CNN as an objective with a resource: `self(params, epochs)` returns the
    validation error (%) after `epochs` epochs of SGD with momentum 0.9 at batch 100 (weights
    and batches of `seed`), continuing a configuration from the epochs it already has, as a
    checkpoint would; `epochs_trained` counts every epoch trained, the budget all methods
    share. Asking for fewer epochs than a configuration has returns the error recorded then.

    Source: Li et al. 2018, "Hyperband", section 4 (iterations as the resource, with resumed
    training); Greydanus 2020 (mnist1d and its CNN).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.epochs_trained = 0
        self._runs: dict[tuple, dict[str, Any]] = {}
        self._splits = load_mnist1d(seed=0)

    def __call__(self, params: Mapping[str, Any], epochs: int) -> float:
        params = check_params(CNN_SPACE, params)
        epochs = check_positive_int("epochs", epochs)
        key = tuple(sorted(params.items()))
        run = self._runs.get(key) or self._start(params)
        self._runs[key] = run
        train, val, _ = run["loaders"]
        with torch_threads(1):
            while len(run["curve"]) < epochs:
                fit(run["model"], train, epochs=1, optimizer=run["optimizer"],
                    seed=self.seed + len(run["curve"]), verbose=False)  # fmt: skip
                error = 100 * (1 - evaluate(run["model"], val)["accuracy"])
                run["curve"].append(error if np.isfinite(error) else 90.0)
                self.epochs_trained += 1
        return run["curve"][epochs - 1]

    def _start(self, params: Mapping[str, Any]) -> dict[str, Any]:
        model, optimizer = build_cnn(params, self.seed)
        loaders = self._splits.loaders(batch_size=100, seed=self.seed)
        return {"model": model, "optimizer": optimizer, "loaders": loaders, "curve": []}


def side_by_side(
    max_epochs: int = 27,
    *,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    verbose: bool = True,
) -> list[dict[str, Any]]:
    """Tune the CNN with every method in `methods` at the budget of one Hyperband run (eta 3,
    R = `max_epochs`), each on its own `ResumableCNN`; return one row per method: "method",
    "best" (the best validation error among configurations trained to `max_epochs`),
    "epochs" (epochs trained), "configs" (configurations tried), "seconds".

    The kit's random search and BO, and Optuna's GPSampler, train each configuration to
    `max_epochs` and get as many as the budget allows; Optuna's TPE with its HyperbandPruner
    reports every epoch and stops when the budget is spent.

    Source: Li et al. 2018, section 4 (Hyperband against random search and Bayesian
    optimisation at equal budget); Akiba et al. 2019, "Optuna" (TPE, GPSampler, pruners).
    """
    max_epochs = check_positive_int("max_epochs", max_epochs)
    rows = []
    budget = None
    for method in tqdm(methods, desc="methods", disable=not verbose, leave=False):
        objective = ResumableCNN(seed=seed)
        start = time.perf_counter()
        if method == "kit-hyperband":
            study = hyperband(
                objective, CNN_SPACE, max_resource=max_epochs, seed=seed, verbose=False
            )
            finals = [t.value for t in study.trials if t.state == "complete"]
            configs = len(study.trials)
        else:
            if budget is None:
                budget = _hyperband_budget(max_epochs, seed)
            n_full = max(1, budget // max_epochs)
            finals, configs = _RUNNERS[method](objective, n_full, budget, max_epochs, seed)
        rows.append(
            {
                "method": method,
                "best": float(min(finals)) if finals else float("nan"),
                "epochs": objective.epochs_trained,
                "configs": configs,
                "seconds": time.perf_counter() - start,
            }
        )
    return rows


def _hyperband_budget(max_epochs: int, seed: int) -> int:
    # The epochs one Hyperband run trains: its brackets fix the rungs, so the budget does not
    # depend on the values, and a run on a constant objective counts it for free.
    study = hyperband(lambda params, epochs: 0.0, CNN_SPACE, max_resource=max_epochs,
                      seed=seed, verbose=False)  # fmt: skip
    return int(resource_spent(study))


def _kit_full(sampler: Any):
    def run(objective, n_full, budget, max_epochs, seed):
        study = minimize(
            lambda p: objective(p, max_epochs), CNN_SPACE, method=sampler, n_trials=n_full,
            seed=seed, verbose=False,
        )  # fmt: skip
        return [t.value for t in study.trials if t.state == "complete"], len(study.trials)

    return run


def _optuna_params(trial) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", CNN_SPACE["lr"].low, CNN_SPACE["lr"].high, log=True),
        "weight_decay": trial.suggest_float(
            "weight_decay", CNN_SPACE["weight_decay"].low, CNN_SPACE["weight_decay"].high, log=True
        ),
        "channels": trial.suggest_int(
            "channels", CNN_SPACE["channels"].low, CNN_SPACE["channels"].high, log=True
        ),
    }


def _optuna_tpe_hyperband(objective, n_full, budget, max_epochs, seed):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=max_epochs, reduction_factor=3
    )
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    finals = []

    def run(trial):
        params = _optuna_params(trial)
        for epoch in range(1, max_epochs + 1):
            value = objective(params, epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        finals.append(value)
        return value

    def stop_at_budget(study_, _trial):
        if objective.epochs_trained >= budget:
            study_.stop()

    study.optimize(run, n_trials=10 * n_full + 100, callbacks=[stop_at_budget])
    return finals, len(study.trials)


def _optuna_gp(objective, n_full, budget, max_epochs, seed):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(5, n_full))
    study = optuna.create_study(sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(lambda t: objective(_optuna_params(t), max_epochs), n_trials=n_full)
    return [t.value for t in study.trials], len(study.trials)


_RUNNERS = {
    "kit-random": _kit_full("random"),
    "kit-bo": _kit_full(BOSampler(n_initial=5)),
    "optuna-tpe-hyperband": _optuna_tpe_hyperband,
    "optuna-gp": _optuna_gp,
}
