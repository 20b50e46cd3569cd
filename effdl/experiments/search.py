"""Lesson 09's experiments: grid search against random search with the same number of trials,
on functions where only some dimensions matter. Called by
course/09_grid_and_random_search.ipynb and by the ledger claim `random-vs-grid`
(effdl/claims/automation.py). Start with `grid_vs_random` (one random function per seed, both
searches on it) and `grid_vs_random_summary`.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from effdl._checks import check_positive_int, check_seeds
from effdl.data import load_mnist1d
from effdl.hpo.grid import grid
from effdl.hpo.random_search import best_of, random_search
from effdl.hpo.space import Categorical, Float, Int, check_params
from effdl.measure import torch_threads
from effdl.models.baselines import ConvNet1d
from effdl.train import fit

#: The exercise's setting: 4 dimensions in [0, 1], of which the first matters; the grid takes
#: 2 values per dimension (the centres of the two halves, 0.25 and 0.75), 2^4 = 16 trials, and
#: random search gets the same 16.
N_AXES = 4
PER_AXIS = 2
SEEDS = tuple(range(50))
#: How much each unimportant dimension weighs against the important one.
MINOR_WEIGHT = 0.01
#: The real objective: the mnist1d CNN trained for `CNN_EPOCHS` epochs of SGD with momentum
#: 0.9 at batch 100; its learning rate and weight decay log-uniform, its width (channels)
#: log-uniform over the integers. The grid takes 2 values per dimension (8 trials).
CNN_SPACE = {
    "lr": Float(1e-3, 0.3, log=True),
    "weight_decay": Float(1e-6, 1e-2, log=True),
    "channels": Int(8, 64, log=True),
}
CNN_EPOCHS = 5


def low_effective_dimension(
    params: Mapping[str, float], optimum: Sequence[float], weights: Sequence[float]
) -> float:
    """Return sum_i weights[i] * (x_i - optimum[i])^2 over the dimensions "x0", "x1", ...:
    with one large weight and the others small, a function of low effective dimensionality,
    f(x) ~ g(x0).

    Source: Bergstra and Bengio 2012, section 1 and Figure 1 (f(x, y) = g(x) + h(y) ~ g(x)).
    """
    return float(
        sum(
            w * (params[f"x{i}"] - c) ** 2
            for i, (c, w) in enumerate(zip(optimum, weights, strict=True))
        )
    )


def search_space(n_axes: int = N_AXES) -> dict[str, Float]:
    """Return the unit hypercube [0, 1]^n_axes as a space, dimensions "x0", "x1", ...

    Source: the kit's own test space.
    """
    n_axes = check_positive_int("n_axes", n_axes)
    return {f"x{i}": Float(0.0, 1.0) for i in range(n_axes)}


def grid_space(n_axes: int = N_AXES, per_axis: int = PER_AXIS) -> dict[str, Categorical]:
    """Return the grid a person would lay over [0, 1]^n_axes with `per_axis` values per
    dimension: the centres of `per_axis` equal cells (0.25 and 0.75 for two).

    Source: Bergstra and Bengio 2012, Figure 1 (a 3x3 grid inside the square).
    """
    n_axes = check_positive_int("n_axes", n_axes)
    per_axis = check_positive_int("per_axis", per_axis)
    values = tuple((i + 0.5) / per_axis for i in range(per_axis))
    return {f"x{i}": Categorical(values) for i in range(n_axes)}


def grid_vs_random(
    seeds: Sequence[int] = SEEDS,
    *,
    n_axes: int = N_AXES,
    per_axis: int = PER_AXIS,
    important: int = 1,
    verbose: bool = True,
) -> list[dict[str, Any]]:
    """For each seed, draw a function of low effective dimensionality (its optimum uniform in
    the cube; the first `important` dimensions weigh 1, the others `MINOR_WEIGHT`), search it
    with the full grid of `per_axis`^`n_axes` points and with as many random trials (drawn with
    `np.random.default_rng(seed)`), and return one row per seed: "seed", "optimum",
    "grid_best" and "random_best" (the smallest value found), "grid_distinct" and
    "random_distinct" (the distinct values of x0 each tried), "trials".

    Source: Bergstra and Bengio 2012, section 2 and Figure 1.
    """
    seeds = check_seeds(seeds)
    n_axes = check_positive_int("n_axes", n_axes)
    per_axis = check_positive_int("per_axis", per_axis)
    important = check_positive_int("important", important)
    if important > n_axes:
        raise ValueError(f"important must be at most n_axes={n_axes}, got {important}")
    weights = [1.0] * important + [MINOR_WEIGHT] * (n_axes - important)
    points = grid(grid_space(n_axes, per_axis))
    rows = []
    for seed in tqdm(seeds, desc="seeds", disable=not verbose, leave=False):
        rng = np.random.default_rng(seed)
        optimum = rng.random(n_axes).tolist()
        objective = functools.partial(low_effective_dimension, optimum=optimum, weights=weights)
        grid_history = [(p, objective(p)) for p in points]
        random_history = random_search(objective, search_space(n_axes), len(points), rng)
        rows.append(
            {
                "seed": seed,
                "optimum": optimum,
                "grid_best": best_of(grid_history)[1],
                "random_best": best_of(random_history)[1],
                "grid_distinct": len({p["x0"] for p, _ in grid_history}),
                "random_distinct": len({p["x0"] for p, _ in random_history}),
                "trials": len(points),
            }
        )
    return rows


def grid_vs_random_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return what `grid_vs_random` rows say: "grid_median" and "random_median" (the median
    over seeds of the best value found), "random_wins_share" (the share of seeds where random
    search found at least as good a value), "grid_distinct" and "random_distinct" (distinct
    values of x0 tried, median over seeds), "seeds", "trials".

    Source: Bergstra and Bengio 2012, section 2 (random search as good or better, for the
    same number of trials, when the effective dimensionality is low).
    """
    if not rows:
        raise ValueError("rows must hold at least one grid_vs_random row")
    for r in rows:
        if not {"grid_best", "random_best", "grid_distinct", "random_distinct"} <= set(r):
            raise ValueError(f"rows must be grid_vs_random rows, got {dict(r)!r}")
    return {
        "grid_median": statistics.median(r["grid_best"] for r in rows),
        "random_median": statistics.median(r["random_best"] for r in rows),
        "random_wins_share": sum(r["random_best"] <= r["grid_best"] for r in rows) / len(rows),
        "grid_distinct": statistics.median(r["grid_distinct"] for r in rows),
        "random_distinct": statistics.median(r["random_distinct"] for r in rows),
        "seeds": len(rows),
        "trials": rows[0].get("trials"),
    }


def build_cnn(params: Mapping[str, Any], seed: int = 0) -> tuple[ConvNet1d, torch.optim.SGD]:
    """Return the mnist1d CNN with `params["channels"]` channels, initialised from `seed`
    without touching the global generator, and its SGD optimizer (momentum 0.9, `params["lr"]`
    and `params["weight_decay"]` of `CNN_SPACE`).

    Source: Greydanus 2020 (mnist1d and its CNN).
    """
    params = check_params(CNN_SPACE, params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ConvNet1d(channels=params["channels"])
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=params["lr"],
        momentum=0.9,
        weight_decay=params["weight_decay"],
    )
    return model, optimizer


def learning_curve(
    params: Mapping[str, Any], *, epochs: int = CNN_EPOCHS, seed: int = 0
) -> list[float]:
    """Return the validation error (%) of the mnist1d CNN with `params` ("lr", "weight_decay",
    "channels" of `CNN_SPACE`) after each of `epochs` epochs of SGD with momentum 0.9 at batch
    100, from weights and batches fixed by `seed`, on one torch thread. A run that diverges
    scores 90% (chance) from then on.

    Source: Greydanus 2020 (mnist1d and its CNN); the kit's `effdl.train.fit`.
    """
    params = check_params(CNN_SPACE, params)
    epochs = check_positive_int("epochs", epochs)
    train, val, _ = load_mnist1d(seed=0).loaders(batch_size=100, seed=seed)
    model, optimizer = build_cnn(params, seed)
    with torch_threads(1):
        history = fit(
            model, train, val, epochs=epochs, optimizer=optimizer, seed=seed, verbose=False
        )
    errors = [100 * (1 - a) for a in history["val_acc"]]
    return [e if np.isfinite(e) else 90.0 for e in errors]


def mnist1d_cnn_error(
    params: Mapping[str, Any], *, epochs: int = CNN_EPOCHS, seed: int = 0
) -> float:
    """Return the validation error (%) of the mnist1d CNN with `params` after `epochs` epochs:
    the last point of `learning_curve`. This is the objective a study minimises; it is a
    module-level function so that worker processes can receive it.

    Source: Greydanus 2020 (mnist1d and its CNN); the kit's `effdl.train.fit`.
    """
    return learning_curve(params, epochs=epochs, seed=seed)[-1]
