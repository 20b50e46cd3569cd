import pytest
import torch
import torchvision
from torch import nn

from effdl.claims import REGISTRY
from effdl.claims.runner import load_pillars
from effdl.experiments.convolutions import MOBILENET_V1_PUBLISHED
from effdl.measure import count_macs, count_params
from effdl.models.conv import MobileNetV1Block
from effdl.models.mobilenet import InvertedResidual, mobilenet_v1, mobilenet_v2

IMAGENET = (1, 3, 224, 224)


@pytest.fixture(scope="module")
def torchvision_v2():
    return torchvision.models.mobilenet_v2(weights=None).eval()


def _published(alpha, resolution, separable=1):
    (row,) = [
        r
        for r in MOBILENET_V1_PUBLISHED
        if (r["alpha"], r["resolution"], r["separable"]) == (alpha, resolution, separable)
    ]
    return row


@pytest.mark.parametrize("separable", [1, 0])
def test_v1_reproduces_table_4_within_2_percent(separable):
    model = mobilenet_v1(separable=bool(separable))
    published = _published(1.0, 224, separable)
    assert count_params(model) / 1e6 == pytest.approx(published["params_M"], rel=0.02)
    assert count_macs(model, IMAGENET) / 1e6 == pytest.approx(published["madds_M"], rel=0.02)


def test_v1_has_the_layers_of_table_1():
    model = mobilenet_v1()
    blocks = list(model.features)
    assert len(blocks) == 14
    assert sum(isinstance(b, MobileNetV1Block) for b in blocks) == 13
    assert model.features(torch.randn(1, 3, 224, 224)).shape == (1, 1024, 7, 7)
    assert model.classifier.in_features == 1024


def test_v2_has_exactly_torchvisions_params_and_macs(torchvision_v2):
    model = mobilenet_v2()
    assert count_params(model) == 3_504_872
    assert count_macs(model, IMAGENET) == count_macs(torchvision_v2, IMAGENET)


def test_v2_loads_torchvision_state_dict_and_matches_its_outputs(torchvision_v2):
    model = mobilenet_v2()
    model.load_state_dict(torchvision_v2.state_dict(), strict=True)
    model.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), torchvision_v2(x))


@pytest.mark.parametrize("width_mult", [0.5, 1.4])
def test_v2_width_multiplier_matches_torchvision(width_mult):
    reference = torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult)
    model = mobilenet_v2(width_mult=width_mult)
    model.load_state_dict(reference.state_dict(), strict=True)
    assert count_params(model) == count_params(reference)


def test_inverted_residual_shapes_and_residual():
    block = InvertedResidual(16, 16, 1, 6)
    assert block.use_residual
    assert block(torch.randn(2, 16, 8, 8)).shape == (2, 16, 8, 8)
    down = InvertedResidual(16, 24, 2, 6)
    assert not down.use_residual
    assert down(torch.randn(2, 16, 8, 8)).shape == (2, 24, 4, 4)
    # Expansion 1 skips the expanding 1x1: depthwise, projection, BN.
    assert len(InvertedResidual(32, 16, 1, 1).conv) == 3
    # The projection is linear: the block ends with BatchNorm, no activation.
    assert isinstance(block.conv[-1], nn.BatchNorm2d)


@pytest.mark.parametrize("builder", [mobilenet_v1, mobilenet_v2])
@pytest.mark.parametrize(("in_channels", "size", "final"), [(1, 8, 1), (3, 32, 4)])
def test_small_input_versions_run(builder, in_channels, size, final):
    model = builder(num_classes=10, in_channels=in_channels, small_input=True)
    x = torch.randn(2, in_channels, size, size)
    assert model.features(x).shape[-2:] == (final, final)
    assert model(x).shape == (2, 10)


def test_small_input_keeps_the_parameter_count():
    assert count_params(mobilenet_v2(small_input=True)) == 3_504_872


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mobilenet_v1(alpha=0), r"alpha must be > 0, got 0"),
        (lambda: mobilenet_v1(alpha=-0.5), r"alpha must be > 0, got -0.5"),
        (lambda: mobilenet_v1(num_classes=0), r"num_classes must be a positive int, got 0"),
        (lambda: mobilenet_v1(in_channels=2.5), r"in_channels must be a positive int, got 2.5"),
        (lambda: mobilenet_v1(table=[("dense", 8, 1)]), r"table rows must be"),
        (lambda: mobilenet_v2(width_mult=0), r"width_mult must be > 0, got 0"),
        (lambda: mobilenet_v2(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
        (lambda: InvertedResidual(16, 16, 3, 6), r"stride must be 1 or 2, got 3"),
        (lambda: InvertedResidual(16, 16, 1, 0), r"expand_ratio must be a number >= 1, got 0"),
        (lambda: mobilenet_v1(num_classes=True), r"num_classes must be a positive int, got True"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_depth_multiplier_claim_rule_allows_the_printed_rounding():
    load_pillars()
    entry = REGISTRY["depth-multiplier"]
    measured = dict(entry.published)
    assert entry.verdict(entry.published, {**measured, "alpha0.25_params_M": 0.47}).verdict == (
        "reproduced"
    )
    assert entry.verdict(entry.published, {**measured, "alpha0.25_params_M": 0.40}).verdict in (
        "close",
        "differs",
    )
