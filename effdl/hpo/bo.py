"""Bayesian optimisation: a Gaussian process (GP) models the objective over the unit cube, and an
acquisition (expected improvement, or a lower confidence bound) chooses where to evaluate next,
weighing the model's mean against its uncertainty (Snoek, Larochelle and Adams 2012; the GP as
in Rasmussen and Williams 2006). Start with `bayes_opt`, then `BOSampler.suggest`, then
`GaussianProcess` and `expected_improvement`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.optimize import minimize as scipy_minimize
from scipy.special import erfcx, ndtr
from threadpoolctl import ThreadpoolController

from effdl._checks import check_in, check_non_negative_int, check_positive_int
from effdl.hpo.space import Categorical, Float, Int, Space, check_space, from_unit, sample, to_unit

#: The acquisitions `BOSampler` knows. All are for minimisation: "ei" is expected improvement;
#: "lcb" and "ucb" both mean mean - kappa * std (GP-UCB of Srinivas et al. 2010, written for
#: maximisation, becomes a lower confidence bound when the objective is minimised).
ACQUISITIONS = ("ei", "lcb", "ucb")
#: The fantasised values `suggest_batch` gives points chosen but not yet evaluated: a constant
#: (the smallest, mean or largest value seen) or the GP's own mean ("believer").
LIARS = ("min", "mean", "max", "believer")
#: The directions a `BOSampler` optimises in (as a study's).
DIRECTIONS = ("minimize", "maximize")
#: Confidence-bound weight on the std: 1.96, a two-sided 95% normal interval (skopt's default).
DEFAULT_KAPPA = 1.96
#: Bounds of the GP's hyper-parameters for inputs in the unit cube and standardised targets:
#: lengthscales from a hundredth of the cube to ten cubes, signal variance around 1 (the
#: targets' variance), noise variance from nearly none (a deterministic objective) to all of it.
LENGTHSCALE_BOUNDS = (1e-2, 1e1)
VARIANCE_BOUNDS = (1e-2, 1e2)
NOISE_BOUNDS = (1e-6, 1.0)
#: Random points at which the acquisition is scored, and how many of the best are then polished
#: by L-BFGS-B.
N_CANDIDATES = 2000
N_POLISH = 5
#: Unit-cube points closer than this in every coordinate count as the same point.
SAME_POINT = 1e-9

_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2.0 * math.pi)


# Defined before the public functions because they wear it as a decorator.
def _one_blas_thread(function: Callable) -> Callable:
    # The GP's matrices are small (tens of rows): BLAS threads cost more than they save, and on
    # a busy machine they cost 5-50 times the work itself, so each public entry point runs with
    # one BLAS thread (threadpoolctl, a dependency of scikit-learn; about 10 us per call).
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _blas_controller().limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapper


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def matern52(
    a: np.ndarray, b: np.ndarray, lengthscales: float | np.ndarray, variance: float = 1.0
) -> np.ndarray:
    """Return the (n, m) matrix of the ARD Matern 5/2 kernel between the rows of `a` (n, d) and
    `b` (m, d): variance * (1 + sqrt(5) r + 5 r^2 / 3) * exp(-sqrt(5) r), where r is the
    distance between the two rows with coordinate i divided by `lengthscales[i]` (one
    lengthscale per dimension, or one number for all).

    Source: Rasmussen and Williams 2006, "Gaussian Processes for Machine Learning", eq. 4.17;
    Snoek et al. 2012, section 3.1 (the ARD Matern 5/2 kernel for Bayesian optimisation).
    """
    a, b = _as_points("a", a), _as_points("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must have the same number of columns, got {a.shape[1]} and {b.shape[1]}"
        )
    lengthscales = _check_lengthscales(lengthscales, a.shape[1])
    if isinstance(variance, bool) or not isinstance(variance, int | float | np.floating):
        raise TypeError(f"variance must be a number, got {variance!r}")
    if not (math.isfinite(variance) and variance > 0):
        raise ValueError(f"variance must be a finite number > 0, got {variance!r}")
    return _matern(np.sqrt(_scaled_sqdist(a / lengthscales, b / lengthscales)), float(variance))


def expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """Return the expected improvement E[max(best - xi - Y, 0)] of Y ~ N(mean, std^2) below
    `best` (for minimisation): (best - xi - mean) Phi(z) + std phi(z) with
    z = (best - xi - mean) / std, and max(best - xi - mean, 0) where std == 0. `xi` >= 0 asks
    for an improvement of at least that much (more exploration).

    Source: Jones, Schonlau and Welch 1998, "Efficient Global Optimization of Expensive
    Black-Box Functions", J. Global Optimization (the closed form of EI); Snoek et al. 2012,
    section 2.2.
    """
    mean, std, best, xi = _check_acquisition_input(mean, std, best, xi)
    improvement = best - xi - mean
    positive = std > 0
    safe_std = np.where(positive, std, 1.0)
    z = improvement / safe_std
    ei = improvement * ndtr(z) + safe_std * np.exp(-0.5 * z**2 - 0.5 * _LOG_2PI)
    return np.where(positive, np.maximum(ei, 0.0), np.maximum(improvement, 0.0))


def log_expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """Return log(expected_improvement(mean, std, best, xi)), computed without underflow where
    the mean lies many stds above the incumbent `best` (there the expected improvement is
    1e-300 or less, and the plain formula loses every digit to cancellation), so that such
    points can still be ranked; -inf where std == 0 and mean >= best - xi.

    Source: Ament et al. 2023, "Unexpected Improvements to Expected Improvement for Bayesian
    Optimization", NeurIPS (analytic LogEI).
    """
    mean, std, best, xi = _check_acquisition_input(mean, std, best, xi)
    improvement = best - xi - mean
    positive = std > 0
    safe_std = np.where(positive, std, 1.0)
    with np.errstate(divide="ignore"):
        at_zero = np.log(np.maximum(improvement, 0.0))
    log_ei = np.log(safe_std) + _log_h(improvement / safe_std)
    return np.where(positive, log_ei, at_zero)


def lower_confidence_bound(
    mean: np.ndarray, std: np.ndarray, beta: float = DEFAULT_KAPPA
) -> np.ndarray:
    """Return mean - beta * std, the optimistic end of the model's belief for minimisation; the
    next point is the one where it is lowest. A larger `beta` >= 0 explores more. (Srinivas et
    al. write the bound with sqrt(beta); here `beta` multiplies the std directly, as skopt's
    kappa does.)

    Source: Srinivas et al. 2010, "Gaussian Process Optimization in the Bandit Setting: No
    Regret and Experimental Design", ICML (the GP-UCB rule, negated for minimisation).
    """
    mean, std, _, beta = _check_acquisition_input(mean, std, 0.0, beta, name="beta")
    return mean - beta * std


class GaussianProcess:
    """A zero-mean Gaussian process on standardised targets (y minus its mean, over its std),
    with the ARD Matern 5/2 kernel plus a noise variance:
    k(x, x') = variance * matern52(x, x', lengthscales) + noise * [x is x'].

    `fit` sets the hyper-parameters by maximising the log marginal likelihood (L-BFGS-B with
    its analytic gradient, from a default start and `n_restarts` random ones), or takes them
    as given; `predict` returns the posterior mean and std in y's units through one Cholesky
    factor of the training kernel matrix, computed at fit time and reused.

    After `fit`: `theta` (the log hyper-parameters [log lengthscale_1..d, log variance, log
    noise], as `log_marginal_likelihood` takes them), `lengthscales`, `variance`, `noise` (both
    in standardised units), `theta_initial` (the default start of the fit), `x`, `y`, and
    `y_mean`, `y_std` (the standardisation; a std of 0 counts as 1, as scikit-learn does).
    Snoek et al. integrate the hyper-parameters out by slice sampling; a point estimate, as
    here and in skopt's gp_minimize, is cheaper and does well on small budgets.

    Source: Rasmussen and Williams 2006, algorithm 2.1 (prediction), eqs. 5.8-5.9 (the log
    marginal likelihood and its gradient); Snoek et al. 2012, section 3.1.
    """

    def __init__(
        self,
        *,
        n_restarts: int = 2,
        lengthscale_bounds: tuple[float, float] = LENGTHSCALE_BOUNDS,
        variance_bounds: tuple[float, float] = VARIANCE_BOUNDS,
        noise_bounds: tuple[float, float] = NOISE_BOUNDS,
    ) -> None:
        self.n_restarts = check_non_negative_int("n_restarts", n_restarts)
        self.lengthscale_bounds = _check_bounds("lengthscale_bounds", lengthscale_bounds)
        self.variance_bounds = _check_bounds("variance_bounds", variance_bounds)
        self.noise_bounds = _check_bounds("noise_bounds", noise_bounds)
        self.theta: np.ndarray | None = None

    @_one_blas_thread
    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        theta: np.ndarray | None = None,
    ) -> GaussianProcess:
        """Return the GP itself, fitted to points `x` (n, d) and values `y` (n,), n >= 1.

        With `theta` (the log hyper-parameters, length d + 2) the hyper-parameters are taken as
        given; without, they maximise the log marginal likelihood from a default start
        (lengthscales 0.5, variance 1, noise 1e-3) and, with `rng`, `n_restarts` starts drawn
        log-uniformly within the bounds (without `rng`, the default start only).

        Source: Rasmussen and Williams 2006, section 5.4.1 (type-II maximum likelihood).
        """
        x = _as_points("x", x)
        y = np.asarray(y, dtype=float)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"y must have shape ({len(x)},) to match x {x.shape}, got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"y must be finite, got {y[~np.isfinite(y)][:3].tolist()} among it")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be None or a numpy.random.Generator, got {rng!r}")
        d = x.shape[1]
        self.x, self.y = x.copy(), y.copy()
        self.y_mean = float(np.mean(y))
        std = float(np.std(y))
        self.y_std = std if std > 0 else 1.0
        self._z = (y - self.y_mean) / self.y_std
        self._sqdiff = (x[:, None, :] - x[None, :, :]) ** 2
        self.theta_initial = np.concatenate([np.full(d, math.log(0.5)), [0.0, math.log(1e-3)]])
        if theta is not None:
            self.theta = self._check_theta(theta, d)
        else:
            self.theta = self._maximise_likelihood(rng)
        self._factorise()
        return self

    @_one_blas_thread
    def predict(
        self, x: np.ndarray, *, include_noise: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the posterior (mean, std) of the objective at the rows of `x` (m, d), in the
        units of y. The std is that of the noise-free function unless `include_noise`, which
        adds the noise variance (that of a new observation, as scikit-learn's WhiteKernel does).

        Source: Rasmussen and Williams 2006, algorithm 2.1, lines 4-6.
        """
        self._check_fitted()
        x = _as_points("x", x)
        if x.shape[1] != self.x.shape[1]:
            raise ValueError(f"x must have {self.x.shape[1]} columns as in fit, got {x.shape[1]}")
        mean, std = self._predict_standardised(x, include_noise=include_noise)
        return self.y_mean + self.y_std * mean, self.y_std * std

    @_one_blas_thread
    def log_marginal_likelihood(
        self, theta: np.ndarray | None = None, *, eval_gradient: bool = False
    ) -> float | tuple[float, np.ndarray]:
        """Return log p(z | x, theta) of the standardised fitted targets z under the log
        hyper-parameters `theta` (the fitted ones if None): -z^T K^-1 z / 2 - log|K| / 2 -
        n log(2 pi) / 2; with `eval_gradient`, (value, gradient with respect to theta).

        Source: Rasmussen and Williams 2006, eqs. 5.8 and 5.9.
        """
        self._check_fitted()
        theta = self.theta if theta is None else self._check_theta(theta, self.x.shape[1])
        value, gradient = _log_likelihood(theta, self._sqdiff, self._z)
        return (value, gradient) if eval_gradient else value

    @_one_blas_thread
    def condition(self, x: np.ndarray, y: np.ndarray) -> GaussianProcess:
        """Return a new GP with this one's hyper-parameters and standardisation, fitted to the
        training data plus the points `x` (k, d) with values `y` (k,): a cheap update for
        fantasised observations (nothing is re-optimised).

        Source: Ginsbourger, Le Riche and Carraro 2010, "Kriging is well-suited to parallelize
        optimization" (the kriging believer and constant liar condition on fantasised values).
        """
        self._check_fitted()
        x = _as_points("x", x)
        y = np.asarray(y, dtype=float).reshape(-1)
        if x.shape[1] != self.x.shape[1] or len(y) != len(x):
            raise ValueError(
                f"x must be (k, {self.x.shape[1]}) with y of length k, got {x.shape}, {y.shape}"
            )
        new = GaussianProcess(
            n_restarts=self.n_restarts,
            lengthscale_bounds=self.lengthscale_bounds,
            variance_bounds=self.variance_bounds,
            noise_bounds=self.noise_bounds,
        )
        new.x, new.y = np.vstack([self.x, x]), np.concatenate([self.y, y])
        new.y_mean, new.y_std, new.theta_initial = self.y_mean, self.y_std, self.theta_initial
        new._z = (new.y - new.y_mean) / new.y_std
        new._sqdiff = (new.x[:, None, :] - new.x[None, :, :]) ** 2
        new.theta = self.theta.copy()
        new._factorise()
        return new

    @property
    def lengthscales(self) -> np.ndarray:
        """Return the fitted lengthscales, one per input dimension."""
        self._check_fitted()
        return np.exp(self.theta[:-2])

    @property
    def variance(self) -> float:
        """Return the fitted signal variance (of the standardised targets)."""
        self._check_fitted()
        return float(np.exp(self.theta[-2]))

    @property
    def noise(self) -> float:
        """Return the fitted noise variance (of the standardised targets)."""
        self._check_fitted()
        return float(np.exp(self.theta[-1]))

    def __repr__(self) -> str:
        if self.theta is None:
            return f"GaussianProcess(n_restarts={self.n_restarts}, unfitted)"
        scales = np.array2string(self.lengthscales, precision=3)
        return (
            f"GaussianProcess(n={len(self.x)}, lengthscales={scales}, "
            f"variance={self.variance:.3g}, noise={self.noise:.3g})"
        )

    # -- helpers ------------------------------------------------------------------------------

    def _log_bounds(self, d: int) -> np.ndarray:
        bounds = [self.lengthscale_bounds] * d + [self.variance_bounds, self.noise_bounds]
        return np.log(np.array(bounds, dtype=float))

    def _maximise_likelihood(self, rng: np.random.Generator | None) -> np.ndarray:
        d = self.x.shape[1]
        bounds = self._log_bounds(d)
        starts = [np.clip(self.theta_initial, bounds[:, 0], bounds[:, 1])]
        if rng is not None:
            starts += list(rng.uniform(bounds[:, 0], bounds[:, 1], (self.n_restarts, d + 2)))

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            value, gradient = _log_likelihood(theta, self._sqdiff, self._z)
            return -value, -gradient

        best_theta, best_value = starts[0], -loss(starts[0])[0]
        for start in starts:
            result = scipy_minimize(
                loss, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 200}
            )
            if np.isfinite(result.fun) and -result.fun > best_value:
                best_theta, best_value = result.x, -result.fun
        return np.clip(best_theta, bounds[:, 0], bounds[:, 1])

    def _factorise(self) -> None:
        # Algorithm 2.1, lines 2-3: L = cholesky(K + noise I), alpha = L^T \ (L \ z); K^-1 is
        # kept too, for the gradient of the posterior variance when the acquisition is polished.
        n = len(self.x)
        kernel = self._kernel_matrix()
        self._chol = np.linalg.cholesky(kernel)
        self._alpha = cho_solve((self._chol, True), self._z, check_finite=False)
        self._k_inv = cho_solve((self._chol, True), np.eye(n), check_finite=False)

    def _kernel_matrix(self) -> np.ndarray:
        d = self.x.shape[1]
        r = np.sqrt(np.sum(self._sqdiff / np.exp(2 * self.theta[:d]), axis=2))
        kernel = _matern(r, self.variance)
        kernel[np.diag_indices_from(kernel)] += self.noise
        return kernel

    def _predict_standardised(
        self, x: np.ndarray, *, include_noise: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        scales = self.lengthscales
        k_star = _matern(np.sqrt(_scaled_sqdist(x / scales, self.x / scales)), self.variance)
        mean = k_star @ self._alpha
        v = solve_triangular(self._chol, k_star.T, lower=True, check_finite=False)
        var = self.variance + (self.noise if include_noise else 0.0) - np.sum(v**2, axis=0)
        return mean, np.sqrt(np.maximum(var, 0.0))

    def _predict_with_gradient(self, u: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        # Standardised mean and std at one point u (d,) and their gradients with respect to u:
        # d k(u, x_j) / d u = -variance * 5/3 (1 + sqrt5 r) exp(-sqrt5 r) (u - x_j) / l^2.
        diff = u[None, :] - self.x
        inv_sq = np.exp(-2 * self.theta[:-2])
        r = np.sqrt(np.sum(diff**2 * inv_sq, axis=1))
        decay = np.exp(-_SQRT5 * r)
        k_star = self.variance * (1 + _SQRT5 * r + 5.0 / 3.0 * r**2) * decay
        dk = -(self.variance * 5.0 / 3.0 * (1 + _SQRT5 * r) * decay)[:, None] * diff * inv_sq
        mean = float(k_star @ self._alpha)
        d_mean = dk.T @ self._alpha
        k_inv_k = self._k_inv @ k_star
        var = max(self.variance - float(k_star @ k_inv_k), 1e-18)
        std = math.sqrt(var)
        d_std = -(dk.T @ k_inv_k) / std
        return mean, std, d_mean, d_std

    def _check_theta(self, theta: object, d: int) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (d + 2,) or not np.all(np.isfinite(theta)):
            raise ValueError(
                f"theta must be {d + 2} finite log hyper-parameters [log lengthscale x {d}, "
                f"log variance, log noise], got {theta!r}"
            )
        return theta.copy()

    def _check_fitted(self) -> None:
        if self.theta is None:
            raise RuntimeError("the GaussianProcess is not fitted yet: call fit(x, y) first")


@_one_blas_thread
def optimize_acquisition(
    gp: GaussianProcess,
    best: float,
    rng: np.random.Generator,
    *,
    acquisition: str = "ei",
    xi: float = 0.0,
    kappa: float = DEFAULT_KAPPA,
    space: Space | None = None,
    exclude: np.ndarray | None = None,
    n_candidates: int = N_CANDIDATES,
    n_polish: int = N_POLISH,
) -> np.ndarray:
    """Return the unit-cube point (d,) where the acquisition of `gp` is highest: `n_candidates`
    random points drawn with `rng` are scored, and the best `n_polish` are polished by L-BFGS-B
    within [0, 1]^d (analytic gradients; "ei" is maximised as log EI, which keeps a gradient far
    from the incumbent `best`, the smallest value seen).

    With `space`, every candidate is first mapped to a valid point and back
    (`to_unit(space, from_unit(space, u))`), so an integer or a category is scored at the code
    the GP saw for it, and polishing moves only the Float coordinates. Points within
    `SAME_POINT` of a row of `exclude` (those already evaluated or pending) are not returned
    while any new candidate is left.

    Source: Snoek et al. 2012, section 2 (maximising the acquisition over the unit cube);
    Ament et al. 2023 (optimising log EI rather than EI).
    """
    if not isinstance(gp, GaussianProcess) or gp.theta is None:
        raise TypeError(f"gp must be a fitted GaussianProcess, got {gp!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    check_in("acquisition", acquisition, ACQUISITIONS)
    n_candidates = check_positive_int("n_candidates", n_candidates)
    n_polish = check_non_negative_int("n_polish", n_polish)
    xi = _check_non_negative("xi", xi)
    kappa = _check_non_negative("kappa", kappa)
    d = gp.x.shape[1]
    if space is not None:
        space = check_space(space)
        if len(space) != d:
            raise ValueError(f"space has {len(space)} dimensions but the GP was fitted on {d}")
    exclude = np.empty((0, d)) if exclude is None else np.asarray(exclude, dtype=float)
    if exclude.ndim != 2 or exclude.shape[1] != d:
        raise ValueError(f"exclude must have shape (k, {d}), got {exclude.shape}")

    # Scores are computed on the GP's standardised scale, where best and xi are rescaled too.
    score = _Scorer(gp, acquisition, (best - gp.y_mean) / gp.y_std, xi / gp.y_std, kappa)
    candidates = rng.random((n_candidates, d))
    if space is not None:
        candidates = _snap(space, candidates)
    values = score.many(candidates)

    free = np.ones(d, dtype=bool)
    if space is not None:
        free = np.array([isinstance(dim, Float) for dim in space.values()])
    polished = []
    if free.any() and n_polish:
        for start in candidates[np.argsort(-values)[:n_polish]]:
            # A fixed coordinate (an integer or a category) gets the bounds [its code, its code].
            bounds = [(0.0, 1.0) if f else (c, c) for f, c in zip(free, start, strict=True)]
            result = scipy_minimize(
                score.one_negated,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 50},
            )
            polished.append(np.clip(result.x, 0.0, 1.0))
    if polished:
        polished = np.array(polished)
        candidates = np.vstack([candidates, polished])
        values = np.concatenate([values, score.many(polished)])

    new = ~_matches(candidates, exclude)
    if new.any():
        values = np.where(new, values, -np.inf)
    return candidates[int(np.argmax(values))].copy()


class BOSampler:
    """Proposes the points of a study by Bayesian optimisation: random points (drawn with the
    trial's generator) until `n_initial` trials are complete, then the maximiser of the
    acquisition under a GP fitted to the complete trials' unit-cube points and values (negated
    for "maximize"). Failed and pruned trials are never proposed again but do not enter the
    GP; trials still running enter it with a fantasised value (`liar`), so parallel workers get
    distinct points. Stateless between calls: the same trials and generator give the same
    point, so a resumed study proposes what an uninterrupted one would.

    Parameters
    ----------
    acquisition : "ei" (expected improvement), "lcb" or "ucb" (both mean - kappa * std).
    n_initial : random trials before the GP takes over; None means max(5, d + 1) for a space
        of d dimensions (a GP with fewer points than dimensions cannot place its lengthscales).
    direction : "minimize" or "maximize", as the study's (`minimize(method="bo")` passes it).
    xi : EI's margin, in the objective's units (0: plain EI).
    kappa : the confidence-bound weight on the std.
    liar : the value of a point chosen but not yet evaluated: "min" (the best value seen,
        Ginsbourger et al.'s CL-min), "mean", "max" or "believer" (the GP's own mean).

    Source: Snoek et al. 2012, sections 2-3; Ginsbourger, Le Riche and Carraro 2010, "Kriging
    is well-suited to parallelize optimization" (constant liar, kriging believer).
    """

    def __init__(
        self,
        acquisition: str = "ei",
        n_initial: int | None = None,
        direction: str = "minimize",
        xi: float = 0.0,
        kappa: float = DEFAULT_KAPPA,
        liar: str = "min",
    ) -> None:
        self.acquisition = check_in("acquisition", acquisition, ACQUISITIONS)
        self.n_initial = None if n_initial is None else check_positive_int("n_initial", n_initial)
        self.direction = check_in("direction", direction, DIRECTIONS)
        self.xi = _check_non_negative("xi", xi)
        self.kappa = _check_non_negative("kappa", kappa)
        self.liar = check_in("liar", liar, LIARS)

    def suggest(
        self, space: Space, trials: Sequence[Any], rng: np.random.Generator
    ) -> dict[str, Any]:
        """Return the params of the next point to evaluate, given the study's `trials` (each
        with `.params`, `.state` and `.value`), drawing any randomness from `rng`.

        Source: Snoek et al. 2012, section 2 (one step of Bayesian optimisation).
        """
        return self.suggest_batch(space, trials, rng, 1)[0]

    @_one_blas_thread
    def suggest_batch(
        self, space: Space, trials: Sequence[Any], rng: np.random.Generator, n: int
    ) -> list[dict[str, Any]]:
        """Return `n` distinct points to evaluate in parallel: each is the acquisition's
        maximiser once the points before it are added to the GP with a fantasised value (the
        liar), with the hyper-parameters fitted once on the real data.

        Source: Ginsbourger, Le Riche and Carraro 2010, "Kriging is well-suited to parallelize
        optimization", in Computational Intelligence in Expensive Optimization Problems,
        Springer (the kriging believer and constant liar heuristics).
        """
        space = check_space(space)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        n = check_positive_int("n", n)
        done_x, done_y, pending, taken = _read_trials(space, trials)
        sign = -1.0 if self.direction == "maximize" else 1.0
        n_initial = self.n_initial or default_n_initial(len(space))
        if len(done_y) < n_initial:
            points = []
            for _ in range(n):
                params = _new_random_point(space, taken, rng)
                taken = np.vstack([taken, to_unit(space, params)])
                points.append(params)
            return points
        y = sign * done_y
        gp = GaussianProcess().fit(done_x, y, rng=rng)
        if len(pending):
            gp = gp.condition(pending, self._lie(gp, y, pending))
        best = float(np.min(y))
        points = []
        for _ in range(n):
            u = optimize_acquisition(
                gp,
                best,
                rng,
                acquisition=self.acquisition,
                xi=self.xi,
                kappa=self.kappa,
                space=space,
                exclude=taken,
            )
            params = from_unit(space, u)
            code = to_unit(space, params)[None, :]
            if _matches(code, taken).any():  # every candidate was taken: try a random point
                params = _new_random_point(space, taken, rng)
                code = to_unit(space, params)[None, :]
            points.append(params)
            taken = np.vstack([taken, code])
            if len(points) < n:
                gp = gp.condition(code, self._lie(gp, y, code))
        return points

    def _lie(self, gp: GaussianProcess, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        if self.liar == "believer":
            return gp.predict(x)[0]
        constant = {"min": np.min, "mean": np.mean, "max": np.max}[self.liar](y)
        return np.full(len(x), constant)

    def __repr__(self) -> str:
        return (
            f"BOSampler(acquisition={self.acquisition!r}, n_initial={self.n_initial}, "
            f"direction={self.direction!r}, xi={self.xi}, kappa={self.kappa}, "
            f"liar={self.liar!r})"
        )


def default_n_initial(n_dims: int) -> int:
    """Return the number of random trials `BOSampler` runs before the GP by default:
    max(5, n_dims + 1), at least one point more than the GP has lengthscales, and few enough
    that most of a 30-50 trial budget is spent by the model.

    Source: the kit's own choice (skopt's gp_minimize and Optuna's GPSampler start from 10
    random points).
    """
    return max(5, check_positive_int("n_dims", n_dims) + 1)


def bayes_opt(
    objective: Callable[[dict[str, Any]], float],
    space: Space,
    n_calls: int,
    *,
    seed: int = 0,
    acquisition: str = "ei",
    n_initial: int | None = None,
) -> list[tuple[dict[str, Any], float]]:
    """Return the history [(params, value), ...] of `n_calls` evaluations of `objective` chosen
    by Bayesian optimisation (minimisation), in the order tried. Call i draws its randomness
    from `np.random.default_rng([seed, i])`, as trial i of a `Study` does, so this loop tries the
    same points as `minimize(objective, space, method="bo", n_trials=n_calls, seed=seed)`
    with the default `n_initial`. A value that is NaN or infinite is kept in the history and
    left out of the GP, as a failed trial would be.

    Source: Snoek et al. 2012, section 2 (the Bayesian optimisation loop); Brochu, Cora and de
    Freitas 2010, "A Tutorial on Bayesian Optimization of Expensive Cost Functions",
    algorithm 1.
    """
    if not callable(objective):
        raise TypeError(f"objective must be callable, got {type(objective).__name__}")
    space = check_space(space)
    n_calls = check_positive_int("n_calls", n_calls)
    seed = check_non_negative_int("seed", seed)
    sampler = BOSampler(acquisition=acquisition, n_initial=n_initial)
    evaluated: list[_Evaluated] = []
    history = []
    for i in range(n_calls):
        params = sampler.suggest(space, evaluated, np.random.default_rng([seed, i]))
        value = float(objective(params))
        state = "complete" if math.isfinite(value) else "failed"
        evaluated.append(_Evaluated(params, state, value))
        history.append((params, value))
    return history


# -- helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evaluated:
    # What a sampler reads of a trial, for `bayes_opt`'s loop without a Study.
    params: dict[str, Any]
    state: str
    value: float


class _Scorer:
    # The acquisition to maximise, on the standardised scale of `gp`: log EI, or -(mean - kappa
    # std). `many` scores rows; `one_negated` returns (-score, -gradient) for L-BFGS-B.
    def __init__(
        self, gp: GaussianProcess, acquisition: str, best: float, xi: float, kappa: float
    ) -> None:
        self.gp, self.acquisition, self.best, self.xi, self.kappa = gp, acquisition, best, xi, kappa

    def many(self, u: np.ndarray) -> np.ndarray:
        mean, std = self.gp._predict_standardised(u)
        if self.acquisition == "ei":
            return log_expected_improvement(mean, std, self.best, self.xi)
        return -(mean - self.kappa * std)

    def one_negated(self, u: np.ndarray) -> tuple[float, np.ndarray]:
        mean, std, d_mean, d_std = self.gp._predict_with_gradient(u)
        if self.acquisition != "ei":
            return mean - self.kappa * std, d_mean - self.kappa * d_std
        # d log EI / d mean = -Phi(z) / (std h(z)), d log EI / d std = phi(z) / (std h(z)),
        # with EI = std h(z), h(z) = z Phi(z) + phi(z), z = (best - xi - mean) / std.
        z = (self.best - self.xi - mean) / std
        log_h, cdf_ratio, pdf_ratio = (float(t) for t in _h_terms(z))
        value = math.log(std) + log_h
        by_mean, by_std = -cdf_ratio / std, pdf_ratio / std
        return -value, -(by_mean * d_mean + by_std * d_std)


def _log_h(z: np.ndarray) -> np.ndarray:
    # log h(z), h(z) = z Phi(z) + phi(z), so that EI = std h(z).
    return _h_terms(z)[0]


def _h_terms(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # (log h(z), Phi(z) / h(z), phi(z) / h(z)) without cancellation or overflow. For z < 0,
    # h = phi(z) (1 + z m) with m = Phi(z) / phi(z) = sqrt(pi/2) erfcx(-z / sqrt2) (a Mills
    # ratio); far in the tail, 1 + z m = 1/z^2 - 3/z^4 + O(z^-6), which has no cancellation.
    shape = np.shape(z)
    z = np.asarray(z, dtype=float).reshape(-1)
    log_h, cdf_ratio, pdf_ratio = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    log_phi = -0.5 * z**2 - 0.5 * _LOG_2PI
    upper = z >= 0
    zu = z[upper]
    h = zu * ndtr(zu) + np.exp(log_phi[upper])
    log_h[upper] = np.log(h)
    cdf_ratio[upper] = ndtr(zu) / h
    pdf_ratio[upper] = np.exp(log_phi[upper]) / h
    lower = ~upper
    zl = z[lower]
    mills = math.sqrt(math.pi / 2) * erfcx(-zl / math.sqrt(2))
    tail = zl <= -1e3
    relative = 1 + zl * mills
    relative[tail] = 1 / zl[tail] ** 2 - 3 / zl[tail] ** 4
    log_relative = np.log(relative)
    log_relative[~tail] = np.log1p(zl[~tail] * mills[~tail])
    log_h[lower] = log_phi[lower] + log_relative
    cdf_ratio[lower] = mills / relative
    pdf_ratio[lower] = 1 / relative
    return log_h.reshape(shape), cdf_ratio.reshape(shape), pdf_ratio.reshape(shape)


def _log_likelihood(
    theta: np.ndarray, sqdiff: np.ndarray, z: np.ndarray
) -> tuple[float, np.ndarray]:
    # Eq. 5.8: log p = -z^T alpha / 2 - sum log diag L - n log(2 pi) / 2, and eq. 5.9:
    # d log p / d theta_j = tr((alpha alpha^T - K^-1) dK/dtheta_j) / 2, where
    # dK/dlog l_i = variance * 5/3 (1 + sqrt5 r) exp(-sqrt5 r) * (x_i - x'_i)^2 / l_i^2,
    # dK/dlog variance = the Matern part, dK/dlog noise = noise I.
    d = sqdiff.shape[2]
    n = len(z)
    variance, noise = math.exp(theta[d]), math.exp(theta[d + 1])
    scaled = sqdiff / np.exp(2 * theta[:d])
    r = np.sqrt(np.sum(scaled, axis=2))
    decay = np.exp(-_SQRT5 * r)
    matern = variance * (1 + _SQRT5 * r + 5.0 / 3.0 * r**2) * decay
    kernel = matern.copy()
    kernel[np.diag_indices(n)] += noise
    try:
        chol = np.linalg.cholesky(kernel)
    except np.linalg.LinAlgError:
        return -np.inf, np.zeros(d + 2)
    alpha = cho_solve((chol, True), z, check_finite=False)
    value = -0.5 * z @ alpha - np.sum(np.log(np.diag(chol))) - 0.5 * n * _LOG_2PI
    weight = np.outer(alpha, alpha) - cho_solve((chol, True), np.eye(n), check_finite=False)
    slope = variance * 5.0 / 3.0 * (1 + _SQRT5 * r) * decay
    by_lengthscale = 0.5 * np.einsum("ij,ijk->k", weight * slope, scaled)
    by_variance = 0.5 * np.sum(weight * matern)
    by_noise = 0.5 * noise * np.trace(weight)
    return float(value), np.concatenate([by_lengthscale, [by_variance, by_noise]])


def _matern(r: np.ndarray, variance: float) -> np.ndarray:
    return variance * (1 + _SQRT5 * r + 5.0 / 3.0 * r**2) * np.exp(-_SQRT5 * r)


def _scaled_sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # |a_i - b_j|^2 by |a|^2 + |b|^2 - 2 a.b (one matrix product), clipped at 0 against rounding.
    sq = np.sum(a**2, axis=1)[:, None] + np.sum(b**2, axis=1)[None, :] - 2 * a @ b.T
    return np.maximum(sq, 0.0)


def _snap(space: dict, u: np.ndarray) -> np.ndarray:
    # Every row mapped to a valid point of the space and back, column by column (identity on a
    # Float, up to rounding); to_unit is computed once per distinct value.
    u = np.clip(u, 0.0, 1.0)
    for j, dim in enumerate(space.values()):
        if isinstance(dim, Int | Categorical):
            values = [dim.from_unit(x) for x in u[:, j]]
            codes: dict[Any, float] = {}
            u[:, j] = [codes.setdefault(_key(v), dim.to_unit(v)) for v in values]
    return u


def _key(value: Any) -> tuple:
    # Categorical choices 1 and True are equal in Python but distinct choices.
    return (type(value), value)


def _matches(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    # For each row of points, whether it equals a row of others within SAME_POINT.
    if len(others) == 0:
        return np.zeros(len(points), dtype=bool)
    close = np.abs(points[:, None, :] - others[None, :, :]) <= SAME_POINT
    return close.all(axis=2).any(axis=1)


def _read_trials(
    space: dict, trials: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # (complete points, their values, running points, every point asked) in the unit cube.
    d = len(space)
    done_x, done_y, pending, taken = [], [], [], []
    for trial in trials:
        code = to_unit(space, trial.params)
        taken.append(code)
        state = str(trial.state)
        if state == "complete" and trial.value is not None and math.isfinite(trial.value):
            done_x.append(code)
            done_y.append(float(trial.value))
        elif state == "running":
            pending.append(code)

    def matrix(rows: list) -> np.ndarray:
        return np.array(rows, dtype=float).reshape(-1, d)

    return matrix(done_x), np.array(done_y, dtype=float), matrix(pending), matrix(taken)


def _new_random_point(space: dict, taken: np.ndarray, rng: np.random.Generator) -> dict:
    # A random point not yet taken (the first draw in a continuous space); after 100 draws that
    # were all taken (a small discrete space explored), the last draw.
    for _ in range(100):
        params = sample(space, rng)
        if not _matches(to_unit(space, params)[None, :], taken).any():
            break
    return params


def _as_points(name: str, x: object) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (n, d) with n, d >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite, got non-finite entries")
    return x


def _check_lengthscales(lengthscales: object, d: int) -> np.ndarray:
    scales = np.asarray(lengthscales, dtype=float)
    if scales.ndim == 0:
        scales = np.full(d, float(scales))
    if scales.shape != (d,) or not np.all(np.isfinite(scales) & (scales > 0)):
        raise ValueError(
            f"lengthscales must be one number or {d} numbers, all finite and > 0, "
            f"got {lengthscales!r}"
        )
    return scales


def _check_bounds(name: str, bounds: object) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {bounds!r}") from None
    if not (0 < low < high < math.inf):
        raise ValueError(f"{name} must satisfy 0 < low < high < inf, got {bounds!r}")
    return low, high


def _check_non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_acquisition_input(
    mean: object, std: object, best: object, xi: object, *, name: str = "xi"
) -> tuple[np.ndarray, np.ndarray, float, float]:
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    try:
        mean, std = np.broadcast_arrays(mean, std)
    except ValueError:
        raise ValueError(
            f"mean and std must have the same shape, got {mean.shape} and {std.shape}"
        ) from None
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
        raise ValueError("mean and std must be finite")
    if np.any(std < 0):
        raise ValueError(f"std must be >= 0, got {std[std < 0][:3].tolist()} among it")
    if isinstance(best, bool) or not isinstance(best, int | float | np.floating):
        raise TypeError(f"best must be a number, got {best!r}")
    if not math.isfinite(best):
        raise ValueError(f"best must be finite, got {best!r}")
    return mean, std, float(best), _check_non_negative(name, xi)
