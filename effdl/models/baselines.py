"""The four mnist1d baselines: logistic regression, an MLP, a small 1-D CNN and a GRU.

Their sizes follow the mnist1d paper's reference models (Greydanus 2020, section 2 and its
code defaults): MLP 100-100 hidden units, CNN of three convolutions with 25 channels, GRU with
6 hidden units per direction. Start with `make_baseline`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from effdl.data.splits import Splits
from effdl.measure import profile
from effdl.train import History, evaluate, fit

#: mnist1d signal length and number of classes.
MNIST1D_LENGTH = 40
NUM_CLASSES = 10


class LogisticRegression(nn.Module):
    """A single linear layer on the flattened input: the floor every model must beat."""

    def __init__(self, in_features: int = MNIST1D_LENGTH, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """Fully connected net: in -> hidden -> hidden -> classes with ReLU; the second hidden
    layer adds its input back (a residual connection), as in the mnist1d reference MLP."""

    def __init__(
        self, in_features: int = MNIST1D_LENGTH, hidden: int = 100, num_classes: int = NUM_CLASSES
    ):
        super().__init__()
        self.hidden1 = nn.Linear(in_features, hidden)
        self.hidden2 = nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.hidden1(x.flatten(1)))
        h = h + torch.relu(self.hidden2(h))
        return self.output(h)


class ConvNet1d(nn.Module):
    """Three strided 1-D convolutions (kernel 5, 3, 3; stride 2) and a linear classifier.

    Length 40 shrinks to 19, 10, then 5 positions, so the classifier sees channels x 5 features.
    """

    def __init__(
        self, length: int = MNIST1D_LENGTH, channels: int = 25, num_classes: int = NUM_CLASSES
    ):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size=5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
        )
        out_length = length
        for kernel in (5, 3, 3):
            out_length = (out_length + 2 - kernel) // 2 + 1
        self.classifier = nn.Linear(channels * out_length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class GRUNet(nn.Module):
    """A bidirectional GRU read over the signal one position at a time; a linear layer reads
    the hidden states of every step."""

    def __init__(
        self, length: int = MNIST1D_LENGTH, hidden: int = 6, num_classes: int = NUM_CLASSES
    ):
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(length * hidden * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, 1, L) -> (N, L, 1): one scalar per time step.
        states, _ = self.gru(x.flatten(1).unsqueeze(-1))
        return self.classifier(states.flatten(1))


BASELINES: dict[str, Callable[[], nn.Module]] = {
    "logreg": LogisticRegression,
    "mlp": MLP,
    "cnn": ConvNet1d,
    "gru": GRUNet,
}


def make_baseline(name: str, *, seed: int = 0) -> nn.Module:
    """Return a freshly initialised mnist1d baseline ("logreg", "mlp", "cnn" or "gru").

    Initialisation is seeded by `seed` without touching torch's global generator state.

    Source: Greydanus 2020, "Scaling down deep learning", section 2 (baselines).
    """
    if name not in BASELINES:
        raise ValueError(f"name must be one of {tuple(BASELINES)}, got {name!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BASELINES[name]()


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
    footprint = profile(model, splits.input_shape, latency=latency)
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
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    loaders = splits.loaders(batch_size=batch_size, seed=seed)
    epochs = math.ceil(steps / len(loaders[0]))
    runs = {}
    for name in tqdm(names, desc="baselines", disable=not verbose):
        model = make_baseline(name, seed=seed)
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
