"""Deterministic train/validation/test splits and the `Splits` container every dataset returns.

Start with `Splits`: three `(x, y)` tensor pairs and a `loaders` method that makes DataLoaders
whose shuffling is fixed by a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from effdl._checks import check_fraction, check_positive_int

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Splits:
    """Train, validation and test tensors of one dataset, with its number of classes."""

    name: str
    train: Pair
    val: Pair
    test: Pair
    num_classes: int

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Return the shape of one input sample without the batch dimension, e.g. (1, 40) for
        mnist1d; `(1, *sample_shape)` is the `input_shape` that `effdl.measure` takes."""
        return tuple(self.train[0].shape[1:])

    def sizes(self) -> dict[str, int]:
        """Return the number of samples in each split."""
        return {k: len(getattr(self, k)[1]) for k in ("train", "val", "test")}

    def loaders(
        self, batch_size: int = 128, seed: int = 0
    ) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Return train (shuffled by `seed`), validation and test DataLoaders.

        Source: torch.utils.data documentation (DataLoader with a seeded generator).
        """
        check_positive_int("batch_size", batch_size)
        generator = torch.Generator().manual_seed(seed)
        train = DataLoader(
            TensorDataset(*self.train), batch_size=batch_size, shuffle=True, generator=generator
        )
        val = DataLoader(TensorDataset(*self.val), batch_size=batch_size)
        test = DataLoader(TensorDataset(*self.test), batch_size=batch_size)
        return train, val, test

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return (
            f"Splits({self.name!r}, sample_shape={self.sample_shape}, "
            f"classes={self.num_classes}, {sizes})"
        )


def split_train_val(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int
) -> tuple[Pair, Pair]:
    """Return `(train, val)`: a seeded random partition of `(x, y)` with `val_fraction` in val.

    Source: standard hold-out validation.
    """
    check_fraction("val_fraction", val_fraction)
    train, val, _ = _partition(x, y, (1.0 - val_fraction, val_fraction, 0.0), seed)
    return train, val


def split_three_ways(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float, test_fraction: float, seed: int
) -> tuple[Pair, Pair, Pair]:
    """Return `(train, val, test)`: a seeded random partition of `(x, y)`.

    Source: standard hold-out validation.
    """
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction, allow_zero=False)
    return _partition(x, y, (1.0 - val_fraction - test_fraction, val_fraction, test_fraction), seed)


def _partition(
    x: torch.Tensor, y: torch.Tensor, fractions: tuple[float, float, float], seed: int
) -> tuple[Pair, Pair, Pair]:
    train_f, val_f, test_f = fractions
    check_fraction("val_fraction", val_f)
    if train_f <= 0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1 so that training data remains, got "
            f"{val_f} + {test_f}"
        )
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    n = len(y)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    n_val, n_test = round(n * val_f), round(n * test_f)
    if val_f > 0 and n_val == 0 or test_f > 0 and n_test == 0:
        raise ValueError(
            f"{n} samples are too few for val_fraction={val_f}, test_fraction={test_f}"
        )
    val_idx, test_idx = order[:n_val], order[n_val : n_val + n_test]
    train_idx = order[n_val + n_test :]
    return tuple((x[idx], y[idx]) for idx in (train_idx, val_idx, test_idx))
