"""Model families, one module each: baselines (logistic regression, MLP, CNN, GRU) first."""

from effdl.models.baselines import (
    BASELINES,
    MLP,
    ConvNet1d,
    GRUNet,
    LogisticRegression,
    make_baseline,
)

__all__ = ["BASELINES", "MLP", "ConvNet1d", "GRUNet", "LogisticRegression", "make_baseline"]
