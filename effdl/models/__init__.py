"""Model families, one module each: the mnist1d baselines, convolutions and MobileNets,
attention and the Transformer."""

from effdl.models.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    Seq2Seq,
    causal_mask,
    scaled_dot_product_attention,
)
from effdl.models.baselines import (
    BASELINES,
    MLP,
    ClassifierRun,
    ConvNet1d,
    GRUNet,
    LogisticRegression,
    make_baseline,
    train_baselines,
    train_classifier,
)
from effdl.models.mobilenet import InvertedResidual, mobilenet_v1, mobilenet_v2
from effdl.models.transformer import (
    TransformerClassifier,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "BASELINES",
    "AdditiveAttention",
    "ClassifierRun",
    "MultiHeadAttention",
    "Seq2Seq",
    "TransformerClassifier",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "causal_mask",
    "scaled_dot_product_attention",
    "train_classifier",
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
