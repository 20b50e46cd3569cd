"""Views of a study: the best value found so far (against trials, seconds or steps, with the
spread over seeds), parallel coordinates of the trials (one axis per hyper-parameter), and the
study as a scikit-optimize `OptimizeResult`, so that skopt's own plots draw it. These are the
views a study service offers (Golovin et al. 2017, "Google Vizier": its dashboard and its
comparisons of algorithms). Start with `best_so_far`, then `plot_best_so_far`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.optimize import OptimizeResult

from effdl._checks import check_in
from effdl.hpo.space import Categorical, Float, Int, to_unit
from effdl.hpo.study import DIRECTIONS, INTERRUPTED, Study, Trial, TrialState

#: What `plot_best_so_far` can put on its x axis: finished trials, their summed wall time, or
#: the summed number of intermediate values they reported.
AGAINST = ("trials", "seconds", "steps")
#: What `plot_parallel_coordinates` can colour the trials by.
COLOR_BY = ("value", "trial")
#: The percentiles of the band drawn for a name mapped to several studies (seeds).
BAND_PERCENTILES = (25.0, 75.0)


def best_so_far(
    study_or_trials: Study | Sequence[Trial], *, direction: str | None = None
) -> list[float]:
    """Return the best complete value after each finished trial, in id order, starting at the
    first complete trial.

    A finished trial is complete, pruned or failed; running trials are skipped, and so are
    trials marked interrupted (a study stopped while they ran, and `minimize` runs them
    again). Only complete trials can improve the best: a failed trial, or a pruned one (its
    value comes from a partial budget), keeps the previous best. The list starts at the first
    complete trial rather than holding None or NaN for the trials before it, so it has one
    entry per finished trial from that one on: entry k is the best after the
    (f + k)-th finished trial, where f is the position of the first complete one (f = 1 when
    the first trial completes).

    Parameters
    ----------
    study_or_trials : a `Study`, or a sequence of its `Trial`s.
    direction : "minimize" or "maximize"; a study's own by default, which a `direction` given
        with a study must equal. Required with a sequence of trials.

    Source: Golovin et al. 2017, "Google Vizier: A Service for Black-Box Optimization", KDD,
    the comparison of algorithms by the best objective value found so far against trials.
    """
    return _curve(study_or_trials, direction, "trials")[1].tolist()


def plot_best_so_far(
    studies: Mapping[str, Study | Sequence[Study]],
    *,
    against: str = "trials",
    log_y: bool = False,
    regret_to: float | None = None,
    title: str | None = None,
) -> Figure:
    """Return a plot of the best value so far, one curve per named study, against the number
    of finished trials or the budget they used.

    The curve of a study is `best_so_far` (a step that holds until a trial improves the best).
    A name mapped to several studies (one per seed) draws their median with a band between the
    25th and 75th percentiles, both taken at every x where any of them moves, over the range
    where every one of them has a complete trial.

    Parameters
    ----------
    studies : {name: study or [study, ...]}, all with the same direction.
    against : the x axis. "trials": finished trials (failed and pruned ones included, since
        they cost an evaluation). "seconds": the summed `seconds` (wall time) of the finished
        trials; every finished trial must carry it (`tell` records it, except for a trial told
        with a params dict and no `seconds`). "steps": the summed number of intermediate values
        the finished trials reported (epochs, if a trial reports once per epoch): the budget
        of a study whose trials are stopped early (successive halving, Hyperband, the median
        rule). A trial that reported nothing costs 0 steps.
    log_y : draw the y axis on a log scale; the values (or the regrets) must not be negative,
        and a regret of exactly 0 is not drawn.
    regret_to : a known optimum: the plot shows the regret |best so far - optimum| instead of
        the value (best - optimum when minimizing, optimum - best when maximizing); no value
        may beat the optimum.
    title : the title; a default names what is plotted.

    Source: Golovin et al. 2017, "Google Vizier: A Service for Black-Box Optimization", KDD,
    the comparison of algorithms by the best objective value so far against trials.
    """
    check_in("against", against, AGAINST)
    if not isinstance(log_y, bool):
        raise TypeError(f"log_y must be True or False, got {log_y!r}")
    groups = _check_studies(studies)
    directions = {study.direction for group in groups.values() for study in group}
    if len(directions) > 1:
        raise ValueError(
            "studies must all have the same direction to share a y axis, got both "
            f"'minimize' and 'maximize' among {list(groups)}"
        )
    (direction,) = directions
    if regret_to is not None:
        regret_to = _check_number("regret_to", regret_to)

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for name, group in groups.items():
        curves = [_curve(study, None, against) for study in group]
        if regret_to is not None:
            curves = [(x, _regret(y, regret_to, direction, name)) for x, y in curves]
        if log_y and any((y < 0).any() for _, y in curves):
            raise ValueError(
                f"log_y needs values >= 0, and studies[{name!r}] reaches "
                f"{min(y.min() for _, y in curves):.4g}: pass regret_to or log_y=False"
            )
        if len(curves) == 1:
            x, y = curves[0]
            ax.plot(x, y, drawstyle="steps-post", marker=".", label=name)
            continue
        grid, values = _align(curves, name, against)
        low, median, high = np.percentile(
            values, [BAND_PERCENTILES[0], 50, BAND_PERCENTILES[1]], axis=0
        )
        (line,) = ax.plot(
            grid, median, drawstyle="steps-post", label=f"{name} (median of {len(curves)})"
        )
        ax.fill_between(
            grid,
            low,
            high,
            step="post",
            color=line.get_color(),
            alpha=0.25,
            linewidth=0,
            label=f"{name} (25th-75th percentile)",
        )
    if log_y:
        ax.set_yscale("log", nonpositive="mask")
    better = "lower" if direction == "minimize" or regret_to is not None else "higher"
    what = "regret of the best value so far" if regret_to is not None else "best value so far"
    ax.set_ylabel(f"{what} ({better} is better)")
    ax.set_xlabel(
        {
            "trials": "finished trials",
            "seconds": "evaluation time of the finished trials (s)",
            "steps": "steps reported by the finished trials",
        }[against]
    )
    ax.set_title(title or f"{what} against {against}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def plot_parallel_coordinates(study: Study, *, color_by: str = "value") -> Figure:
    """Return a parallel-coordinates plot of a study's complete trials: one vertical axis per
    hyper-parameter plus one for the objective, one line per trial.

    Each hyper-parameter axis spans the unit interval of `effdl.hpo.space.to_unit` and is
    labelled with real values at a few ticks (decades on a log range, each choice of a
    category by name); the objective axis spans the lowest to the highest value. The lines form
    one `LineCollection` (gid "trials"), drawn worst first so that the best lie on top, coloured
    by value (the best darkest, with a colorbar) or, with `color_by="trial"`, by trial id (the
    order of the search). The best trial is drawn again in red (a line with gid "best").

    Source: Inselberg 1985, "The plane with parallel coordinates", The Visual Computer 1(2);
    Golovin et al. 2017, "Google Vizier", KDD, the dashboard's parallel-coordinates view of a
    study's trials.
    """
    if not isinstance(study, Study):
        raise TypeError(f"study must be a Study, got {type(study).__name__}")
    check_in("color_by", color_by, COLOR_BY)
    space = study.space
    complete = _complete(study, "plot_parallel_coordinates")
    values = np.array([t.value for t in complete])
    low, high = float(values.min()), float(values.max())

    def value_to_unit(v: float) -> float:
        return 0.5 if high == low else (v - low) / (high - low)

    points = np.array(
        [[*to_unit(space, t.params), value_to_unit(t.value)] for t in complete]
    ).reshape(len(complete), len(space) + 1)
    positions = np.arange(len(space) + 1, dtype=float)
    sign = 1.0 if study.direction == "minimize" else -1.0
    order = np.argsort(-sign * values, kind="stable")  # worst first: the best end up on top

    fig = Figure(figsize=(max(6.0, 1.6 * len(positions) + 2.0), 4.5))
    ax = fig.subplots()
    if color_by == "value":
        colours, cmap, label = values, "viridis" if sign > 0 else "viridis_r", "value"
    else:
        colours, cmap, label = np.array([t.id for t in complete]), "viridis", "trial id"
    lines = LineCollection(
        [np.column_stack([positions, points[i]]) for i in order],
        array=colours[order],
        cmap=cmap,
        linewidths=1.2,
        alpha=0.8,
        gid="trials",
    )
    ax.add_collection(lines)
    colorbar = fig.colorbar(lines, ax=ax, pad=0.02)
    colorbar.set_label(label)
    best = study.best_trial
    best_row = next(i for i, t in enumerate(complete) if t.id == best.id)
    ax.plot(
        positions,
        points[best_row],
        color="tab:red",
        linewidth=2.5,
        zorder=4,
        gid="best",
        label=f"best: trial {best.id} (value {best.value:.4g})",
    )

    ticks = [_dimension_ticks(dim) for dim in space.values()]
    ticks.append([(value_to_unit(v), f"{v:.3g}") for v in _nice_ticks(low, high)])
    for x, axis_ticks in zip(positions, ticks, strict=True):
        ax.axvline(x, color="0.3", linewidth=0.8, zorder=1)
        ax.plot([x] * len(axis_ticks), [u for u, _ in axis_ticks], "_", color="0.3", ms=6)
        for u, text in axis_ticks:
            ax.annotate(
                text,
                (x, u),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize="x-small",
                va="center",
                ha="left",
                color="0.2",
                zorder=5,
                bbox={
                    "boxstyle": "square,pad=0.1",
                    "facecolor": "white",
                    "edgecolor": "none",
                    "alpha": 0.7,
                },
            )
    better = "lower" if sign > 0 else "higher"
    ax.set_xticks(positions, labels=[*space, f"value\n({better} is better)"])
    ax.set_yticks([])
    ax.set_xlim(-0.2, positions[-1] + 0.6)
    ax.set_ylim(-0.05, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"parallel coordinates of {len(complete)} complete trials")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def to_optimize_result(study: Study, *, random_state: int = 0) -> OptimizeResult:
    """Return a study's complete trials as a `scipy.optimize.OptimizeResult` that
    scikit-optimize's plots (`plot_convergence`, `plot_evaluations`, `plot_objective`) accept.

    Failed, pruned and running trials are left out. skopt minimises, so for a "maximize"
    study `fun` and `func_vals` are the negated values (the best trial still has the lowest
    `func_vals`, and `plot_convergence` shows minus the best value so far).

    Fields
    ------
    x : the best params, a list in the space's order. fun : the best value (negated for
    "maximize"). x_iters : the params of each complete trial, in id order. func_vals : their
    values, a numpy array (negated for "maximize"). space : a `skopt.space.Space` of the same
    dimensions, named, each normalised to [0, 1] (as `gp_minimize` sets it): `Float` becomes
    `Real`, `Int` `Integer`, with prior "log-uniform" where `log=True` and "uniform" otherwise;
    `Categorical` becomes `Categorical`. models : one `skopt.learning.GaussianProcessRegressor`
    fitted on `space.transform(x_iters)` and `func_vals`, with the kernel `gp_minimize` uses
    (a constant times a Matern 5/2 kernel with one length scale per transformed dimension, or
    a Hamming kernel when every dimension is categorical, plus Gaussian noise) and
    `random_state` for its optimizer restarts; `plot_objective` draws its partial dependence.
    random_state : a `numpy.random.RandomState(random_state)`. specs : the function and its
    arguments, as skopt's own results record them.

    Source: scikit-optimize documentation, "skopt.utils.create_result" (the fields of an
    OptimizeResult), "skopt.plots" (plot_convergence, plot_evaluations, plot_objective) and
    "skopt.utils.cook_estimator" (the GP that gp_minimize fits).
    """
    from skopt import space as skspace
    from skopt.learning import GaussianProcessRegressor
    from skopt.learning.gaussian_process.kernels import ConstantKernel, HammingKernel, Matern

    if not isinstance(study, Study):
        raise TypeError(f"study must be a Study, got {type(study).__name__}")
    if isinstance(random_state, bool) or not isinstance(random_state, int) or random_state < 0:
        raise ValueError(f"random_state must be an int >= 0, got {random_state!r}")
    space = study.space
    complete = _complete(study, "to_optimize_result")
    sign = 1.0 if study.direction == "minimize" else -1.0
    x_iters = [[t.params[name] for name in space] for t in complete]
    func_vals = np.array([sign * t.value for t in complete])
    best = study.best_trial

    dimensions = []
    for name, dim in space.items():
        if isinstance(dim, Categorical):
            dimensions.append(skspace.Categorical(list(dim.choices), name=name))
        else:
            kind = skspace.Real if isinstance(dim, Float) else skspace.Integer
            prior = "log-uniform" if dim.log else "uniform"
            dimensions.append(
                kind(dim.low, dim.high, prior=prior, transform="normalize", name=name)
            )
    sk_space = skspace.Space(dimensions)

    n_dims = sk_space.transformed_n_dims
    if sk_space.is_categorical:
        shape = HammingKernel(length_scale=np.ones(n_dims))
    else:
        shape = Matern(
            length_scale=np.ones(n_dims), length_scale_bounds=[(0.01, 100.0)] * n_dims, nu=2.5
        )
    model = GaussianProcessRegressor(
        kernel=ConstantKernel(1.0, (0.01, 1000.0)) * shape,
        normalize_y=True,
        noise="gaussian",
        n_restarts_optimizer=2,
        random_state=random_state,
    )
    with warnings.catch_warnings():
        # With a few trials the fitted length scales often sit on their bounds; gp_minimize
        # silences the same warnings when it fits this model.
        warnings.simplefilter("ignore")
        model.fit(sk_space.transform(x_iters), func_vals)

    return OptimizeResult(
        x=[best.params[name] for name in space],
        fun=sign * best.value,
        x_iters=x_iters,
        func_vals=func_vals,
        space=sk_space,
        models=[model],
        random_state=np.random.RandomState(random_state),
        specs={
            "function": "effdl.hpo.views.to_optimize_result",
            "args": {"direction": study.direction, "random_state": random_state},
        },
    )


# -- helpers ----------------------------------------------------------------------------------


def _curve(
    study_or_trials: Any, direction: str | None, against: str
) -> tuple[np.ndarray, np.ndarray]:
    # (x, best so far) at each finished trial from the first complete one on.
    trials, direction = _trials_and_direction(study_or_trials, direction)
    finished = [
        t
        for t in sorted(trials, key=lambda t: t.id)
        if t.state is not TrialState.RUNNING and not (t.error or "").startswith(INTERRUPTED)
    ]
    if against == "seconds":
        missing = [t.id for t in finished if t.seconds is None]
        if missing:
            raise ValueError(
                f"against='seconds' needs the wall time of every finished trial; trials "
                f"{missing} have seconds=None (told with a params dict and no seconds): "
                "use against='trials' or tell them with seconds"
            )
        costs = [t.seconds for t in finished]
    elif against == "steps":
        if finished and not any(t.intermediate for t in finished):
            raise ValueError(
                "against='steps' needs trials that report intermediate values (Study.report); "
                "none of the finished trials did: use against='trials' or 'seconds'"
            )
        costs = [len(t.intermediate) for t in finished]
    else:
        costs = [1] * len(finished)
    better = min if direction == "minimize" else max
    best, xs, ys = None, [], []
    for trial, x in zip(finished, np.cumsum(costs), strict=True):
        if trial.state is TrialState.COMPLETE:
            best = trial.value if best is None else better(best, trial.value)
        if best is not None:
            xs.append(float(x))
            ys.append(float(best))
    if best is None:
        counts = {s.value: sum(t.state is s for t in trials) for s in TrialState}
        held = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no trials"
        raise ValueError(f"best so far needs at least one complete trial; the study has {held}")
    return np.array(xs), np.array(ys)


def _trials_and_direction(study_or_trials: Any, direction: str | None) -> tuple[list, str]:
    if isinstance(study_or_trials, Study):
        if direction is not None and direction != study_or_trials.direction:
            raise ValueError(
                f"direction must be None or the study's own {study_or_trials.direction!r}, "
                f"got {direction!r}"
            )
        return study_or_trials.trials, study_or_trials.direction
    if isinstance(study_or_trials, str | bytes) or not isinstance(study_or_trials, Sequence):
        raise TypeError(
            "study_or_trials must be a Study or a sequence of Trials, got "
            f"{type(study_or_trials).__name__}"
        )
    for trial in study_or_trials:
        if not isinstance(trial, Trial):
            raise TypeError(f"study_or_trials must hold only Trials, got a {type(trial).__name__}")
    if direction is None:
        raise ValueError(
            f"direction must be one of {DIRECTIONS} when study_or_trials is a sequence of "
            "trials, got None"
        )
    return list(study_or_trials), check_in("direction", direction, DIRECTIONS)


def _check_studies(studies: Any) -> dict[str, list[Study]]:
    if not isinstance(studies, Mapping):
        raise TypeError(
            f"studies must be a dict of name: Study or [Study, ...], got {type(studies).__name__}"
        )
    if not studies:
        raise ValueError("studies must name at least one study, got an empty dict")
    groups = {}
    for name, entry in studies.items():
        group = [entry] if isinstance(entry, Study) else entry
        if (
            isinstance(group, str | bytes)
            or not isinstance(group, Sequence)
            or not group
            or not all(isinstance(s, Study) for s in group)
        ):
            raise TypeError(
                f"studies[{name!r}] must be a Study or a non-empty sequence of Studies, "
                f"got {entry!r}"
            )
        groups[str(name)] = list(group)
    return groups


def _align(
    curves: list[tuple[np.ndarray, np.ndarray]], name: str, against: str
) -> tuple[np.ndarray, np.ndarray]:
    # Each curve is a step function (the best holds until the next finished trial); evaluate
    # all of them at every x where one of them moves, over the range they all cover.
    start = max(x[0] for x, _ in curves)
    end = min(x[-1] for x, _ in curves)
    if start > end:
        raise ValueError(
            f"the studies of studies[{name!r}] share no range of {against}: one ends at "
            f"{end:.4g} before another has its first complete trial at {start:.4g}"
        )
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    grid = grid[(grid >= start) & (grid <= end)]
    values = np.array([y[np.searchsorted(x, grid, side="right") - 1] for x, y in curves])
    return grid, values


def _regret(y: np.ndarray, optimum: float, direction: str, name: str) -> np.ndarray:
    regret = y - optimum if direction == "minimize" else optimum - y
    if (regret < 0).any():
        beaten = y.min() if direction == "minimize" else y.max()
        raise ValueError(
            f"regret_to must be an optimum no study beats, got {optimum!r}, and "
            f"studies[{name!r}] reaches {beaten!r}"
        )
    return regret


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _complete(study: Study, caller: str) -> list[Trial]:
    complete = [t for t in study.trials if t.state is TrialState.COMPLETE]
    if not complete:
        counts = {s.value: sum(t.state is s for t in study.trials) for s in TrialState}
        held = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no trials"
        raise ValueError(f"{caller} needs at least one complete trial; the study has {held}")
    return complete


def _dimension_ticks(dim: Float | Int | Categorical) -> list[tuple[float, str]]:
    # (position in [0, 1], label) of a few real values of a dimension.
    if isinstance(dim, Categorical):
        return [(dim.to_unit(choice), str(choice)) for choice in dim.choices]
    if isinstance(dim, Int):
        return [(dim.to_unit(v), str(v)) for v in dim.grid(5)]
    if dim.log:
        decades = range(math.ceil(math.log10(dim.low)), math.floor(math.log10(dim.high)) + 1)
        values = [10.0**k for k in decades]
        if len(values) < 2:  # a range within one decade: a few geometric steps instead
            values = dim.grid(3)
    else:
        values = _nice_ticks(dim.low, dim.high)
    return [(dim.to_unit(min(max(v, dim.low), dim.high)), f"{v:.3g}") for v in values]


def _nice_ticks(low: float, high: float) -> list[float]:
    if low == high:
        return [low]
    ticks = MaxNLocator(nbins=4).tick_values(low, high)
    span = high - low
    return [float(v) for v in ticks if low - 1e-9 * span <= v <= high + 1e-9 * span]
