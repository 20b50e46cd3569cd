"""Successive halving and Hyperband: spend a small resource (epochs) on many configurations,
keep the best 1/eta of them, give the survivors eta times more, and so on; Hyperband runs
successive halving in several brackets that trade the number of configurations against the
resource each starts with. Start with `brackets` (Li et al. 2018, Table 1), then
`successive_halving` and `hyperband`; `resource_spent` sums what a study cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from tqdm.auto import tqdm

from effdl._checks import check_positive_int
from effdl.hpo.space import Space
from effdl.hpo.study import Study, TrialState, _evaluate, _interrupted_by


def brackets(
    max_resource: float, eta: int = 3, min_resource: float = 1
) -> list[list[tuple[int, int | float]]]:
    """Return Hyperband's brackets, for s = s_max down to 0, each the list of its rungs
    (n_i, r_i): n_i configurations evaluated with resource r_i, i = 0..s.

    With R = max_resource / min_resource, s_max = floor(log_eta R) (the largest s with
    eta**s <= R, found with exact integer powers, so that R = 81 gives 4, not 3.9999),
    B = (s_max + 1) R, and for each s: n = ceil((B / R) eta**s / (s + 1)), r = R eta**-s,
    n_i = floor(n eta**-i), r_i = r eta**i, times min_resource. The arithmetic is exact
    (fractions); the resources are ints when every one is a whole number (R a power of eta and
    min_resource an int) and floats otherwise, e.g. max_resource=10, eta=3 starts the first
    bracket at 10/9.

    Parameters
    ----------
    max_resource : the most resource one configuration gets (R times min_resource), > 0.
    eta : int >= 2, the factor of the halving: 1/eta of the configurations survive a rung.
    min_resource : the least resource a configuration gets, > 0 and <= max_resource.

    Source: Li et al. 2018, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
    Optimization", JMLR 18(185), Algorithm 1 and Table 1.
    """
    eta = _check_eta(eta)
    max_resource = _check_resource("max_resource", max_resource)
    min_resource = _check_resource("min_resource", min_resource)
    if max_resource < min_resource:
        raise ValueError(
            "max_resource must be >= min_resource, got "
            f"max_resource={max_resource!r}, min_resource={min_resource!r}"
        )
    ratio = Fraction(max_resource) / Fraction(min_resource)
    s_max = 0
    while eta ** (s_max + 1) <= ratio:
        s_max += 1
    exact = []
    for s in range(s_max, -1, -1):
        # n = ceil((s_max + 1) eta**s / (s + 1)), since B / R = s_max + 1.
        n = -(-(s_max + 1) * eta**s // (s + 1))
        exact.append([(n // eta**i, Fraction(max_resource) / eta ** (s - i)) for i in range(s + 1)])
    whole = all(r.denominator == 1 for rungs in exact for _, r in rungs)
    kind = int if whole else float
    return [[(n_i, kind(r_i)) for n_i, r_i in rungs] for rungs in exact]


def successive_halving(
    objective: Callable[[dict[str, Any], int], float],
    space: Space,
    *,
    n: int | None = None,
    r_min: int,
    r_max: int,
    eta: int = 3,
    seed: int = 0,
    study: Study | None = None,
    verbose: bool = True,
) -> Study:
    """Return the study of one run of successive halving: `n` configurations evaluated with
    resource `r_min`, the best floor(n / eta) of them with `r_min * eta`, and so on up to
    `r_max` (which must be `r_min * eta**k`).

    The configurations come from `study.ask()`: by default a new `Study(space, seed=seed)`,
    which draws trial i at random with `np.random.default_rng([seed, i])`. At every rung the
    survivors are ranked by their value at that rung (in the study's direction; ties go to the
    lower trial id) and the best floor(n_i / eta) go on; the others are told PRUNED (their
    value is their last one). Those evaluated at `r_max` are told COMPLETE with that value. An
    evaluation that raises or returns a value that is not a finite number fails its trial
    (FAILED, the error kept), which then takes no place among the survivors.

    Cost accounting: every evaluation is recorded with `study.report(trial, step=resource,
    value)`, and a promoted trial RESUMES from where it stopped, so it costs the extra
    resource, r_i - r_(i-1), not r_i; a trial's cost is the last resource it reached and
    `resource_spent(study)` is their sum (as in Li et al. 2018, whose budget counts a resumed
    configuration once). `objective` is still called with the total resource r_i: an objective
    that trains from scratch on every call really spends the sum of its rungs, not r_i.

    Parameters
    ----------
    objective : (params, resource) -> float, the value (e.g. the validation loss) of the
        configuration `params` after `resource` units (epochs) of training.
    space : the search space of the study created when `study` is None.
    n : int, the configurations of the first rung, at least eta**k so that one reaches
        `r_max`; None: exactly eta**k.
    r_min, r_max : ints, the first and the last rung's resource; r_max = r_min * eta**k.
    eta : int >= 2, the factor of the halving.
    seed : int >= 0, the seed of the study created when `study` is None (a given study keeps
        its own).
    study : a study to add the trials to (its direction and sampler are used), or None.
    verbose : a `tqdm.auto` progress bar over evaluations.

    Source: Jamieson and Talwalkar 2016, "Non-stochastic Best Arm Identification and
    Hyperparameter Optimization", AISTATS, Algorithm 1; Li et al. 2018, "Hyperband", JMLR,
    Algorithm 1 (its inner loop).
    """
    _check_objective(objective, verbose)
    eta = _check_eta(eta)
    r_min = check_positive_int("r_min", r_min)
    r_max = check_positive_int("r_max", r_max)
    k = 0
    while r_min * eta ** (k + 1) <= r_max:
        k += 1
    if r_min * eta**k != r_max:
        raise ValueError(
            f"r_max must be r_min * eta**k for some k >= 0, got r_min={r_min}, r_max={r_max}, "
            f"eta={eta} (e.g. r_max={r_min * eta**k} or {r_min * eta ** (k + 1)})"
        )
    n = eta**k if n is None else check_positive_int("n", n)
    if n < eta**k:
        raise ValueError(
            f"n must be at least eta**{k} = {eta**k}, so that one configuration reaches "
            f"r_max={r_max}, got n={n}"
        )
    study = Study(space, seed=seed) if study is None else _check_study(study)
    rungs = [(n // eta**i, r_min * eta**i) for i in range(k + 1)]
    with tqdm(total=_evaluations(rungs), desc="evaluations", disable=not verbose) as progress:
        _run_bracket(study, objective, rungs, progress)
    return study


def hyperband(
    objective: Callable[[dict[str, Any], int], float],
    space: Space,
    *,
    max_resource: int,
    eta: int = 3,
    min_resource: int = 1,
    seed: int = 0,
    study: Study | None = None,
    verbose: bool = True,
) -> Study:
    """Return the study of one run of Hyperband: every bracket of `brackets(max_resource, eta,
    min_resource)`, from the most aggressive (many configurations, little resource each) to
    plain random search (a few configurations, all at `max_resource`), each a successive
    halving over new configurations, all in one study (trial ids follow the brackets).

    The objective, the ranking, the states and the cost accounting are those of
    `successive_halving`; every resource of every bracket must be a whole number (it is the
    step of `study.report`), i.e. max_resource must be a multiple of min_resource * eta**s_max.

    Parameters
    ----------
    objective : (params, resource) -> float, as in `successive_halving`.
    space, seed, study, verbose : as in `successive_halving`.
    max_resource, min_resource : ints, R times min_resource and the least resource.
    eta : int >= 2.

    Source: Li et al. 2018, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
    Optimization", JMLR 18(185), Algorithm 1.
    """
    _check_objective(objective, verbose)
    for name, value in (("max_resource", max_resource), ("min_resource", min_resource)):
        check_positive_int(name, value)
    plan = brackets(max_resource, eta=eta, min_resource=min_resource)
    if not isinstance(plan[0][0][1], int):
        raise ValueError(
            "hyperband needs whole-number resources (each is a step of study.report), got "
            f"{[r for _, r in plan[0]]} from max_resource={max_resource}, "
            f"min_resource={min_resource}, eta={eta}: choose max_resource = min_resource * "
            "eta**k times an int"
        )
    study = Study(space, seed=seed) if study is None else _check_study(study)
    total = sum(_evaluations(rungs) for rungs in plan)
    with tqdm(total=total, desc="evaluations", disable=not verbose) as progress:
        for rungs in plan:
            _run_bracket(study, objective, rungs, progress)
    return study


def resource_spent(study: Study) -> int | float:
    """Return the resource a successive-halving or Hyperband study cost: the sum over its
    trials of the largest step each reported (a resumed trial pays only the extra resource of
    each rung, so its cost is the last resource it reached). A failed evaluation reported
    nothing and counts as no extra cost; a trial without reports counts 0.

    Source: Li et al. 2018, "Hyperband", JMLR, section 3 (the budget of a bracket).
    """
    if not isinstance(study, Study):
        raise TypeError(f"study must be a Study, got {type(study).__name__}")
    return sum(max(t.intermediate) for t in study.trials if t.intermediate)


# -- helpers ----------------------------------------------------------------------------------


def _run_bracket(
    study: Study,
    objective: Callable[[dict[str, Any], int], float],
    rungs: Sequence[tuple[int, int]],
    progress: tqdm,
) -> None:
    # One successive halving: ask n_0 trials, then evaluate, rank and cut rung by rung.
    params: dict[int, dict[str, Any]] = {}
    for _ in range(rungs[0][0]):
        trial = study.ask()
        if trial is None:  # a sampler with nothing left (a finished grid)
            break
        params[trial.id] = trial.params
    running = set(params)
    seconds = dict.fromkeys(params, 0.0)
    alive = sorted(params)
    sign = 1.0 if study.direction == "minimize" else -1.0
    try:
        for i, (_, resource) in enumerate(rungs):
            scored = []
            for trial_id in alive:
                value, error, took = _evaluate(
                    lambda p, r=resource: objective(p, r), params[trial_id], trial_id
                )
                seconds[trial_id] += took
                progress.update(1)
                if error is not None:
                    study.tell(trial_id, error=error, seconds=seconds[trial_id])
                    running.discard(trial_id)
                    continue
                study.report(trial_id, resource, value)
                scored.append((sign * value, trial_id))
            if i == len(rungs) - 1:
                for signed, trial_id in scored:
                    study.tell(trial_id, sign * signed, seconds=seconds[trial_id])
                    running.discard(trial_id)
                return
            scored.sort()  # by value in the study's direction, then by the lower id
            keep = rungs[i + 1][0]
            for _, trial_id in scored[keep:]:
                study.tell(trial_id, state=TrialState.PRUNED, seconds=seconds[trial_id])
                running.discard(trial_id)
            alive = sorted(trial_id for _, trial_id in scored[:keep])
    except BaseException as stop:  # KeyboardInterrupt: leave no trial running
        for trial_id in sorted(running):
            study.tell(trial_id, state=TrialState.FAILED, error=_interrupted_by(stop))
        raise


def _minimize_multi_fidelity(
    objective: Callable,
    space: Space,
    *,
    method: str,
    n_trials: int | None,
    seed: int,
    direction: str,
    executor: Any,
    n_workers: int,
    journal: Any,
    verbose: bool,
    max_resource: int | None,
    min_resource: int,
    eta: int,
) -> Study:
    # minimize(method="sha" | "hyperband"): checks what a sampler-based search would accept
    # and these methods cannot, then runs them on a new study.
    if executor is not None or n_workers != 1:
        raise ValueError(
            f"method={method!r} runs in this process: pass executor=None and n_workers=1, got "
            f"executor={executor!r}, n_workers={n_workers!r}"
        )
    if max_resource is None:
        raise ValueError(f"method={method!r} needs max_resource (an int), got None")
    if method == "hyperband" and n_trials is not None:
        raise ValueError(
            f"method='hyperband' sets the number of trials from its brackets: pass "
            f"n_trials=None, got n_trials={n_trials!r}"
        )
    study = Study(space, direction=direction, seed=seed, journal=journal)
    if study.trials:
        raise ValueError(
            f"journal {journal} already holds {len(study.trials)} trials, and method="
            f"{method!r} does not resume: use a new path"
        )
    if method == "sha":
        return successive_halving(
            objective,
            space,
            n=n_trials,
            r_min=min_resource,
            r_max=max_resource,
            eta=eta,
            study=study,
            verbose=verbose,
        )
    return hyperband(
        objective,
        space,
        max_resource=max_resource,
        eta=eta,
        min_resource=min_resource,
        study=study,
        verbose=verbose,
    )


def _evaluations(rungs: Sequence[tuple[int, Any]]) -> int:
    return sum(n_i for n_i, _ in rungs)


def _check_eta(eta: object) -> int:
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise ValueError(f"eta must be an int >= 2, got {eta!r}")
    return eta


def _check_resource(name: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number > 0, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _check_objective(objective: object, verbose: object) -> None:
    if not callable(objective):
        raise TypeError(f"objective must be callable, got {type(objective).__name__}")
    if not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True or False, got {verbose!r}")


def _check_study(study: object) -> Study:
    if not isinstance(study, Study):
        raise TypeError(f"study must be None or a Study, got {type(study).__name__}")
    return study
