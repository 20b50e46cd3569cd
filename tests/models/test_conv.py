import pytest
import torch
from torch import nn

from effdl.measure import count_macs, count_params
from effdl.models.conv import (
    MobileNetV1Block,
    depthwise_conv,
    fc_vs_conv_params,
    pointwise_conv,
    separable_conv,
    separable_conv_cost,
    separable_cost_ratio,
    standard_conv,
    standard_conv_cost,
)

# (in_ch, out_ch, kernel, stride, input size): square, odd sizes, stride 2 and 5x5 kernels.
SHAPES = [
    (3, 8, 3, 1, 16),
    (16, 32, 3, 2, 15),
    (32, 64, 5, 1, 12),
    (8, 8, 1, 1, 7),
    (512, 512, 3, 1, 14),
    (24, 40, 5, 2, 9),
]


def _out_size(size: int, stride: int) -> int:
    return -(-size // stride)  # "same" padding: ceil(size / stride)


def test_fc_vs_conv_is_still_there():
    assert fc_vs_conv_params((100, 100, 3), 5)["fc_connections"] == 30_000


@pytest.mark.parametrize(("in_ch", "out_ch", "kernel", "stride", "size"), SHAPES)
def test_standard_cost_closed_form_equals_measured(in_ch, out_ch, kernel, stride, size):
    layer = standard_conv(in_ch, out_ch, kernel, stride)
    cost = standard_conv_cost(in_ch, out_ch, kernel, _out_size(size, stride))
    assert count_macs(layer, (1, in_ch, size, size)) == cost["madds"]
    assert count_params(layer) == cost["params"]


@pytest.mark.parametrize(("in_ch", "out_ch", "kernel", "stride", "size"), SHAPES)
def test_separable_cost_closed_form_equals_measured(in_ch, out_ch, kernel, stride, size):
    layer = separable_conv(in_ch, out_ch, kernel, stride)
    out = _out_size(size, stride)
    cost = separable_conv_cost(in_ch, out_ch, kernel, out)
    assert count_macs(layer, (1, in_ch, size, size)) == cost["madds"]
    assert count_params(layer) == cost["params"]
    assert count_macs(layer.depthwise, (1, in_ch, size, size)) == cost["depthwise_madds"]
    assert count_macs(layer.pointwise, (1, in_ch, out, out)) == cost["pointwise_madds"]


def test_cost_accepts_rectangular_maps():
    layer = standard_conv(4, 6, 3)
    assert count_macs(layer, (1, 4, 5, 9)) == standard_conv_cost(4, 6, 3, (5, 9))["madds"]


@pytest.mark.parametrize(("n_out", "kernel"), [(512, 3), (64, 3), (32, 5), (1024, 7)])
def test_ratio_is_one_over_n_plus_one_over_k_squared(n_out, kernel):
    ratio = separable_cost_ratio(n_out, kernel)
    assert ratio == pytest.approx(1 / n_out + 1 / kernel**2)
    # The ratio of the closed forms, for any M and Df, is the same number.
    for in_ch, size in [(3, 7), (128, 14)]:
        sep = separable_conv_cost(in_ch, n_out, kernel, size)
        std = standard_conv_cost(in_ch, n_out, kernel, size)
        assert sep["madds"] / std["madds"] == pytest.approx(ratio)
        assert sep["params"] / std["params"] == pytest.approx(ratio)


def test_separable_and_standard_have_the_same_output_shape():
    x = torch.randn(2, 16, 15, 15)
    for stride in (1, 2):
        assert (
            separable_conv(16, 24, 3, stride)(x).shape == standard_conv(16, 24, 3, stride)(x).shape
        )


def test_depthwise_part_has_one_filter_per_channel():
    layer = separable_conv(12, 20)
    assert layer.depthwise.groups == 12
    assert layer.depthwise.weight.shape == (12, 1, 3, 3)
    assert layer.pointwise.weight.shape == (20, 12, 1, 1)
    assert depthwise_conv(12).groups == 12
    assert pointwise_conv(12, 20).kernel_size == (1, 1)


@pytest.mark.parametrize(("stride", "size", "out"), [(1, 16, 16), (2, 16, 8), (2, 7, 4)])
def test_mobilenet_v1_block_shapes_and_layers(stride, size, out):
    block = MobileNetV1Block(8, 16, stride)
    assert block(torch.randn(2, 8, size, size)).shape == (2, 16, out, out)
    kinds = [type(m) for m in block.children()]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    # Weights of a separable conv plus BN's scale and shift for in_ch and out_ch channels.
    assert count_params(block) == separable_conv_cost(8, 16, 3, 1)["params"] + 2 * (8 + 16)


def test_mobilenet_v1_block_output_is_non_negative():
    assert MobileNetV1Block(4, 6)(torch.randn(1, 4, 5, 5)).min() >= 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: standard_conv(6, 4, 3, groups=4),
            r"in_ch must be divisible by groups \(4\), got 6",
        ),
        (
            lambda: standard_conv(8, 6, 3, groups=4),
            r"out_ch must be divisible by groups \(4\), got 6",
        ),
        (lambda: standard_conv(0, 4), r"in_ch must be a positive int, got 0"),
        (lambda: standard_conv(4, 4, 2), r"kernel_size must be a positive odd int, got 2"),
        (lambda: separable_conv(4, -1), r"out_ch must be a positive int, got -1"),
        (lambda: separable_conv(4, 8, 3, 0), r"stride must be a positive int, got 0"),
        (lambda: MobileNetV1Block(0, 8), r"in_ch must be a positive int, got 0"),
        (lambda: standard_conv_cost(3, 8, 3, 0), r"out_size must be a positive int"),
        (lambda: separable_conv_cost(3, 8, 0, 4), r"kernel_size must be a positive int, got 0"),
        (lambda: separable_cost_ratio(0, 3), r"n_out must be a positive int, got 0"),
        (lambda: separable_cost_ratio(8, -3), r"kernel must be a positive int, got -3"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
