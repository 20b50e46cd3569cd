"""Search spaces for hyper-parameter optimisation: `Float`, `Int` and `Categorical` dimensions,
and a space as a dict {name: dimension}. Each dimension samples a value, maps a value to the
unit interval and back (model-based methods such as Bayesian optimisation work in the unit
cube), and lists the values a grid takes on it. Start with `Float`, then `sample`, `to_unit`
and `from_unit`, which act on a whole space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from effdl._checks import check_positive_int


def _check_bounds(kind: str, low: object, high: object, log: object, *, integer: bool) -> None:
    allowed = (int,) if integer else (int, float)
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, allowed):
            what = "an int" if integer else "a number"
            raise TypeError(f"{kind} {name} must be {what}, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{kind} {name} must be finite, got {value!r}")
    if not isinstance(log, bool):
        raise TypeError(f"{kind} log must be True or False, got {log!r}")
    if low >= high:
        raise ValueError(f"{kind} needs low < high, got low={low!r}, high={high!r}")
    if log and low <= 0:
        raise ValueError(f"{kind} with log=True needs low > 0, got low={low!r}")


@dataclass(frozen=True)
class Float:
    """A real hyper-parameter in [low, high], uniform or, with `log=True`, log-uniform (every
    decade equally likely: the usual choice for a learning rate or a weight decay).

    Source: Bergstra and Bengio 2012, section 2 (log-uniform priors for scale parameters).
    """

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_bounds("Float", self.low, self.high, self.log, integer=False)

    def sample(self, rng: np.random.Generator) -> float:
        """Return one value drawn from the dimension's distribution with `rng`."""
        return self.from_unit(float(rng.random()))

    def to_unit(self, value: float) -> float:
        """Return `value` mapped to [0, 1] (linearly, or linearly in log space)."""
        value = self.check(value)
        if self.log:
            return (math.log(value) - math.log(self.low)) / (
                math.log(self.high) - math.log(self.low)
            )
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float:
        """Return the value at position `u` of [0, 1] (clipped into it)."""
        u = min(max(float(u), 0.0), 1.0)
        if u in (0.0, 1.0):  # the ends exactly, without a round trip through log and exp
            return float(self.low if u == 0.0 else self.high)
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return min(max(value, self.low), self.high)

    def grid(self, n: int) -> list[float]:
        """Return `n` evenly spaced values from low to high (geometrically with `log`)."""
        n = check_positive_int("n", n)
        if n == 1:
            return [self.from_unit(0.5)]
        return [self.from_unit(i / (n - 1)) for i in range(n)]

    def check(self, value: object) -> float:
        """Return `value` as a float if it lies in [low, high]; raise ValueError otherwise."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise TypeError(f"a Float value must be a number, got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(f"value {value!r} lies outside [{self.low}, {self.high}]")
        return float(value)


@dataclass(frozen=True)
class Int:
    """An integer hyper-parameter in {low, ..., high}, uniform or, with `log=True`, uniform in
    log space (a width of 16 as likely as one of 256 per factor of two).

    Source: Bergstra and Bengio 2012, section 2.
    """

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        _check_bounds("Int", self.low, self.high, self.log, integer=True)

    def _real(self) -> Float:
        # An integer in [low, high] is a real in [low - 0.5, high + 0.5] rounded, so that the
        # end values are as likely as the others; in log space the interval starts above 0.
        if self.log:
            return Float(self.low - 0.5 if self.low > 0.5 else self.low / 2, self.high + 0.5, True)
        return Float(self.low - 0.5, self.high + 0.5)

    def sample(self, rng: np.random.Generator) -> int:
        """Return one value drawn from the dimension's distribution with `rng`."""
        return self.from_unit(float(rng.random()))

    def to_unit(self, value: int) -> float:
        """Return `value` mapped to [0, 1] (the centre of its cell)."""
        return self._real().to_unit(float(self.check(value)))

    def from_unit(self, u: float) -> int:
        """Return the integer whose cell contains position `u` of [0, 1]."""
        return min(max(round(self._real().from_unit(u)), self.low), self.high)

    def grid(self, n: int) -> list[int]:
        """Return up to `n` distinct integers spread from low to high (all of them if n is at
        least their number)."""
        n = check_positive_int("n", n)
        if n >= self.high - self.low + 1:
            return list(range(self.low, self.high + 1))
        real = Float(float(self.low), float(self.high), self.log)
        return sorted({round(v) for v in real.grid(n)})

    def check(self, value: object) -> int:
        """Return `value` as an int if it is an integer in [low, high]; raise otherwise."""
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"an Int value must be an integer, got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(f"value {value!r} lies outside [{self.low}, {self.high}]")
        return int(value)


@dataclass(frozen=True)
class Categorical:
    """A hyper-parameter that takes one of `choices` (an optimizer's name, an activation), each
    equally likely; in the unit cube choice i owns the cell [i/k, (i+1)/k).

    Source: Bergstra and Bengio 2012; Snoek et al. 2012 (categories in model-based search).
    """

    choices: tuple

    def __post_init__(self) -> None:
        if isinstance(self.choices, str) or not isinstance(self.choices, Sequence):
            raise TypeError(f"Categorical choices must be a list or tuple, got {self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            raise ValueError("Categorical choices must not be empty")
        if len(set(map(repr, choices))) != len(choices):
            raise ValueError(f"Categorical choices must be distinct, got {choices!r}")
        object.__setattr__(self, "choices", choices)

    def sample(self, rng: np.random.Generator) -> Any:
        """Return one of the choices, drawn uniformly with `rng`."""
        return self.choices[int(rng.integers(len(self.choices)))]

    def to_unit(self, value: Any) -> float:
        """Return the centre of the cell of `value`."""
        return (self.index(value) + 0.5) / len(self.choices)

    def from_unit(self, u: float) -> Any:
        """Return the choice whose cell contains `u`."""
        k = len(self.choices)
        return self.choices[min(int(min(max(float(u), 0.0), 1.0) * k), k - 1)]

    def grid(self, n: int | None = None) -> list:
        """Return every choice (a grid always tries them all)."""
        return list(self.choices)

    def index(self, value: Any) -> int:
        """Return the position of `value` among the choices; raise ValueError if absent."""
        for i, choice in enumerate(self.choices):
            if choice == value and type(choice) is type(value):
                return i
        raise ValueError(f"value {value!r} is not one of the choices {self.choices!r}")

    def check(self, value: Any) -> Any:
        """Return `value` if it is one of the choices; raise ValueError otherwise."""
        self.index(value)
        return value


Dimension = Float | Int | Categorical
Space = Mapping[str, Dimension]


def check_space(space: object) -> dict[str, Dimension]:
    """Return `space` as a dict if it maps at least one name (a str) to a `Float`, `Int` or
    `Categorical`; raise TypeError or ValueError naming what is wrong otherwise.

    Source: the kit's own convention.
    """
    if not isinstance(space, Mapping):
        raise TypeError(f"space must be a dict of name: dimension, got {type(space).__name__}")
    if not space:
        raise ValueError("space must name at least one dimension, got an empty dict")
    for name, dim in space.items():
        if not isinstance(name, str):
            raise TypeError(f"space names must be str, got {name!r}")
        if not isinstance(dim, Float | Int | Categorical):
            raise TypeError(
                f"space[{name!r}] must be a Float, Int or Categorical, got {type(dim).__name__}"
            )
    return dict(space)


def sample(space: Space, rng: np.random.Generator) -> dict[str, Any]:
    """Return one point of `space`, {name: value}, each dimension drawn with `rng` in the
    space's order.

    Source: Bergstra and Bengio 2012, section 2 (independent draws per dimension).
    """
    space = check_space(space)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return {name: dim.sample(rng) for name, dim in space.items()}


def check_params(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return `params` if it gives a valid value for every dimension of `space` and nothing
    else; raise ValueError naming unknown or missing names, or the value out of range.

    Source: the kit's own convention.
    """
    space = check_space(space)
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    unknown = sorted(set(params) - set(space))
    if unknown:
        raise ValueError(f"params has unknown names {unknown}; the space has {list(space)}")
    missing = [name for name in space if name not in params]
    if missing:
        raise ValueError(f"params lacks {missing}; the space has {list(space)}")
    checked = {}
    for name, dim in space.items():
        try:
            checked[name] = dim.check(params[name])
        except (TypeError, ValueError) as error:
            raise type(error)(f"params[{name!r}]: {error}") from None
    return checked


def to_unit(space: Space, params: Mapping[str, Any]) -> np.ndarray:
    """Return the point `params` of `space` as a vector in the unit cube, one coordinate per
    dimension in the space's order.

    Source: Snoek et al. 2012, section 2 (model-based search in the unit hypercube).
    """
    params = check_params(space, params)
    return np.array([dim.to_unit(params[name]) for name, dim in space.items()], dtype=float)


def from_unit(space: Space, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Return the point of `space` at the unit-cube vector `u` (one coordinate per dimension,
    clipped into [0, 1]); `from_unit(space, to_unit(space, p)) == p` for integers and
    categories, and up to rounding for floats.

    Source: Snoek et al. 2012, section 2.
    """
    space = check_space(space)
    u = np.asarray(u, dtype=float)
    if u.shape != (len(space),):
        raise ValueError(f"u must have one coordinate per dimension ({len(space)}), got {u.shape}")
    return {name: dim.from_unit(float(x)) for (name, dim), x in zip(space.items(), u, strict=True)}
