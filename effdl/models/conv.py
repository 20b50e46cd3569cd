"""Why convolutions are efficient, and how to make them cheaper still. A fully connected neuron
needs a weight for every input value, a convolution filter only for its window; a
depthwise-separable convolution (Howard et al. 2017, "MobileNets", section 3.1) splits the
filter into a per-channel spatial part and a 1x1 mixing part. Start with `fc_vs_conv_params`,
then `separable_conv` and `separable_cost_ratio`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from effdl._checks import check_positive_int
from effdl.measure import count_params


def fc_vs_conv_params(image_hwc: Sequence[int], kernel_size: int) -> dict[str, int]:
    """Return the weights of one fully connected neuron and of one conv filter on an image.

    `image_hwc` is one image's (height, width, channels), channels last as the source writes
    it (100 x 100 x 3); it is not an `input_shape` (those include the batch dimension).
    Both counts are read off real torch layers (`nn.Linear` with one output, `nn.Conv2d` with
    one filter, no bias); the closed forms are H*W*C and k*k*C.

    Source: 000 "High-Performance Deep Learning, Part 4", Efficient Architectures (FC vs conv).
    """
    shape = tuple(image_hwc)
    if len(shape) != 3 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(
            f"image_hwc must be (height, width, channels) of positive ints, got {image_hwc!r}"
        )
    check_positive_int("kernel_size", kernel_size)
    height, width, channels = shape
    if kernel_size > min(height, width):
        raise ValueError(f"kernel_size must fit in the input ({height}x{width}), got {kernel_size}")
    neuron = nn.Linear(height * width * channels, 1, bias=False)
    conv_filter = nn.Conv2d(channels, 1, kernel_size, bias=False)
    fc, conv = count_params(neuron), count_params(conv_filter)
    return {"fc_connections": fc, "conv_params": conv, "ratio": fc // conv}


def standard_conv(
    in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
) -> nn.Conv2d:
    """Return a bias-free convolution with "same" padding (kernel_size // 2), as MobileNet uses.

    Each of the `out_ch` filters spans kernel_size x kernel_size x (in_ch / groups) inputs;
    `groups` must divide both channel counts. With stride 1 the output keeps the input's
    height and width; with stride s it is ceil(size / s). Bias is left out because a
    BatchNorm follows every convolution in these networks.

    Source: Howard et al. 2017, "MobileNets", section 3.1 (standard convolution, eq. 1).
    """
    check_positive_int("in_ch", in_ch)
    check_positive_int("out_ch", out_ch)
    _check_odd_kernel(kernel_size)
    check_positive_int("stride", stride)
    check_positive_int("groups", groups)
    if in_ch % groups:
        raise ValueError(f"in_ch must be divisible by groups ({groups}), got {in_ch}")
    if out_ch % groups:
        raise ValueError(f"out_ch must be divisible by groups ({groups}), got {out_ch}")
    return nn.Conv2d(
        in_ch,
        out_ch,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        groups=groups,
        bias=False,
    )


def depthwise_conv(channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Conv2d:
    """Return a depthwise convolution: one kernel_size x kernel_size filter per input channel.

    It is a grouped convolution with as many groups as channels, so it filters each channel
    spatially and never mixes channels.

    Source: Howard et al. 2017, "MobileNets", section 3.1 (depthwise convolution, eq. 3).
    """
    return standard_conv(channels, channels, kernel_size, stride, groups=channels)


def pointwise_conv(in_ch: int, out_ch: int) -> nn.Conv2d:
    """Return a pointwise (1x1) convolution: a linear mix of channels at every position.

    Source: Howard et al. 2017, "MobileNets", section 3.1 (pointwise convolution).
    """
    return standard_conv(in_ch, out_ch, kernel_size=1)


def separable_conv(in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Return a depthwise-separable convolution: depthwise (groups=in_ch), then pointwise 1x1.

    It maps the same input shape to the same output shape as
    `standard_conv(in_ch, out_ch, kernel_size, stride)`, with kernel_size^2 * in_ch + in_ch *
    out_ch weights instead of kernel_size^2 * in_ch * out_ch. The children are named
    `depthwise` and `pointwise`. No non-linearity sits between the two parts; MobileNet adds
    BatchNorm and ReLU after each (`MobileNetV1Block`). Menghani 2021, Part 4, describes the
    two steps in the other order (pointwise first), which costs in_ch * out_ch +
    kernel_size^2 * out_ch.

    Source: Howard et al. 2017, "MobileNets", section 3.1 and Fig. 2.
    """
    return nn.Sequential(
        OrderedDict(
            depthwise=depthwise_conv(in_ch, kernel_size, stride),
            pointwise=pointwise_conv(in_ch, out_ch),
        )
    )


class MobileNetV1Block(nn.Module):
    """MobileNet v1's separable layer: 3x3 depthwise, BN, ReLU, then 1x1 pointwise, BN, ReLU.

    Source: Howard et al. 2017, "MobileNets", Fig. 3 (right).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, kernel_size: int = 3):
        super().__init__()
        self.depthwise = depthwise_conv(in_ch, kernel_size, stride)
        self.depthwise_bn = nn.BatchNorm2d(in_ch)
        self.depthwise_relu = nn.ReLU(inplace=True)
        self.pointwise = pointwise_conv(in_ch, out_ch)
        self.pointwise_bn = nn.BatchNorm2d(out_ch)
        self.pointwise_relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise_relu(self.depthwise_bn(self.depthwise(x)))
        return self.pointwise_relu(self.pointwise_bn(self.pointwise(x)))


def standard_conv_cost(
    in_ch: int, out_ch: int, kernel_size: int, out_size: int | Sequence[int]
) -> dict[str, int]:
    """Return the weights ("params") and mult-adds ("madds") of a standard convolution.

    With M = in_ch, N = out_ch, Dk = kernel_size and an output map of Df x Df = `out_size`
    (an int or (height, width); equal to the input's size at stride 1), the cost is
    Dk * Dk * M * N * Df * Df mult-adds and Dk * Dk * M * N weights (no bias).

    Source: Howard et al. 2017, "MobileNets", section 3.1, eq. 2.
    """
    check_positive_int("in_ch", in_ch)
    check_positive_int("out_ch", out_ch)
    check_positive_int("kernel_size", kernel_size)
    height, width = _size_pair(out_size)
    weights = kernel_size * kernel_size * in_ch * out_ch
    return {"params": weights, "madds": weights * height * width}


def separable_conv_cost(
    in_ch: int, out_ch: int, kernel_size: int, out_size: int | Sequence[int]
) -> dict[str, int]:
    """Return the weights and mult-adds of a depthwise-separable convolution, and of each part.

    Depthwise: Dk * Dk * M * Df * Df mult-adds; pointwise: M * N * Df * Df; the total is their
    sum (names as in `standard_conv_cost`). Keys: "params", "madds", "depthwise_madds",
    "pointwise_madds".

    Source: Howard et al. 2017, "MobileNets", section 3.1, eq. 4 and 5.
    """
    check_positive_int("in_ch", in_ch)
    check_positive_int("out_ch", out_ch)
    check_positive_int("kernel_size", kernel_size)
    height, width = _size_pair(out_size)
    depthwise = kernel_size * kernel_size * in_ch
    pointwise = in_ch * out_ch
    positions = height * width
    return {
        "params": depthwise + pointwise,
        "madds": (depthwise + pointwise) * positions,
        "depthwise_madds": depthwise * positions,
        "pointwise_madds": pointwise * positions,
    }


def separable_cost_ratio(n_out: int, kernel: int) -> float:
    """Return separable / standard convolution cost, 1/N + 1/Dk^2 (mult-adds and weights alike).

    The ratio does not depend on the input channels or the map size: dividing eq. 5 by eq. 2,
    M and Df cancel. For N = 512, Dk = 3 it is 0.113, 8.8 times cheaper.

    Source: Howard et al. 2017, "MobileNets", section 3.1, the ratio below eq. 5.
    """
    check_positive_int("n_out", n_out)
    check_positive_int("kernel", kernel)
    return 1.0 / n_out + 1.0 / kernel**2


def _check_odd_kernel(kernel_size: object) -> None:
    # "Same" padding of kernel_size // 2 keeps the map size only for odd kernels.
    check_positive_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")


def _size_pair(out_size: int | Sequence[int]) -> tuple[int, int]:
    pair = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    if len(pair) != 2 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in pair
    ):
        raise ValueError(f"out_size must be a positive int or (height, width), got {out_size!r}")
    return pair
