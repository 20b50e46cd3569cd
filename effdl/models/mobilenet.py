"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018), each a config table and a
builder. v1 stacks depthwise-separable layers and scales with a width multiplier alpha and the
input resolution rho; v2 stacks inverted residuals with linear bottlenecks and loads
torchvision's state_dict. Start with `MOBILENET_V1_TABLE` and `mobilenet_v1`, then
`InvertedResidual` and `mobilenet_v2`. The paper's cost tables and the digits experiment live in
`effdl.experiments.convolutions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from effdl._checks import check_positive_int
from effdl.models.conv import MobileNetV1Block, pointwise_conv, standard_conv

#: MobileNet v1 body, Howard et al. 2017 Table 1: (layer kind, output channels, stride).
#: "conv" is a full 3x3 convolution + BN + ReLU, "separable" a `MobileNetV1Block`. The paper's
#: Table 1 prints stride 2 for the last depthwise layer, but its input and output are both 7x7
#: (and the 569M mult-adds only come out with stride 1), so we use 1.
MOBILENET_V1_TABLE: tuple[tuple[str, int, int], ...] = (
    ("conv", 32, 2),
    ("separable", 64, 1),
    ("separable", 128, 2),
    ("separable", 128, 1),
    ("separable", 256, 2),
    ("separable", 256, 1),
    ("separable", 512, 2),
    *(("separable", 512, 1),) * 5,
    ("separable", 1024, 2),
    ("separable", 1024, 1),
)

#: A four-layer MobileNet-style body for 8x8 digits: a full-conv stem and three separable
#: layers, two of them downsampling (8x8 -> 4x4 -> 2x2).
DIGITS_TABLE: tuple[tuple[str, int, int], ...] = (
    ("conv", 32, 1),
    ("separable", 64, 1),
    ("separable", 128, 2),
    ("separable", 256, 2),
)

#: MobileNet v2 body, Sandler et al. 2018 Table 2: (expansion t, output channels c, repeats n,
#: stride s of the first repeat). A 3x3 stem conv (32 channels, stride 2) comes before it and a
#: 1x1 conv to 1280 channels after it.
MOBILENET_V2_TABLE: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MOBILENET_V2_STEM = 32
MOBILENET_V2_LAST = 1280
#: Channel counts of v2 are rounded to multiples of this, as in the reference implementation.
CHANNEL_DIVISOR = 8


class MobileNet(nn.Module):
    """A feature extractor, global average pooling and a classifier: the shape of both MobileNets.

    Source: Howard et al. 2017 Table 1; Sandler et al. 2018 Table 2.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def mobilenet_v1(
    num_classes: int = 1000,
    alpha: float = 1.0,
    separable: bool = True,
    in_channels: int = 3,
    small_input: bool = False,
    *,
    table: Sequence[tuple[str, int, int]] = MOBILENET_V1_TABLE,
) -> MobileNet:
    """Return MobileNet v1 with width multiplier `alpha`, built from `table`.

    Every layer's channel count c becomes round(alpha * c) (at least 1). The resolution
    multiplier rho needs no argument: it is the input size you feed (224, 192, 160, 128).
    `separable=False` replaces every separable layer by a full 3x3 convolution + BN + ReLU with
    the same channels and stride: Table 4's "Conv MobileNet". `small_input=True` gives the first
    two downsampling layers of the table stride 1 (for the paper's table: the stem and the
    64->128 layer), so the total stride is 8 instead of 32: a 32x32 image ends at 4x4, an 8x8
    digit at 1x1. A global average pool and one linear layer finish the network.

    Source: Howard et al. 2017, "MobileNets", Table 1, Table 4 and section 3.3 (alpha, rho).
    """
    check_positive_int("num_classes", num_classes)
    check_positive_int("in_channels", in_channels)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    rows = list(table)
    if not rows:
        raise ValueError(f"table must have at least one row, got {table!r}")
    for row in rows:
        if len(row) != 3 or row[0] not in ("conv", "separable"):
            raise ValueError(
                f"table rows must be ('conv' or 'separable', channels, stride), got {row!r}"
            )
    strides = _small_input_strides([s for _, _, s in rows], small_input)
    layers: list[nn.Module] = []
    prev = in_channels
    for (kind, channels, _), stride in zip(rows, strides, strict=True):
        width = max(1, int(channels * alpha + 0.5))
        if kind == "separable" and separable:
            layers.append(MobileNetV1Block(prev, width, stride))
        else:
            layers.append(_conv_bn_act(prev, width, 3, stride, nn.ReLU))
        prev = width
    model = MobileNet(nn.Sequential(*layers), nn.Linear(prev, num_classes))
    _init_weights(model)
    return model


class InvertedResidual(nn.Module):
    """MobileNet v2's block: expand 1x1 (ReLU6), depthwise 3x3 (ReLU6), linear 1x1 projection.

    The block widens `in_ch` channels by `expand_ratio` (skipped when it is 1), filters them
    depthwise with `stride`, and projects back to `out_ch` with no activation (the "linear
    bottleneck": a ReLU on few channels would destroy information). The input is added to the
    output when the shapes match (stride 1 and in_ch == out_ch). The layers sit in `self.conv`
    in the order of the paper's Table 1, which is also torchvision's state_dict layout.

    Source: Sandler et al. 2018, "MobileNetV2", Table 1 and Fig. 3(b).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int):
        super().__init__()
        check_positive_int("in_ch", in_ch)
        check_positive_int("out_ch", out_ch)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if isinstance(expand_ratio, bool) or not isinstance(expand_ratio, int | float):
            raise ValueError(f"expand_ratio must be a number >= 1, got {expand_ratio!r}")
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be a number >= 1, got {expand_ratio!r}")
        hidden = int(round(in_ch * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_act(in_ch, hidden, 1, 1, nn.ReLU6))
        layers.append(_conv_bn_act(hidden, hidden, 3, stride, nn.ReLU6, groups=hidden))
        layers += [pointwise_conv(hidden, out_ch), nn.BatchNorm2d(out_ch)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


def mobilenet_v2(
    num_classes: int = 1000,
    width_mult: float = 1.0,
    small_input: bool = False,
    *,
    in_channels: int = 3,
    dropout: float = 0.2,
) -> MobileNet:
    """Return MobileNet v2 built from `MOBILENET_V2_TABLE`, scaled by `width_mult`.

    Channel counts are width_mult * c rounded to a multiple of 8 (never more than 10% down);
    the last 1x1 conv keeps 1280 channels unless width_mult > 1. The module names give the
    state_dict keys of `torchvision.models.mobilenet_v2` (features.N.conv.M..., classifier.1),
    so its weights load with `strict=True`. `small_input=True` gives the stem and the first
    downsampling stage stride 1 (total stride 8 instead of 32): a 32x32 image ends at 4x4, an
    8x8 digit at 1x1; the parameter count does not change.

    Source: Sandler et al. 2018, "MobileNetV2", Table 2 and section 6.1.
    """
    check_positive_int("num_classes", num_classes)
    check_positive_int("in_channels", in_channels)
    if isinstance(width_mult, bool) or not isinstance(width_mult, int | float) or width_mult <= 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    # One stride per row of the body, the stem's first; small_input relaxes the first two 2s.
    strides = _small_input_strides([2] + [s for *_, s in MOBILENET_V2_TABLE], small_input)
    stem = _divisible(MOBILENET_V2_STEM * width_mult)
    last = _divisible(MOBILENET_V2_LAST * max(1.0, width_mult))
    layers: list[nn.Module] = [_conv_bn_act(in_channels, stem, 3, strides[0], nn.ReLU6)]
    prev = stem
    for (t, c, n, _), stride in zip(MOBILENET_V2_TABLE, strides[1:], strict=True):
        out = _divisible(c * width_mult)
        for i in range(n):
            layers.append(InvertedResidual(prev, out, stride if i == 0 else 1, t))
            prev = out
    layers.append(_conv_bn_act(prev, last, 1, 1, nn.ReLU6))
    classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
    model = MobileNet(nn.Sequential(*layers), classifier)
    _init_weights(model)
    return model


def _conv_bn_act(
    in_ch: int, out_ch: int, kernel_size: int, stride: int, activation: type, groups: int = 1
) -> nn.Sequential:
    # Children 0, 1, 2 (conv, BN, activation): the key layout torchvision's v2 uses too.
    return nn.Sequential(
        standard_conv(in_ch, out_ch, kernel_size, stride, groups=groups),
        nn.BatchNorm2d(out_ch),
        activation(inplace=True),
    )


def _small_input_strides(strides: Sequence[int], small_input: bool) -> list[int]:
    # Small inputs (8x8, 32x32) cannot afford a total stride of 32: drop the first two 2s.
    out = list(strides)
    if small_input:
        relaxed = 0
        for i, stride in enumerate(out):
            if stride > 1 and relaxed < 2:
                out[i] = 1
                relaxed += 1
    return out


def _divisible(channels: float, divisor: int = CHANNEL_DIVISOR) -> int:
    # Round to the nearest multiple of `divisor`, but never lose more than 10% of the channels.
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


def _init_weights(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)
