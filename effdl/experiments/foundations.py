"""Lesson 00's experiment: the four mnist1d baselines trained with the paper's recipe, each with
its test accuracy and footprint. Called by course/00_efficiency_and_pareto.ipynb and by the
ledger claim `mnist1d-baselines` (effdl/claims/foundations.py). Start with `train_baselines`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from effdl._checks import check_positive_int
from effdl.data.splits import Splits
from effdl.measure import profile
from effdl.models.baselines import BASELINES, make_baseline
from effdl.train import History, evaluate, fit

#: The mnist1d training recipe: Adam, learning rate 1e-2, no weight decay, batch 100, 6,000
#: steps on the 4,000 training signals (the repository's later training script runs 8,000).
PAPER_STEPS = 6000
PAPER_BATCH_SIZE = 100
PAPER_LR = 1e-2


@dataclass
class ClassifierRun:
    """A trained classifier with its test accuracy, footprint and training history."""

    name: str
    model: nn.Module
    history: History
    test_accuracy: float
    footprint: dict[str, float]


def train_classifier(
    name: str,
    model: nn.Module,
    splits: Splits,
    loaders: tuple[DataLoader, DataLoader, DataLoader],
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    latency: bool = True,
    verbose: bool = True,
) -> ClassifierRun:
    """Return the `ClassifierRun` of training `model` with Adam on `loaders` (train, val,
    test), then measuring its test accuracy and footprint; validation runs if `splits` has any.

    Source: the kit's own protocol (effdl.train.fit, then effdl.measure.profile).
    """
    train_loader, val_loader, test_loader = loaders
    has_val = len(splits.val[1]) > 0
    history = fit(
        model,
        train_loader,
        val_loader if has_val else None,
        epochs=epochs,
        lr=lr,
        seed=seed,
        verbose=verbose,
    )
    accuracy = evaluate(model, test_loader)["accuracy"]
    footprint = profile(model, (1, *splits.sample_shape), latency=latency)
    return ClassifierRun(name, model, history, accuracy, footprint)


def train_baselines(
    splits: Splits,
    names: Sequence[str] = tuple(BASELINES),
    *,
    steps: int = PAPER_STEPS,
    batch_size: int = PAPER_BATCH_SIZE,
    lr: float = PAPER_LR,
    seed: int = 0,
    latency: bool = True,
    verbose: bool = True,
) -> dict[str, ClassifierRun]:
    """Return each named baseline trained on `splits` for about `steps` optimizer steps.

    Steps are rounded up to whole epochs. Each run reports test accuracy and its footprint
    (params, MACs, serialized bytes and, if `latency`, CPU latency of one sample).

    Source: Greydanus 2020, "Scaling down deep learning", section 2 and its training defaults.
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"names must be among {tuple(BASELINES)}, got {unknown}")
    check_positive_int("steps", steps)
    loaders = splits.loaders(batch_size=batch_size, seed=seed)
    epochs = math.ceil(steps / len(loaders[0]))
    builders = {name: (partial(make_baseline, name, seed=seed), lr) for name in names}
    return train_each(
        builders, splits, loaders, epochs=epochs, seed=seed, latency=latency, verbose=verbose
    )


def train_each(
    builders: Mapping[str, tuple[Callable[[], nn.Module], float]],
    splits: Splits,
    loaders: tuple[DataLoader, DataLoader, DataLoader],
    *,
    epochs: int,
    seed: int = 0,
    latency: bool = True,
    verbose: bool = True,
) -> dict[str, ClassifierRun]:
    """Return a `ClassifierRun` for each name in `builders`, which maps it to a function that
    builds the model (called under `seed`, leaving torch's global generator as it was) and the
    model's Adam learning rate; every model gets the same loaders, epochs and seed.

    Source: the kit's own protocol (`train_classifier` on each model in turn).
    """
    runs = {}
    for name, (build, lr) in tqdm(builders.items(), desc="models", disable=not verbose):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build()
        runs[name] = train_classifier(
            name,
            model,
            splits,
            loaders,
            epochs=epochs,
            lr=lr,
            seed=seed,
            latency=latency,
            verbose=verbose,
        )
    return runs
