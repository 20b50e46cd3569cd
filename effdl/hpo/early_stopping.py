"""Early stopping of one run and of trials in a search: patience on a validation curve
(Prechelt 1998) and the median stopping rule of Google Vizier (Golovin et al. 2017), which
stops a trial whose best value so far is worse than the median of the completed trials' running
averages at the same step. Start with `stop_epoch`, then `median_stopping_rule` and
`MedianStopper` (the rule with a grace period, for a training loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from effdl._checks import check_in, check_non_negative_int, check_positive_int

#: The directions the median rule compares in.
DIRECTIONS = ("minimize", "maximize")


def stop_epoch(losses: Sequence[float], patience: int, min_delta: float = 0.0) -> int | None:
    """Return the epoch (0-based index into `losses`) at which patience-based early stopping
    stops training, or None if it never stops within `losses`.

    The rules, exactly:

    - Epoch 0 always improves: it sets the best loss so far.
    - A later epoch improves if its loss is below the best so far by MORE than `min_delta`
      (`loss < best - min_delta`); a gain of exactly `min_delta`, an equal loss, a worse loss
      and a NaN or inf (a diverged epoch) do not count. Only an improving epoch updates the
      best, so several small gains in a row are each measured against the last improvement.
    - Training stops at the epoch that completes a run of `patience` non-improving epochs in a
      row (counted since the last improvement, the stopping epoch included); with `patience`
      0 it stops at the first epoch that does not improve, as with `patience` 1 (Keras
      `EarlyStopping` behaves the same way). The weights to keep are those of the best epoch.

    Parameters
    ----------
    losses : validation losses, one per epoch (lower is better).
    patience : int >= 0, the number of non-improving epochs in a row that stops training.
    min_delta : float >= 0, the smallest gain that counts as an improvement (exclusive).

    Source: Prechelt 1998, "Early Stopping - But When?", in Neural Networks: Tricks of the
    Trade, LNCS 1524, section 2 (stopping criteria); Goodfellow et al. 2016, "Deep Learning",
    Algorithm 7.1 (the patience loop).
    """
    values = _curve("losses", losses, allow_empty=True, allow_non_finite=True)
    patience = check_non_negative_int("patience", patience)
    if isinstance(min_delta, bool) or not isinstance(min_delta, int | float):
        raise TypeError(f"min_delta must be a number >= 0, got {min_delta!r}")
    if not (math.isfinite(min_delta) and min_delta >= 0):
        raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
    best = math.inf
    bad_in_a_row = 0
    for epoch, loss in enumerate(values):
        if loss < best - min_delta:
            best, bad_in_a_row = loss, 0
            continue
        bad_in_a_row += 1
        if bad_in_a_row >= max(patience, 1):
            return epoch
    return None


def median_stopping_rule(
    completed_curves: Sequence[Sequence[float]],
    curve: Sequence[float],
    step: int,
    *,
    direction: str = "minimize",
) -> bool:
    """Return True if the pending trial whose values are `curve` should stop at `step`.

    It stops if its best value so far (over steps 0..step) is strictly worse than the median of
    the running averages at `step` of the completed trials' curves; a completed curve's running
    average at `step` is the mean of its values at steps 0..step. Only completed curves that
    reached `step` (longer than `step`) count; with none, the trial never stops. A best value
    equal to the median does not stop it. The median of an even number of averages is the mean
    of the two middle ones (`numpy.median`).

    Parameters
    ----------
    completed_curves : the curves of completed trials, each a sequence of finite values
        indexed by step (0-based); they may have different lengths.
    curve : the pending trial's values at steps 0, 1, ..., at least up to `step`.
    step : int >= 0, the step at which to decide.
    direction : "minimize" (lower is better) or "maximize".

    Source: Golovin et al. 2017, "Google Vizier: A Service for Black-Box Optimization", KDD,
    section 3.2.2 (automated early stopping: the median stopping rule).
    """
    direction = check_in("direction", direction, DIRECTIONS)
    step = check_non_negative_int("step", step)
    pending = _curve("curve", curve)
    if len(pending) <= step:
        raise ValueError(
            f"curve must have a value at step {step} (length > {step}), got length {len(pending)}"
        )
    if isinstance(completed_curves, str | bytes) or not isinstance(completed_curves, Sequence):
        raise TypeError(
            f"completed_curves must be a sequence of curves, got {type(completed_curves).__name__}"
        )
    averages = []
    for i, done in enumerate(completed_curves):
        values = _curve(f"completed_curves[{i}]", done, allow_empty=True)
        if len(values) > step:
            averages.append(float(np.mean(values[: step + 1])))
    if not averages:
        return False
    median = float(np.median(averages))
    so_far = pending[: step + 1]
    if direction == "minimize":
        return float(np.min(so_far)) > median
    return float(np.max(so_far)) < median


class MedianStopper:
    """The median stopping rule for a training loop: call `should_stop(curve, step,
    completed_curves)` after each step of a trial, and stop the trial when it returns True.

    Parameters
    ----------
    direction : "minimize" or "maximize".
    min_completed : int >= 1, the fewest completed curves that must have reached `step`
        before the rule may stop a trial (one curve is a noisy median).
    grace_steps : int >= 0, the rule never stops a trial at a step below this one (early
        values say little about the final one).

    Source: Golovin et al. 2017, "Google Vizier", section 3.2.2.
    """

    def __init__(
        self, direction: str = "minimize", min_completed: int = 1, grace_steps: int = 0
    ) -> None:
        self.direction = check_in("direction", direction, DIRECTIONS)
        self.min_completed = check_positive_int("min_completed", min_completed)
        self.grace_steps = check_non_negative_int("grace_steps", grace_steps)

    def should_stop(
        self,
        curve: Sequence[float],
        step: int,
        completed_curves: Sequence[Sequence[float]],
    ) -> bool:
        """Return True if the trial with values `curve` should stop at `step`: `step` is at
        least `grace_steps`, at least `min_completed` completed curves reached `step`, and
        `median_stopping_rule` says stop.

        Source: Golovin et al. 2017, "Google Vizier", section 3.2.2.
        """
        step = check_non_negative_int("step", step)
        if step < self.grace_steps:
            return False
        reached = sum(len(done) > step for done in completed_curves)
        if reached < self.min_completed:
            return False
        return median_stopping_rule(completed_curves, curve, step, direction=self.direction)

    def __repr__(self) -> str:
        return (
            f"MedianStopper(direction={self.direction!r}, min_completed={self.min_completed}, "
            f"grace_steps={self.grace_steps})"
        )


def _curve(
    name: str, values: object, *, allow_empty: bool = False, allow_non_finite: bool = False
) -> np.ndarray:
    # A 1-D float array of `values`; a diverged run's losses may hold NaN or inf where allowed.
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not allow_empty and array.size == 0:
        raise ValueError(f"{name} must hold at least one value, got none")
    if not allow_non_finite and not np.isfinite(array).all():
        raise ValueError(f"{name} values must be finite, got {values!r}")
    return array
