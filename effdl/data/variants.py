"""Variants of a dataset whose difficulty is a knob: label noise, input noise, fewer training
samples and shuffled positions. TAPAS (lesson 16) characterises datasets by how hard they are;
these variants give it a family of datasets of known, graded difficulty. Start with `make_variant`.
"""

from __future__ import annotations

import numpy as np
import torch

from effdl._checks import check_fraction
from effdl.data.splits import Splits


def make_variant(
    splits: Splits,
    *,
    label_noise: float = 0.0,
    input_noise: float = 0.0,
    train_fraction: float = 1.0,
    shuffle_positions: bool = False,
    seed: int = 0,
) -> Splits:
    """Return a harder copy of `splits`; the inputs are left untouched.

    - `label_noise`: fraction of training labels replaced by a different, uniformly drawn class
      (validation and test labels stay clean, so accuracy measures what was learned).
    - `input_noise`: standard deviation of Gaussian noise added to every input, in units of the
      dataset's input standard deviation (all splits: the task itself gets harder).
    - `train_fraction`: keep only this fraction of the training set (a seeded subset).
    - `shuffle_positions`: one fixed permutation of the input positions for all splits, which
      destroys locality (convolutions lose their advantage, a fully connected net does not).

    Source: Istrate et al. 2018 (TAPAS), section 3.1: dataset difficulty; Greydanus 2020
    (mnist1d shuffled variant).
    """
    check_fraction("label_noise", label_noise)
    if isinstance(input_noise, bool) or not isinstance(input_noise, int | float) or input_noise < 0:
        raise ValueError(f"input_noise must be a float >= 0, got {input_noise!r}")
    if not (isinstance(train_fraction, int | float) and 0 < train_fraction <= 1):
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction!r}")
    rng = np.random.default_rng(seed)
    (x_tr, y_tr), val, test = splits.train, splits.val, splits.test

    if train_fraction < 1:
        keep = max(1, round(len(y_tr) * train_fraction))
        idx = torch.from_numpy(np.sort(rng.choice(len(y_tr), size=keep, replace=False)))
        x_tr, y_tr = x_tr[idx], y_tr[idx]

    if label_noise > 0:
        y_tr = y_tr.clone()
        flip = torch.from_numpy(rng.random(len(y_tr)) < label_noise)
        # Adding 1..k-1 modulo k always gives a different class, uniformly.
        shift = torch.from_numpy(rng.integers(1, splits.num_classes, size=int(flip.sum())))
        y_tr[flip] = (y_tr[flip] + shift) % splits.num_classes

    pairs = [(x_tr, y_tr), val, test]
    if input_noise > 0:
        scale = float(splits.train[0].std()) * input_noise
        pairs = [(_add_noise(x, scale, rng), y) for x, y in pairs]

    if shuffle_positions:
        flat = int(np.prod(splits.sample_shape[1:])) if len(splits.sample_shape) > 1 else 1
        order = torch.from_numpy(rng.permutation(flat))
        pairs = [(_permute_positions(x, order), y) for x, y in pairs]

    tags = [
        f"labelnoise{label_noise:g}" if label_noise else "",
        f"inputnoise{input_noise:g}" if input_noise else "",
        f"frac{train_fraction:g}" if train_fraction < 1 else "",
        "shuffled" if shuffle_positions else "",
    ]
    name = "-".join([splits.name, *[t for t in tags if t]])
    return Splits(name, pairs[0], pairs[1], pairs[2], num_classes=splits.num_classes)


def _add_noise(x: torch.Tensor, scale: float, rng: np.random.Generator) -> torch.Tensor:
    noise = torch.from_numpy(rng.standard_normal(tuple(x.shape)).astype(np.float32))
    return x + scale * noise


def _permute_positions(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    # Positions are everything after the channel dimension: (N, C, L) or (N, C, H, W).
    n, c = x.shape[:2]
    return x.reshape(n, c, -1)[:, :, order].reshape(x.shape)
