"""Argument checks shared by the whole kit, so that every function rejects bad input the same way
and says which argument was wrong, what it got and what is allowed. Start with
`check_positive_int`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

T = TypeVar("T")


def check_positive_int(name: str, value: object) -> int:
    """Return `value` if it is an int >= 1; raise ValueError naming `name` otherwise.

    `True` and `False` are refused although Python counts them as ints: a flag passed where a
    count belongs is a mistake, not the number 1.

    Source: the kit's own convention (effdl STYLE.md, "Bad input").
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_non_negative_int(name: str, value: object) -> int:
    """Return `value` if it is an int >= 0 (not a bool); raise ValueError naming `name` otherwise.

    Source: the kit's own convention (effdl STYLE.md, "Bad input").
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def check_seeds(seeds: Collection[object]) -> tuple[int, ...]:
    """Return `seeds` as a tuple if it names at least one seed, each an int >= 0; raise
    ValueError naming "seeds" otherwise.

    Source: the kit's own convention (effdl STYLE.md, "Bad input").
    """
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed, got none")
    for seed in seeds:
        check_non_negative_int("seeds", seed)
    return seeds


def check_positive_number(name: str, value: object) -> float:
    """Return `value` as a float if it is a real number > 0 (not a bool); raise ValueError
    naming `name` otherwise.

    Source: the kit's own convention (effdl STYLE.md, "Bad input").
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def check_fraction(name: str, value: object, *, allow_zero: bool = True) -> float:
    """Return `value` as a float if it lies in [0, 1) (or (0, 1) without `allow_zero`).

    A value that is not a number raises TypeError, one out of range ValueError; both name
    `name`.

    Source: the kit's own convention (effdl STYLE.md, "Bad input").
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        allowed = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{name} must be in {allowed}, got {value}")
    return float(value)


def check_in(name: str, value: T, allowed: Collection[T]) -> T:
    """Return `value` if it is one of `allowed`; raise ValueError listing them otherwise.

    Source: the kit's own convention (effdl STYLE.md, "Bad input").
    """
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_tensor(name: str, value: object) -> None:
    """Raise TypeError naming `name` unless `value` is a torch.Tensor.

    Source: the kit's own convention (DESIGN.md, bad input).
    """
    import torch  # here, so that the other checks stay importable without torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def check_module(name: str, value: object) -> None:
    """Raise TypeError naming `name` unless `value` is a torch.nn.Module.

    Source: the kit's own convention (DESIGN.md, bad input).
    """
    from torch import nn

    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {type(value).__name__}")
