"""Model families, one module each: the mnist1d baselines, convolutions and MobileNets,
attention and the Transformer. Models only: the experiments that train, time and compare them
live in `effdl.experiments`."""

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
    ConvNet1d,
    GRUNet,
    LogisticRegression,
    make_baseline,
)
from effdl.models.mobilenet import InvertedResidual, mobilenet_v1, mobilenet_v2
from effdl.models.transformer import (
    SelfAttention,
    StepwiseGRU,
    TinyGPT,
    TransformerClassifier,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "BASELINES",
    "AdditiveAttention",
    "MultiHeadAttention",
    "SelfAttention",
    "Seq2Seq",
    "StepwiseGRU",
    "TinyGPT",
    "TransformerClassifier",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "causal_mask",
    "scaled_dot_product_attention",
    "MLP",
    "ConvNet1d",
    "GRUNet",
    "InvertedResidual",
    "LogisticRegression",
    "make_baseline",
    "mobilenet_v1",
    "mobilenet_v2",
]
