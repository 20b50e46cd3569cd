"""The four mnist1d baselines: logistic regression, an MLP, a small 1-D CNN and a GRU.

Their sizes follow the mnist1d paper's reference models (Greydanus 2020, section 2 and its
code defaults): MLP 100-100 hidden units, CNN of three convolutions with 25 channels, GRU with
6 hidden units per direction. Start with `make_baseline`; the training recipe that reproduces
the paper's table lives in `effdl.experiments.foundations`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from effdl._checks import check_in

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
    check_in("name", name, tuple(BASELINES))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BASELINES[name]()
