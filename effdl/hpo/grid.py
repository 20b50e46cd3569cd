"""Grid search: every combination of a few values per dimension, in Cartesian order (the last
dimension varies fastest). Start with `grid`, then `GridSampler`, which hands the points to a
study one by one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from effdl._checks import check_positive_int
from effdl.hpo.space import Space, check_space

#: Values per Float or Int dimension when the caller gives none (a Categorical takes all).
DEFAULT_PER_AXIS = 3


def grid(space: Space, per_axis: int = DEFAULT_PER_AXIS) -> list[dict[str, Any]]:
    """Return every point of the grid over `space`, {name: value} each, in Cartesian order:
    the first dimension varies slowest, the last fastest (as `itertools.product`). A
    Categorical takes all its choices, a Float `per_axis` evenly spaced values (geometrically
    spaced with `log=True`), an Int up to `per_axis` distinct values. The grid has the product
    of the per-dimension counts as its size.

    Source: Menghani 2021, Part 4 (grid search: every combination of the given values, e.g.
    learning rate {0.01, 0.05} by decay {0.1, 0.2}: 4 trials); Bergstra and Bengio 2012.
    """
    space = check_space(space)
    per_axis = check_positive_int("per_axis", per_axis)
    names = list(space)
    axes = [space[name].grid(per_axis) for name in names]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]


def grid_size(space: Space, per_axis: int = DEFAULT_PER_AXIS) -> int:
    """Return the number of points of `grid(space, per_axis)` without listing them: the
    product of the number of values each dimension takes.

    Source: the curse of dimensionality of grid search (Bergstra and Bengio 2012, section 1).
    """
    space = check_space(space)
    per_axis = check_positive_int("per_axis", per_axis)
    size = 1
    for dim in space.values():
        size *= len(dim.grid(per_axis))
    return size


class GridSampler:
    """Hands a study the points of `grid(space, per_axis)` in order, skipping those already
    asked (a resumed study does not repeat them; a trial interrupted by a crash is asked again);
    returns None when the grid is exhausted, which ends the study.

    Source: the kit's own sampler protocol (`effdl.hpo.study`).
    """

    def __init__(self, per_axis: int = DEFAULT_PER_AXIS) -> None:
        self.per_axis = check_positive_int("per_axis", per_axis)

    def suggest(
        self, space: Space, trials: Sequence[Any], rng: np.random.Generator
    ) -> dict[str, Any] | None:
        """Return the first grid point that no trial in `trials` holds (interrupted trials
        excepted), or None if every point has been asked. `rng` is unused: a grid is fixed."""
        taken = [t.params for t in trials if not _interrupted(t)]
        for point in grid(space, self.per_axis):
            if point not in taken:
                return point
        return None

    def __repr__(self) -> str:
        return f"GridSampler(per_axis={self.per_axis})"


def _interrupted(trial: Any) -> bool:
    error = getattr(trial, "error", None)
    return (
        str(getattr(trial, "state", "")) == "failed"
        and bool(error)
        and error.startswith("interrupted")
    )
