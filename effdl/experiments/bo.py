"""Lesson 10's experiments: Bayesian optimisation against random search, scikit-optimize's
`gp_minimize` and Optuna's `GPSampler` on the standard test functions Branin and Hartmann6.
Called by course/10_bayesian_optimization.ipynb and by the ledger claim `bo-vs-random`
(effdl/claims/automation.py). Start with `BENCHMARKS`, then `run_method` (one method, one
seed: the best-so-far curve and the seconds per suggestion) and `compare` (every method, every
seed, in one run).
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from effdl._checks import check_in, check_positive_int, check_seeds
from effdl.hpo.bo import BOSampler
from effdl.hpo.space import Float
from effdl.hpo.study import minimize

# --------------------------------------------------------------------------- test functions


def branin(params: Mapping[str, float]) -> float:
    """Return the Branin-Hoo function at (x1, x2): a (x2 - b x1^2 + c x1 - r)^2
    + s (1 - t) cos(x1) + s with a = 1, b = 5.1 / (4 pi^2), c = 5 / pi, r = 6, s = 10,
    t = 1 / (8 pi), on x1 in [-5, 10] and x2 in [0, 15]. Its minimum, 0.397887, is reached at
    (-pi, 12.275), (pi, 2.275) and (9.42478, 2.475).

    Source: Dixon and Szego 1978, "The global optimisation problem: an introduction", as used
    by Jones, Schonlau and Welch 1998 and by Snoek et al. 2012 (section 4.1).
    """
    x1, x2 = params["x1"], params["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10)


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(params: Mapping[str, float]) -> float:
    """Return the six-dimensional Hartmann function on [0, 1]^6, -sum_i alpha_i
    exp(-sum_j A_ij (x_j - P_ij)^2), with its standard constants; minimum -3.32237 at
    (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573).

    Source: Dixon and Szego 1978; Snoek et al. 2012, section 4.1.
    """
    x = np.array([params[f"x{i}"] for i in range(1, 7)])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


@dataclass(frozen=True)
class Benchmark:
    """A test function with its space and known minimum."""

    name: str
    objective: Callable[[Mapping[str, float]], float]
    space: dict
    minimum: float


BENCHMARKS = {
    "branin": Benchmark(
        "branin", branin, {"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)}, 0.397887
    ),
    "hartmann6": Benchmark(
        "hartmann6", hartmann6, {f"x{i}": Float(0.0, 1.0) for i in range(1, 7)}, -3.32237
    ),
}
#: The methods `compare` runs side by side.
METHODS = ("kit-bo", "random", "skopt-gp", "optuna-gp")
#: The ledger's protocol: regret after 30 and 50 evaluations, median over 5 seeds.
CHECKPOINTS = (30, 50)
SEEDS = (0, 1, 2, 3, 4)
#: Random trials before the model takes over, the same for every model-based method.
N_INITIAL = 10


# --------------------------------------------------------------------------- runs


def run_method(method: str, benchmark: str, n_calls: int = 50, seed: int = 0) -> dict[str, Any]:
    """Minimise `benchmark` with `method` for `n_calls` evaluations from `seed`; return
    {"method", "benchmark", "seed", "values" (each evaluation in order), "best" (best so far
    after each), "regret" (best minus the known minimum), "seconds", "seconds_per_suggestion"
    (wall time of the whole run over `n_calls`: the objectives cost microseconds, so this is
    the time each method spends choosing a point)}.

    "kit-bo": `minimize` with `effdl.hpo.bo.BOSampler` (expected improvement); "random":
    `minimize(method="random")`; "skopt-gp": `skopt.gp_minimize` (a GP with a Matern kernel,
    its default acquisition); "optuna-gp": `optuna.samplers.GPSampler`. The model-based
    methods start from `N_INITIAL` random points.

    Source: Snoek et al. 2012, section 4.1 (Branin and Hartmann6 as benchmarks).
    """
    check_in("method", method, METHODS)
    check_in("benchmark", benchmark, tuple(BENCHMARKS))
    n_calls = check_positive_int("n_calls", n_calls)
    bench = BENCHMARKS[benchmark]
    start = time.perf_counter()
    values = _RUNNERS[method](bench, n_calls, seed)
    seconds = time.perf_counter() - start
    best = np.minimum.accumulate(values).tolist()
    return {
        "method": method,
        "benchmark": benchmark,
        "seed": seed,
        "values": list(values),
        "best": best,
        "regret": [b - bench.minimum for b in best],
        "seconds": seconds,
        "seconds_per_suggestion": seconds / n_calls,
    }


def compare(
    benchmarks: Sequence[str] = tuple(BENCHMARKS),
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = SEEDS,
    n_calls: int = max(CHECKPOINTS),
    *,
    verbose: bool = True,
) -> list[dict[str, Any]]:
    """Return `run_method` rows for every benchmark, method and seed, all in this run (so the
    seconds per suggestion are measured on the same machine under the same load).

    Source: the issue's protocol; Snoek et al. 2012, section 4.1.
    """
    seeds = check_seeds(seeds)
    runs = [(b, m, s) for b in benchmarks for m in methods for s in seeds]
    return [
        run_method(m, b, n_calls, s)
        for b, m, s in tqdm(runs, desc="BO runs", disable=not verbose, leave=False)
    ]


def compare_summary(rows: Sequence[Mapping[str, Any]], checkpoints: Sequence[int] = CHECKPOINTS):
    """Return {benchmark: {method: {"regret@30": median, "regret@50": median,
    "seconds_per_suggestion": median, "seeds": n}}} from `compare` rows.

    Source: the issue's protocol (median over seeds).
    """
    table: dict[str, dict[str, dict[str, Any]]] = {}
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["benchmark"], r["method"]), []).append(r)
    for (bench, method), group in groups.items():
        entry: dict[str, Any] = {"seeds": len(group)}
        for k in checkpoints:
            if all(len(r["regret"]) >= k for r in group):
                entry[f"regret@{k}"] = statistics.median(r["regret"][k - 1] for r in group)
        entry["seconds_per_suggestion"] = statistics.median(
            r["seconds_per_suggestion"] for r in group
        )
        table.setdefault(bench, {})[method] = entry
    return table


def evaluations_to_reach(best: Sequence[float], target: float) -> int | None:
    """Return the number of evaluations after which `best` (a best-so-far curve) is at or
    below `target`, or None if it never gets there.

    Source: the kit's own helper (a budget-to-target measure, as in Li et al. 2018, section 4).
    """
    for i, b in enumerate(best):
        if b <= target:
            return i + 1
    return None


def bo_vs_random(
    seeds: Sequence[int] = tuple(range(10)),
    n_calls: int = 40,
    benchmark: str = "branin",
    *,
    verbose: bool = True,
) -> list[dict[str, Any]]:
    """Return `run_method` rows of the kit's BO and of random search on `benchmark`, one per
    method and seed, each `n_calls` evaluations long.

    Source: Snoek et al. 2012, section 4.1; Bergstra and Bengio 2012 (random search).
    """
    return compare((benchmark,), ("kit-bo", "random"), seeds, n_calls, verbose=verbose)


def evaluations_needed(rows: Sequence[Mapping[str, Any]], target_regret: float) -> dict[str, float]:
    """Return {method: the median over seeds of the evaluations its best-so-far needs to come
    within `target_regret` of the minimum}; a run that never gets there counts as its length
    plus one (so the median says "not within this budget" when most runs fail).

    Source: the kit's own measure of budget to target (Li et al. 2018, section 4, compare
    methods by the resources they need to reach a given loss).
    """
    if not math.isfinite(target_regret) or target_regret < 0:
        raise ValueError(f"target_regret must be a number >= 0, got {target_regret!r}")
    needed: dict[str, list[int]] = {}
    for r in rows:
        if not {"method", "regret"} <= set(r):
            raise ValueError(f"rows must be run_method rows, got keys {sorted(r)}")
        n = evaluations_to_reach(r["regret"], target_regret)
        needed.setdefault(r["method"], []).append(len(r["regret"]) + 1 if n is None else n)
    return {method: statistics.median(counts) for method, counts in needed.items()}


# --------------------------------------------------------------------------- the runners


def _kit(bench: Benchmark, n_calls: int, seed: int, method: Any = None) -> list[float]:
    method = BOSampler(n_initial=N_INITIAL) if method is None else method
    study = minimize(
        bench.objective, bench.space, method=method, n_trials=n_calls, seed=seed, verbose=False
    )
    return [t.value for t in study.trials]


def _random(bench: Benchmark, n_calls: int, seed: int) -> list[float]:
    return _kit(bench, n_calls, seed, method="random")


def _skopt(bench: Benchmark, n_calls: int, seed: int) -> list[float]:
    from skopt import gp_minimize

    names = list(bench.space)
    bounds = [(dim.low, dim.high) for dim in bench.space.values()]

    def objective(x):
        return bench.objective(dict(zip(names, x, strict=True)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skopt warns when it re-proposes a point
        result = gp_minimize(
            objective, bounds, n_calls=n_calls, n_initial_points=N_INITIAL, random_state=seed
        )
    return [float(v) for v in result.func_vals]


def _optuna(bench: Benchmark, n_calls: int, seed: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=N_INITIAL)
    study = optuna.create_study(sampler=sampler)

    def objective(trial):
        params = {
            name: trial.suggest_float(name, dim.low, dim.high, log=dim.log)
            for name, dim in bench.space.items()
        }
        return bench.objective(params)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPSampler is marked experimental in some versions
        study.optimize(objective, n_trials=n_calls)
    return [float(t.value) for t in study.trials]


_RUNNERS = {"kit-bo": _kit, "random": _random, "skopt-gp": _skopt, "optuna-gp": _optuna}
