"""Model families, one module each: the mnist1d baselines, convolutions and MobileNets,
attention and the Transformer."""

from effdl.models.baselines import (
    BASELINES,
    MLP,
    ConvNet1d,
    GRUNet,
    LogisticRegression,
    make_baseline,
    train_baselines,
)
from effdl.models.mobilenet import InvertedResidual, mobilenet_v1, mobilenet_v2

__all__ = [
    "BASELINES",
    "MLP",
    "ConvNet1d",
    "GRUNet",
    "InvertedResidual",
    "LogisticRegression",
    "make_baseline",
    "mobilenet_v1",
    "mobilenet_v2",
    "train_baselines",
]
