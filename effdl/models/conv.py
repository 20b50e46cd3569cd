"""Why convolutions are efficient: a fully connected neuron needs a weight for every input
value, a convolution filter only for its window, shared across all positions. Start with
`fc_vs_conv_params`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from effdl.measure import count_params


def fc_vs_conv_params(input_shape: Sequence[int], kernel_size: int) -> dict[str, int]:
    """Return the weights of one fully connected neuron and of one conv filter on an input.

    `input_shape` is (height, width, channels), as the source writes it (100 x 100 x 3).
    Both counts are read off real torch layers (`nn.Linear` with one output, `nn.Conv2d` with
    one filter, no bias); the closed forms are H*W*C and k*k*C.

    Source: 000 "High-Performance Deep Learning, Part 4", Efficient Architectures (FC vs conv).
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(
            f"input_shape must be (height, width, channels) of positive ints, got {input_shape!r}"
        )
    if not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive int, got {kernel_size!r}")
    height, width, channels = shape
    if kernel_size > min(height, width):
        raise ValueError(f"kernel_size must fit in the input ({height}x{width}), got {kernel_size}")
    neuron = nn.Linear(height * width * channels, 1, bias=False)
    conv_filter = nn.Conv2d(channels, 1, kernel_size, bias=False)
    fc, conv = count_params(neuron), count_params(conv_filter)
    return {"fc_connections": fc, "conv_params": conv, "ratio": fc // conv}
