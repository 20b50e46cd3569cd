"""Lesson 11's experiments: early stopping, successive halving and Hyperband on a table of real
learning curves. The table holds the validation error of the mnist1d CNN after every epoch, for
81 configurations drawn from lesson 09's `CNN_SPACE` and trained for 27 epochs each; it is made
once (`python -m effdl.experiments.early_stopping`, about ten minutes on one core) and shipped
in data/, so that every search can be repeated over many seeds in seconds by looking the
curves up. Called by the ledger claims `hyperband` and `median-stop`
(effdl/claims/automation.py). Start with `load_curves`, then `table_objective`.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from effdl._checks import check_positive_int, check_seeds
from effdl.experiments.search import CNN_SPACE, learning_curve
from effdl.hpo.early_stopping import median_stopping_rule
from effdl.hpo.grid import GridSampler
from effdl.hpo.hyperband import brackets, hyperband, resource_spent, successive_halving
from effdl.hpo.space import Categorical, sample
from effdl.hpo.study import Study

#: The table: `N_CONFIGS` configurations, `MAX_EPOCHS` epochs each, drawn with `CURVE_SEED`.
N_CONFIGS = 81
MAX_EPOCHS = 27
CURVE_SEED = 0
CURVES_FORMAT = "effdl-hpo-curves"
CURVES_VERSION = 1
CURVES_FILE = Path(__file__).resolve().parents[2] / "data" / "hpo_curves_mnist1d.json"


def make_curves(
    n: int = N_CONFIGS, epochs: int = MAX_EPOCHS, seed: int = CURVE_SEED, *, verbose: bool = True
) -> dict[str, Any]:
    """Return a table of `n` learning curves: configurations drawn from `CNN_SPACE` with
    `np.random.default_rng(seed)`, each trained by lesson 09's `learning_curve` (weights and
    batches of seed 0) for `epochs` epochs:
    {"format", "version", "epochs", "seed", "configs": [{"params", "curve"}, ...]}.

    Source: the kit's own benchmark table, after the tabular benchmarks of NAS-Bench-101 (Ying
    et al. 2019): pay for the training once, then search by lookup.
    """
    n = check_positive_int("n", n)
    rng = np.random.default_rng(seed)
    points = [sample(CNN_SPACE, rng) for _ in range(n)]
    configs = [
        {"params": p, "curve": learning_curve(p, epochs=epochs, seed=0)}
        for p in tqdm(points, desc="learning curves", disable=not verbose)
    ]
    return {
        "format": CURVES_FORMAT,
        "version": CURVES_VERSION,
        "epochs": epochs,
        "seed": seed,
        "configs": configs,
    }


def load_curves(path: str | Path | None = None) -> dict[str, Any]:
    """Return the table of learning curves shipped in data/ (or at `path`).

    Source: the kit's own artefact (see `make_curves`).
    """
    path = Path(path) if path is not None else CURVES_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no learning-curve table at {path}; make it with "
            "`python -m effdl.experiments.early_stopping` (about ten minutes on one core)"
        )
    table = json.loads(path.read_text())
    if table.get("format") != CURVES_FORMAT or table.get("version") != CURVES_VERSION:
        raise ValueError(
            f"{path} is not a version {CURVES_VERSION} {CURVES_FORMAT} table (found format "
            f"{table.get('format')!r}, version {table.get('version')!r}); re-make it with "
            "`python -m effdl.experiments.early_stopping`"
        )
    return table


def table_space(table: Mapping[str, Any]) -> dict[str, Categorical]:
    """Return the search space of a curve table: one categorical dimension, "config", the
    index of a row.

    Source: the kit's own convention for tabular benchmarks.
    """
    return {"config": Categorical(tuple(range(len(table["configs"]))))}


def _lookup(curves: tuple[tuple[float, ...], ...], params: Mapping[str, Any], resource: int):
    return curves[params["config"]][int(resource) - 1]


def table_objective(table: Mapping[str, Any]):
    """Return objective(params, resource) = the validation error of row params["config"]
    after `resource` epochs, looked up in the table (a picklable partial).

    Source: the kit's own convention for tabular benchmarks.
    """
    curves = tuple(tuple(c["curve"]) for c in table["configs"])
    return functools.partial(_lookup, curves)


def hyperband_vs_random(
    table: Mapping[str, Any], seeds: Sequence[int] = tuple(range(20)), *, eta: int = 3
) -> list[dict[str, Any]]:
    """For each seed, run Hyperband on the table (max resource = its epochs) and random search
    that trains configurations drawn with the same seed to the full epochs, as many as
    Hyperband's budget allows; return one row per seed: "hyperband_best", "hyperband_epochs"
    (resource spent), "random_best", "random_configs", "epochs_to_match" (the epochs
    Hyperband had spent by the end of the bracket in which its best first matched random
    search's best; None if it never did), "random_epochs" (random search's epochs),
    "speedup" (random_epochs / epochs_to_match).

    Source: Li et al. 2018, "Hyperband", JMLR 18, sections 3-4 (Hyperband against random
    search at equal budget).
    """
    seeds = check_seeds(seeds)
    space, objective = table_space(table), table_objective(table)
    epochs = table["epochs"]
    rows = []
    for seed in seeds:
        study = hyperband(objective, space, max_resource=epochs, eta=eta, seed=seed, verbose=False)
        spent = resource_spent(study)
        n_random = max(1, int(spent // epochs))
        rng = np.random.default_rng(seed)
        picks = [int(rng.integers(len(table["configs"]))) for _ in range(n_random)]
        random_best = min(table["configs"][i]["curve"][-1] for i in picks)
        # Hyperband's best so far as its epochs accumulate, bracket by bracket: a bracket asks
        # its n_0 trials at once (consecutive ids) and completes its best at its end.
        running, best, to_match, start = 0, np.inf, None, 0
        for bracket in brackets(epochs, eta):
            chunk = study.trials[start : start + bracket[0][0]]
            start += bracket[0][0]
            running += sum(max(t.intermediate, default=0) for t in chunk)
            done = [t.value for t in chunk if t.state == "complete" and t.value is not None]
            best = min([best, *done])
            if to_match is None and best <= random_best:
                to_match = running
        random_epochs = n_random * epochs
        rows.append(
            {
                "seed": seed,
                "hyperband_best": study.best_value,
                "hyperband_epochs": spent,
                "random_best": random_best,
                "random_configs": n_random,
                "random_epochs": random_epochs,
                "epochs_to_match": to_match,
                "speedup": None if to_match is None else random_epochs / to_match,
            }
        )
    return rows


def median_stop_runs(
    table: Mapping[str, Any], seeds: Sequence[int] = tuple(range(20)), n_trials: int = 27
) -> list[dict[str, Any]]:
    """For each seed, draw `n_trials` rows of the table in order and train them one after
    another, each stopped by the median rule (Vizier's: at each epoch, against the completed
    trials' running averages) or run to the end; return one row per seed: "epochs_full" (every
    trial to the end), "epochs_stopped" (with the rule), "saving" (their ratio), "best_full",
    "best_stopped" (the best final error among trials that ran to the end) and
    "best_survived" (the best trial of the full run was not stopped).

    Source: Golovin et al. 2017, "Google Vizier", sections 3.2.2 (the median stopping rule)
    and 4.4.2 (its speed-up).
    """
    seeds = check_seeds(seeds)
    n_trials = check_positive_int("n_trials", n_trials)
    curves = [c["curve"] for c in table["configs"]]
    epochs = table["epochs"]
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        picks = [int(rng.integers(len(curves))) for _ in range(n_trials)]
        completed: list[list[float]] = []
        spent, finals, stopped_ids = 0, {}, set()
        for k, i in enumerate(picks):
            curve = curves[i]
            for step in range(epochs):
                spent += 1
                if step < epochs - 1 and median_stopping_rule(completed, curve, step):
                    stopped_ids.add(k)
                    break
            else:
                completed.append(curve)
                finals[k] = curve[-1]
        full = [curves[i][-1] for i in picks]
        best_k = int(np.argmin(full))
        rows.append(
            {
                "seed": seed,
                "epochs_full": n_trials * epochs,
                "epochs_stopped": spent,
                "saving": n_trials * epochs / spent,
                "best_full": min(full),
                "best_stopped": min(finals.values()),
                "best_survived": best_k not in stopped_ids,
            }
        )
    return rows


def halving_rungs(
    curves: Sequence[Sequence[float]], n: int, r_min: int, eta: int = 3
) -> dict[str, Any]:
    """Return successive halving of configurations 0..n-1 of `curves` (one learning curve per
    configuration, as long as the maximum resource), run by the kit's `successive_halving` with
    the configurations taken in order: {"rungs": [(r_i, [the ids evaluated at r_i])], "spent"
    (epochs, promoted configurations resuming), "winner" (the best of those that reached the
    end)}.

    Source: Jamieson and Talwalkar 2016, Algorithm 1; Li et al. 2018, Algorithm 1 (inner loop).
    """
    n = check_positive_int("n", n)
    table = {"configs": [{"curve": list(c)} for c in curves[:n]]}
    space = table_space(table)
    study = Study(space, sampler=GridSampler())
    study = successive_halving(
        table_objective(table), space, n=n, r_min=r_min, r_max=len(curves[0]), eta=eta,
        study=study, verbose=False,
    )  # fmt: skip
    rungs, r = [], r_min
    while r <= len(curves[0]):
        ids = [t.params["config"] for t in study.trials if r in t.intermediate]
        if not ids:
            break
        rungs.append((r, sorted(ids)))
        r *= eta
    complete = [t for t in study.trials if t.state == "complete"]
    winner = study.best_trial.params["config"] if complete else None
    return {"rungs": rungs, "spent": resource_spent(study), "winner": winner}


def bracket_runs(
    table: Mapping[str, Any], draws: int = 20, *, eta: int = 3, seed: int = 0
) -> list[dict[str, Any]]:
    """For each of `draws` random draws of 27 distinct configurations from the table, run each
    bracket of Hyperband (R = the table's epochs) as successive halving on the first n of them
    (n the bracket's first rung); return one row per draw and bracket: "draw", "r_min", "n",
    "dropped_best" (the configuration best at the full epochs among those n was not the one
    that got there), "epochs" (resource spent).

    Source: Li et al. 2018, section 3 (each bracket trades the number of configurations for the
    epochs each gets: early brackets are aggressive, late ones conservative).
    """
    draws = check_positive_int("draws", draws)
    rng = np.random.default_rng(seed)
    curves = [c["curve"] for c in table["configs"]]
    epochs = table["epochs"]
    rows = []
    for draw in range(draws):
        picked = [curves[i] for i in rng.permutation(len(curves))[:27]]
        for rungs in brackets(epochs, eta):
            n, r_min = rungs[0]
            run = halving_rungs(picked, n, r_min, eta)
            best = int(np.argmin([c[-1] for c in picked[:n]]))
            rows.append(
                {
                    "draw": draw,
                    "r_min": r_min,
                    "n": n,
                    "dropped_best": run["winner"] != best,
                    "epochs": run["spent"],
                }
            )
    return rows


def summary(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    """Return the median of `key` over `rows`, leaving out None.

    Source: the kit's own helper.
    """
    values = [r[key] for r in rows if r[key] is not None]
    if not values:
        raise ValueError(f"no row has a value for {key!r}")
    return statistics.median(values)


def main(argv: Sequence[str] | None = None) -> None:
    """Make the learning-curve table and write it to data/ (or --out).

    Source: the kit's own artefact.
    """
    parser = argparse.ArgumentParser(prog="python -m effdl.experiments.early_stopping")
    parser.add_argument("--n", type=int, default=N_CONFIGS)
    parser.add_argument("--epochs", type=int, default=MAX_EPOCHS)
    parser.add_argument("--out", default=str(CURVES_FILE))
    args = parser.parse_args(argv)
    table = make_curves(args.n, args.epochs)
    Path(args.out).write_text(json.dumps(table))
    print(f"wrote {len(table['configs'])} curves of {table['epochs']} epochs to {args.out}")


if __name__ == "__main__":
    main()
