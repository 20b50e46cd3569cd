"""Random search: every trial draws each hyper-parameter independently from its distribution.
With the same number of trials as a grid, it tries as many distinct values on every dimension
as there are trials, where the grid tries only a few; when only some dimensions matter, that
is where it wins. Start with `random_search`, then `RandomSampler` for a study.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from effdl._checks import check_positive_int
from effdl.hpo.space import Space, check_space, sample


def random_search(
    objective: Callable[[dict[str, Any]], float],
    space: Space,
    n: int,
    rng: np.random.Generator,
) -> list[tuple[dict[str, Any], float]]:
    """Return the history of `n` trials of random search, [(params, value), ...] in the order
    tried: each point drawn with `rng` from `space` (log-uniform where `log=True`), then
    evaluated by `objective`. The same generator state gives the same history.

    Source: Bergstra and Bengio 2012, "Random Search for Hyper-Parameter Optimization", JMLR
    13, section 2.
    """
    if not callable(objective):
        raise TypeError(f"objective must be callable, got {type(objective).__name__}")
    space = check_space(space)
    n = check_positive_int("n", n)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    history = []
    for _ in range(n):
        params = sample(space, rng)
        history.append((params, float(objective(params))))
    return history


def best_of(history: Sequence[tuple[dict[str, Any], float]]) -> tuple[dict[str, Any], float]:
    """Return the (params, value) of `history` with the smallest value (NaN values ignored).

    Source: the kit's own helper.
    """
    finite = [(p, v) for p, v in history if not math.isnan(v)]
    if not finite:
        raise ValueError("history must hold at least one trial with a value that is not NaN")
    return min(finite, key=lambda pv: pv[1])


class RandomSampler:
    """Draws every point of a study independently from the space with the generator the study
    passes in (one per trial, so the points do not depend on the order in which parallel
    trials finish, and a resumed study draws the same points as an uninterrupted one).

    Source: Bergstra and Bengio 2012, section 2.
    """

    def suggest(self, space: Space, trials: Sequence[Any], rng: np.random.Generator) -> dict:
        """Return one point of `space` drawn with `rng`; `trials` is unused."""
        return sample(space, rng)

    def __repr__(self) -> str:
        return "RandomSampler()"
