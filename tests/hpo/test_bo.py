"""Bayesian optimisation: the Matern 5/2 kernel, the GP's predictions and log marginal likelihood
against scikit-learn's, the hyper-parameter fit (ARD), expected improvement against Monte Carlo,
Branin's minimum in 40 evaluations, valid and new points in a mixed space, batches by the
constant liar, a maximise study, and bad input."""

import math

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from effdl.hpo.bo import (
    BOSampler,
    GaussianProcess,
    bayes_opt,
    default_n_initial,
    expected_improvement,
    log_expected_improvement,
    lower_confidence_bound,
    matern52,
    optimize_acquisition,
)
from effdl.hpo.space import Categorical, Float, Int, check_params, from_unit, to_unit
from effdl.hpo.study import Study, minimize

BRANIN_MIN = 0.397887
BRANIN_SPACE = {"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)}
MIXED_SPACE = {"width": Int(0, 9), "act": Categorical(("relu", "tanh", "gelu"))}


def branin(params):
    # Branin-Hoo in its standard form (Dixon and Szego 1978): minimum 0.397887 at (-pi, 12.275),
    # (pi, 2.275) and (9.42478, 2.475).
    x1, x2 = params["x1"], params["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def mixed_loss(params):
    return (params["width"] - 6) ** 2 + {"relu": 3.0, "tanh": 0.0, "gelu": 1.0}[params["act"]]


def concave(params):
    return 2.0 - (params["a"] - 0.3) ** 2 - (params["b"] + 1.0) ** 2


def test_matern52_equals_sklearns_constant_times_matern():
    rng = np.random.default_rng(0)
    a, b = rng.random((7, 3)), rng.random((5, 3))
    scales, variance = np.array([0.2, 0.9, 3.0]), 1.7
    theirs = ConstantKernel(variance) * Matern(length_scale=scales, nu=2.5)
    np.testing.assert_allclose(matern52(a, b, scales, variance), theirs(a, b), rtol=1e-12)
    # one lengthscale for all dimensions, and a point against itself
    np.testing.assert_allclose(matern52(a, a, 0.5), Matern(0.5, nu=2.5)(a), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.diag(matern52(a, a, scales, variance)), variance)


def _fixed_gps(x, y, scales, variance, noise):
    theta = np.concatenate([np.log(scales), [math.log(variance), math.log(noise)]])
    ours = GaussianProcess().fit(x, y, theta=theta)
    signal = ConstantKernel(variance) * Matern(length_scale=scales, nu=2.5)
    # scikit-learn standardises y as we do (mean, population std) with normalize_y=True; the
    # WhiteKernel's noise then enters its predictive variance, while `alpha` enters only the fit.
    with_white = GaussianProcessRegressor(
        signal + WhiteKernel(noise), optimizer=None, normalize_y=True, alpha=0.0
    ).fit(x, y)
    with_alpha = GaussianProcessRegressor(
        signal, optimizer=None, normalize_y=True, alpha=noise
    ).fit(x, y)
    return ours, with_white, with_alpha


def test_predictions_and_likelihood_equal_sklearns_at_fixed_hyperparameters():
    rng = np.random.default_rng(1)
    x = rng.random((20, 3))
    y = 5 * np.sin(6 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * rng.standard_normal(20) + 40
    scales, variance, noise = np.array([0.3, 0.7, 2.0]), 1.7, 0.05
    ours, with_white, with_alpha = _fixed_gps(x, y, scales, variance, noise)
    test = rng.random((30, 3))

    mean, std = ours.predict(test, include_noise=True)
    their_mean, their_std = with_white.predict(test, return_std=True)
    np.testing.assert_allclose(mean, their_mean, atol=1e-6)
    np.testing.assert_allclose(std, their_std, atol=1e-6)
    mean, std = ours.predict(test)  # the noise-free function's std
    their_mean, their_std = with_alpha.predict(test, return_std=True)
    np.testing.assert_allclose(mean, their_mean, atol=1e-6)
    np.testing.assert_allclose(std, their_std, atol=1e-6)

    value, gradient = ours.log_marginal_likelihood(eval_gradient=True)
    their_value, their_gradient = with_white.log_marginal_likelihood(
        with_white.kernel_.theta, eval_gradient=True
    )
    assert value == pytest.approx(their_value, abs=1e-6)
    # theirs is ordered [log constant, log lengthscales, log noise]; ours puts lengthscales first
    np.testing.assert_allclose(gradient, their_gradient[[1, 2, 3, 0, 4]], atol=1e-6)


def test_fit_raises_the_likelihood_and_finds_short_and_long_lengthscales():
    rng = np.random.default_rng(2)
    x = rng.random((25, 1))
    wiggly = GaussianProcess().fit(x, np.sin(20 * x[:, 0]), rng=rng)
    smooth = GaussianProcess().fit(x, np.sin(2 * x[:, 0]), rng=rng)
    assert wiggly.log_marginal_likelihood() > wiggly.log_marginal_likelihood(wiggly.theta_initial)
    assert wiggly.lengthscales[0] < 0.5 < 1.0 < smooth.lengthscales[0]
    # ARD: the second input is ignored by the function, so its lengthscale grows long
    x2 = rng.random((30, 2))
    ard = GaussianProcess().fit(x2, np.sin(12 * x2[:, 0]), rng=rng)
    assert ard.lengthscales[0] < 0.5 and ard.lengthscales[1] > 5.0
    assert ard.log_marginal_likelihood() > ard.log_marginal_likelihood(ard.theta_initial)
    # a noise-free function gets a tiny noise; the mean interpolates the data
    mean, std = ard.predict(x2)
    np.testing.assert_allclose(mean, np.sin(12 * x2[:, 0]), atol=1e-2)
    assert ard.noise < 1e-3 and np.all(std < 0.05)


def test_expected_improvement_matches_monte_carlo_and_its_limits():
    rng = np.random.default_rng(3)
    for mean, std, best, xi in [(0.0, 1.0, 0.0, 0.0), (1.0, 0.5, 0.2, 0.0), (-2.0, 3.0, 1.0, 0.5)]:
        draws = rng.normal(mean, std, 200_000)
        estimate = np.mean(np.maximum(best - xi - draws, 0.0))
        assert float(expected_improvement(mean, std, best, xi)) == pytest.approx(estimate, rel=0.01)
    # std == 0: the improvement itself, or nothing
    np.testing.assert_allclose(
        expected_improvement([0.0, 2.0], [0.0, 0.0], best=1.0), [1.0, 0.0], atol=0
    )
    # log EI agrees with EI, and stays finite far below the incumbent where EI underflows
    means = np.array([-1.0, 0.0, 3.0, 10.0])
    np.testing.assert_allclose(
        np.exp(log_expected_improvement(means, 1.0, best=0.0)),
        expected_improvement(means, 1.0, best=0.0),
        rtol=1e-9,
    )
    assert expected_improvement(60.0, 1.0, best=0.0) == 0.0
    assert np.isfinite(log_expected_improvement(60.0, 1.0, best=0.0))
    assert log_expected_improvement(60.0, 1.0, 0.0) < log_expected_improvement(50.0, 1.0, 0.0)
    # EI falls as the mean rises and grows with the std; LCB the other way round
    grid = np.linspace(-2, 2, 9)
    assert np.all(np.diff(expected_improvement(grid, 1.0, best=0.0)) < 0)
    assert np.all(np.diff(expected_improvement(0.5, np.linspace(0.1, 2, 9), best=0.0)) > 0)
    assert np.all(np.diff(lower_confidence_bound(grid, 1.0)) > 0)
    assert np.all(np.diff(lower_confidence_bound(0.0, np.linspace(0, 2, 9), beta=2.0)) < 0)
    assert float(lower_confidence_bound(1.0, 0.5, beta=2.0)) == 0.0


def test_bo_finds_branins_minimum_within_005_in_40_evaluations_for_most_seeds():
    regrets = []
    for seed in range(5):
        study = minimize(branin, BRANIN_SPACE, method="bo", n_trials=40, seed=seed, verbose=False)
        regrets.append(study.best_value - BRANIN_MIN)
    assert min(regrets) >= -1e-6
    assert sum(r < 0.05 for r in regrets) >= 4, regrets


def test_mixed_space_suggestions_are_valid_and_never_repeat():
    study = minimize(mixed_loss, MIXED_SPACE, method="bo", n_trials=25, seed=0, verbose=False)
    points = [t.params for t in study.trials]
    assert len(points) == 25
    for params in points:
        assert check_params(MIXED_SPACE, params) == params
    assert len({(p["width"], p["act"]) for p in points}) == 25
    assert study.best_params == {"width": 6, "act": "tanh"}


def test_the_acquisition_is_maximised_at_a_valid_code_of_the_space():
    space = {**MIXED_SPACE, "lr": Float(1e-4, 1e-1, log=True)}
    rng = np.random.default_rng(4)
    x = np.array([to_unit(space, {"width": w, "act": "relu", "lr": 1e-3}) for w in range(0, 10, 2)])
    gp = GaussianProcess().fit(x, (x[:, 0] - 0.5) ** 2, rng=rng)
    for acquisition in ("ei", "lcb", "ucb"):
        u = optimize_acquisition(gp, 0.0, rng, acquisition=acquisition, space=space, exclude=x)
        np.testing.assert_allclose(to_unit(space, from_unit(space, u)), u, atol=1e-12)
        assert not np.any(np.all(np.abs(x - u) < 1e-9, axis=1))


def test_suggest_batch_gives_distinct_valid_points_and_running_trials_are_avoided():
    study = Study(BRANIN_SPACE, sampler=BOSampler(), seed=5)
    for _ in range(8):
        trial = study.ask()
        study.tell(trial, branin(trial.params))
    batch = BOSampler().suggest_batch(BRANIN_SPACE, study.trials, np.random.default_rng(0), 4)
    codes = np.array([to_unit(BRANIN_SPACE, p) for p in batch])
    assert len(batch) == 4 and all(check_params(BRANIN_SPACE, p) == p for p in batch)
    assert np.min(np.abs(codes[:, None, :] - codes[None, :, :]).sum(-1) + np.eye(4)) > 1e-3
    # in a study, a trial still running is a point taken: the next ask goes elsewhere
    # (without it, both asks polish to the same maximiser, a few 1e-6 apart)
    first, second = study.ask(), study.ask()
    gap = np.abs(to_unit(BRANIN_SPACE, first.params) - to_unit(BRANIN_SPACE, second.params))
    assert gap.max() > 1e-3
    # in a small discrete space a batch never repeats a point, evaluated or in the batch
    small = Study(MIXED_SPACE, sampler=BOSampler(n_initial=3), seed=1)
    for _ in range(6):
        trial = small.ask()
        small.tell(trial, mixed_loss(trial.params))
    batch = BOSampler(n_initial=3).suggest_batch(
        MIXED_SPACE, small.trials, np.random.default_rng(1), 5
    )
    keys = {(p["width"], p["act"]) for p in batch + [t.params for t in small.trials]}
    assert len(keys) == 11


def test_a_maximise_study_finds_the_top_of_a_concave_function():
    space = {"a": Float(-1.0, 1.0), "b": Float(-2.0, 2.0)}
    study = minimize(concave, space, method="bo", direction="maximize", n_trials=20, verbose=False)
    assert study.best_value > 2.0 - 1e-3
    assert study.best_params["a"] == pytest.approx(0.3, abs=0.03)


def test_bayes_opt_tries_the_same_points_as_a_bo_study():
    history = bayes_opt(branin, BRANIN_SPACE, 8, seed=3)
    study = minimize(branin, BRANIN_SPACE, method="bo", n_trials=8, seed=3, verbose=False)
    assert [p for p, _ in history] == [t.params for t in study.trials]
    assert [v for _, v in history] == [t.value for t in study.trials]
    assert default_n_initial(2) == 5 and default_n_initial(6) == 7


def test_bad_input_is_refused_with_a_message_that_names_it():
    with pytest.raises(ValueError, match=r"acquisition must be one of \('ei', 'lcb', 'ucb'\)"):
        BOSampler(acquisition="pi")
    with pytest.raises(ValueError, match="n_initial must be a positive int, got 0"):
        BOSampler(n_initial=0)
    with pytest.raises(ValueError, match="direction must be one of"):
        BOSampler(direction="up")
    with pytest.raises(ValueError, match="kappa must be a finite number >= 0"):
        BOSampler(kappa=-1.0)
    with pytest.raises(ValueError, match=r"method must be one of \('grid', 'random', 'bo'\)"):
        minimize(branin, BRANIN_SPACE, method="tpe", verbose=False)
    with pytest.raises(ValueError, match="direction must be one of"):
        minimize(branin, BRANIN_SPACE, method="bo", direction="down", verbose=False)
    gp = GaussianProcess()
    with pytest.raises(RuntimeError, match="not fitted"):
        gp.predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        gp.fit(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        gp.fit(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        gp.fit(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match="y must be finite"):
        gp.fit(np.zeros((2, 1)), [0.0, np.nan])
    gp.fit(np.zeros((1, 2)), [1.0])  # one point is enough
    with pytest.raises(ValueError, match="x must have 2 columns"):
        gp.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="theta must be 4 finite"):
        gp.log_marginal_likelihood(np.zeros(3))
    with pytest.raises(ValueError, match="a and b must have the same number of columns"):
        matern52(np.zeros((2, 2)), np.zeros((2, 3)), 1.0)
    with pytest.raises(ValueError, match="lengthscales must be one number or 2 numbers"):
        matern52(np.zeros((2, 2)), np.zeros((2, 2)), [1.0, 0.0])
    with pytest.raises(ValueError, match="mean and std must have the same shape"):
        expected_improvement(np.zeros(3), np.ones(2), best=0.0)
    with pytest.raises(ValueError, match="std must be >= 0"):
        expected_improvement(0.0, -1.0, best=0.0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        BOSampler().suggest_batch(BRANIN_SPACE, [], np.random.default_rng(0), 0)


def test_kit_bo_and_skopt_gp_minimize_both_find_forresters_global_basin():
    # The cross-check against the production library: on Forrester's function (a local
    # minimum near x = 0.14, the global one near 0.757), 12 evaluations from 4 random points
    # bring both to the global basin.
    from skopt import gp_minimize

    def forrester(x):
        return float((6 * x - 2) ** 2 * np.sin(12 * x - 4))

    space = {"x": Float(0.0, 1.0)}
    kit = bayes_opt(lambda p: forrester(p["x"]), space, 12, seed=0, n_initial=4)
    theirs = gp_minimize(
        lambda v: forrester(v[0]), [(0.0, 1.0)], n_calls=12, n_initial_points=4, random_state=0
    )
    kit_best = min(kit, key=lambda pv: pv[1])[0]["x"]
    assert abs(kit_best - 0.757) < 0.05, kit_best
    assert abs(theirs.x[0] - 0.757) < 0.05, theirs.x
