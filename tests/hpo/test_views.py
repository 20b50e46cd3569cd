"""Views of a study: best-so-far against hand-made studies (failed, pruned and running trials,
both directions, trials, seconds and steps), the plotted lines and seed bands equal to the
numbers they draw, parallel coordinates at `to_unit` of each trial, and the OptimizeResult
fed to scikit-optimize's own plots."""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from effdl.hpo.space import Categorical, Float, Int, to_unit
from effdl.hpo.study import Study, minimize
from effdl.hpo.views import (
    best_so_far,
    plot_best_so_far,
    plot_parallel_coordinates,
    to_optimize_result,
)

SPACE = {
    "lr": Float(1e-4, 1e-1, log=True),
    "width": Int(8, 64),
    "act": Categorical(("relu", "tanh", "gelu")),
}

matplotlib.use("Agg")  # skopt's plots draw with pyplot


def point(i: int) -> dict:
    """A distinct valid point of SPACE for trial i."""
    acts = ("relu", "tanh", "gelu")
    return {"lr": 10.0 ** (-4 + 3 * (i % 7) / 6), "width": 8 + 7 * (i % 9), "act": acts[i % 3]}


def bowl(params):
    penalty = {"relu": 0.0, "tanh": 0.1, "gelu": 0.05}[params["act"]]
    return (math.log10(params["lr"]) + 2) ** 2 + (params["width"] - 32) ** 2 / 1000 + penalty


def hand_made(direction="minimize", values=(None, 5.0, 7.0, None, 2.0), *, pruned=None):
    """A study told `values` in order (None: failed), then a pruned trial whose value would
    be the best, then a trial left running."""
    study = Study(SPACE, direction=direction)
    for i, value in enumerate(values):
        trial = study.ask(point(i))
        if value is None:
            study.tell(trial, error="diverged", seconds=0.5)
        else:
            study.tell(trial, value, seconds=1.0 + i)
    if pruned is not None:
        trial = study.ask(point(len(values)))
        study.report(trial, 1, pruned)
        study.tell(trial, state="pruned", seconds=0.25)
    study.ask(point(len(values) + 1))  # still running
    return study


@pytest.fixture(autouse=True)
def close_pyplot_figures():
    yield
    plt.close("all")


# -- best_so_far -------------------------------------------------------------------------------


def test_best_so_far_minimize_skips_failed_pruned_and_running_trials():
    study = hand_made(pruned=-100.0)
    # failed (before any complete: left out), 5, 7, failed, 2, pruned at -100, running
    assert best_so_far(study) == [5.0, 5.0, 5.0, 2.0, 2.0]
    assert best_so_far(study.trials, direction="minimize") == [5.0, 5.0, 5.0, 2.0, 2.0]


def test_best_so_far_maximize():
    study = hand_made("maximize", (1.0, 3.0, 2.0, None, 4.0), pruned=100.0)
    assert best_so_far(study) == [1.0, 3.0, 3.0, 3.0, 4.0, 4.0]
    # The same trials read as a minimisation keep the first value until a lower one comes.
    assert best_so_far(study.trials, direction="minimize") == [1.0] * 6


def test_best_so_far_checks_its_input():
    study = hand_made()
    with pytest.raises(ValueError, match="direction must be one of .* got None"):
        best_so_far(study.trials)
    with pytest.raises(ValueError, match="direction must be None or the study's own"):
        best_so_far(study, direction="maximize")
    with pytest.raises(TypeError, match="study_or_trials must be a Study or a sequence"):
        best_so_far({"a": 1})
    only_failed = Study(SPACE)
    only_failed.tell(point(0), error="diverged")
    with pytest.raises(ValueError, match="at least one complete trial; the study has 1 failed"):
        best_so_far(only_failed)


# -- plot_best_so_far --------------------------------------------------------------------------


def test_plotted_line_is_best_so_far_against_trials_seconds_and_steps():
    study = hand_made(pruned=-100.0)
    fig = plot_best_so_far({"random": study})
    assert isinstance(fig, Figure)
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_ydata()) == best_so_far(study)
    # The first trial failed, so the curve starts at the second finished trial.
    assert list(line.get_xdata()) == [2, 3, 4, 5, 6]

    (line,) = plot_best_so_far({"random": study}, against="seconds").axes[0].get_lines()
    seconds = np.cumsum([0.5, 2.0, 3.0, 0.5, 5.0, 0.25])  # trials 0..5 as told
    np.testing.assert_allclose(line.get_xdata(), seconds[1:])
    assert list(line.get_ydata()) == best_so_far(study)

    stepped = Study(SPACE)
    for i, (steps, value) in enumerate([(3, 4.0), (1, None), (2, 1.0)]):
        trial = stepped.ask(point(i))
        for step in range(1, steps + 1):
            stepped.report(trial, step, 10.0 - step)
        stepped.tell(trial, value, state="complete" if value else "pruned")
    (line,) = plot_best_so_far({"sha": stepped}, against="steps").axes[0].get_lines()
    assert list(line.get_xdata()) == [3, 4, 6]
    assert list(line.get_ydata()) == [4.0, 4.0, 1.0]


def test_band_of_seeds_is_their_percentiles():
    rng = np.random.default_rng(0)
    seeds = []
    for seed in range(5):
        study = Study(SPACE, seed=seed)
        for i in range(12):
            if (i + seed) % 4:
                study.tell(point(i), float(rng.normal()))
            else:
                study.tell(point(i), state="failed")
        seeds.append(study)
    curves = [best_so_far(s) for s in seeds]
    starts = [12 - len(c) + 1 for c in curves]  # the seeds start at different trials
    assert len(set(starts)) > 1
    grid = np.arange(max(starts), 13)
    values = np.array([c[-len(grid) :] for c in curves])
    low, median, high = np.percentile(values, [25, 50, 75], axis=0)

    ax = plot_best_so_far({"random": seeds, "one": seeds[0]}).axes[0]
    median_line, single_line = ax.get_lines()
    np.testing.assert_array_equal(median_line.get_xdata(), grid)
    np.testing.assert_allclose(median_line.get_ydata(), median)
    assert list(single_line.get_ydata()) == curves[0]
    (band,) = ax.collections
    vertices = np.concatenate([p.vertices for p in band.get_paths()])
    for x, lo, hi in zip(grid, low, high, strict=True):
        at_x = vertices[np.isclose(vertices[:, 0], x), 1]
        assert np.isclose(at_x, lo).any() and np.isclose(at_x, hi).any()
    assert np.isclose(vertices[:, 1].min(), low.min()) and np.isclose(
        vertices[:, 1].max(), high.max()
    )


def test_regret_and_log_axis():
    study = hand_made(values=(None, 5.0, 7.0, None, 2.0))
    ax = plot_best_so_far({"s": study}, regret_to=1.5, log_y=True).axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [3.5, 3.5, 3.5, 0.5])
    assert ax.get_yscale() == "log"
    assert ax.get_ylabel().startswith("regret")
    up = hand_made("maximize", (1.0, 3.0))
    ax = plot_best_so_far({"s": up}, regret_to=10.0).axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [9.0, 7.0])
    with pytest.raises(ValueError, match="regret_to must be an optimum no study beats"):
        plot_best_so_far({"s": study}, regret_to=3.0)
    negative = hand_made(values=(-1.0,))
    with pytest.raises(ValueError, match="log_y needs values >= 0"):
        plot_best_so_far({"s": negative}, log_y=True)


def test_plot_best_so_far_rejects_bad_input():
    study = hand_made()
    with pytest.raises(ValueError, match=r"against must be one of \('trials', 'seconds', "):
        plot_best_so_far({"s": study}, against="budget")
    with pytest.raises(ValueError, match="studies must name at least one study"):
        plot_best_so_far({})
    with pytest.raises(TypeError, match=r"studies\['s'\] must be a Study or a non-empty"):
        plot_best_so_far({"s": []})
    with pytest.raises(ValueError, match="same direction"):
        plot_best_so_far({"a": study, "b": hand_made("maximize")})
    failed = Study(SPACE)
    failed.tell(point(0), error="diverged")
    with pytest.raises(ValueError, match="at least one complete trial"):
        plot_best_so_far({"s": failed})
    untimed = Study(SPACE)
    untimed.tell(point(0), 1.0)  # told with a params dict: no wall time
    with pytest.raises(ValueError, match=r"against='seconds' needs .* trials \[0\]"):
        plot_best_so_far({"s": untimed}, against="seconds")
    with pytest.raises(ValueError, match="against='steps' needs trials that report"):
        plot_best_so_far({"s": untimed}, against="steps")


# -- plot_parallel_coordinates -----------------------------------------------------------------


def test_parallel_coordinates_draw_each_complete_trial_at_its_unit_point():
    study = hand_made(values=(None, 5.0, 7.0, None, 2.0, 3.0, 9.0), pruned=0.5)
    complete = [t for t in study.trials if t.state == "complete"]
    fig = plot_parallel_coordinates(study)
    ax = fig.axes[0]
    (lines,) = [c for c in ax.collections if c.get_gid() == "trials"]
    assert isinstance(lines, LineCollection)
    segments = lines.get_segments()
    assert len(segments) == len(complete) == 5
    worst_first = sorted(complete, key=lambda t: -t.value)
    values = np.array([t.value for t in complete])
    for segment, trial in zip(segments, worst_first, strict=True):
        np.testing.assert_array_equal(segment[:, 0], np.arange(4))
        np.testing.assert_allclose(segment[:-1, 1], to_unit(SPACE, trial.params))
        expected = (trial.value - values.min()) / (values.max() - values.min())
        assert segment[-1, 1] == pytest.approx(expected)
    np.testing.assert_array_equal(lines.get_array(), [t.value for t in worst_first])
    (best,) = [line for line in ax.get_lines() if line.get_gid() == "best"]
    np.testing.assert_allclose(best.get_ydata()[:-1], to_unit(SPACE, study.best_params))
    assert best.get_ydata()[-1] == 0.0  # the lowest value sits at the bottom
    texts = {t.get_text() for t in ax.texts}
    assert {"relu", "tanh", "gelu", "0.0001", "0.001", "0.01", "0.1"} <= texts
    assert [t.get_text() for t in ax.get_xticklabels()][:3] == ["lr", "width", "act"]
    assert len(fig.axes) == 2  # the plot and its colorbar

    by_trial = plot_parallel_coordinates(study, color_by="trial").axes[0]
    (lines,) = [c for c in by_trial.collections if c.get_gid() == "trials"]
    np.testing.assert_array_equal(lines.get_array(), [t.id for t in worst_first])

    up = hand_made("maximize", (1.0, 3.0, 2.0))
    ax = plot_parallel_coordinates(up).axes[0]
    (lines,) = [c for c in ax.collections if c.get_gid() == "trials"]
    np.testing.assert_array_equal(lines.get_array(), [1.0, 2.0, 3.0])  # the best on top
    (best,) = [line for line in ax.get_lines() if line.get_gid() == "best"]
    assert best.get_ydata()[-1] == 1.0  # the highest value sits at the top


def test_parallel_coordinates_reject_bad_input():
    with pytest.raises(ValueError, match=r"color_by must be one of \('value', 'trial'\)"):
        plot_parallel_coordinates(hand_made(), color_by="loss")
    failed = Study(SPACE)
    failed.tell(point(0), error="diverged")
    with pytest.raises(ValueError, match="plot_parallel_coordinates needs at least one complete"):
        plot_parallel_coordinates(failed)
    with pytest.raises(TypeError, match="study must be a Study"):
        plot_parallel_coordinates([])


# -- to_optimize_result and skopt's plots -----------------------------------------------------


def test_optimize_result_fields():
    from skopt.space import Categorical as SkCategorical
    from skopt.space import Integer, Real

    space = {**SPACE, "depth": Int(1, 64, log=True), "drop": Float(0.0, 0.5)}
    study = Study(space)
    values = [3.0, None, 1.0, 2.0]
    for i, value in enumerate(values):
        params = {**point(i), "depth": 2**i, "drop": 0.1 * i}
        study.tell(params, value, error=None if value is not None else "diverged")
    study.ask()  # running: left out
    result = to_optimize_result(study)
    assert result.fun == 1.0 == study.best_value
    assert result.x == [study.best_params[name] for name in space]
    complete = [t for t in study.trials if t.state == "complete"]
    assert result.x_iters == [[t.params[n] for n in space] for t in complete]
    np.testing.assert_array_equal(result.func_vals, [3.0, 1.0, 2.0])
    lr, width, act, depth, drop = result.space.dimensions
    assert [d.name for d in result.space.dimensions] == list(space)
    assert isinstance(lr, Real) and lr.prior == "log-uniform" and lr.bounds == (1e-4, 1e-1)
    assert isinstance(width, Integer) and width.prior == "uniform" and width.bounds == (8, 64)
    assert isinstance(act, SkCategorical) and act.categories == ("relu", "tanh", "gelu")
    assert isinstance(depth, Integer) and depth.prior == "log-uniform"
    assert isinstance(drop, Real) and drop.prior == "uniform"
    transformed = result.space.transform(result.x_iters)
    assert transformed.min() >= 0.0 and transformed.max() <= 1.0  # gp_minimize's normalised space
    (model,) = result.models
    assert "Matern" in str(model.kernel_)
    assert model.predict(transformed).shape == (3,)

    down = Study(SPACE, direction="maximize")
    for i, value in enumerate([3.0, 5.0, 4.0]):
        down.tell(point(i), value)
    result = to_optimize_result(down)
    assert result.fun == -5.0
    assert result.x == list(down.best_params.values())
    np.testing.assert_array_equal(result.func_vals, [-3.0, -5.0, -4.0])

    failed = Study(SPACE)
    failed.tell(point(0), error="diverged")
    with pytest.raises(ValueError, match="to_optimize_result needs at least one complete"):
        to_optimize_result(failed)


def test_skopt_plots_accept_a_result_from_our_random_search():
    from skopt.plots import plot_convergence, plot_evaluations, plot_objective

    study = minimize(bowl, SPACE, method="random", n_trials=15, seed=3, verbose=False)
    result = to_optimize_result(study)
    assert len(result.func_vals) == 15
    for plot in (plot_convergence, plot_evaluations, plot_objective):
        axes = plot(result)
        assert all(isinstance(ax, Axes) for ax in np.ravel(axes))
    # The convergence curve skopt draws is our best-so-far.
    fig, ax = plt.subplots()
    plot_convergence(result, ax=ax)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), best_so_far(study))
