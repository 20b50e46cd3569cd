import pytest
import torch

from effdl.experiments.convolutions import (
    MOBILENET_V1_PUBLISHED,
    compare_conv_vs_separable_on_digits,
    mobilenet_v1_costs,
    time_conv_layers,
)
from effdl.measure import count_macs
from effdl.models.conv import separable_conv, standard_conv
from effdl.models.mobilenet import DIGITS_TABLE
from effdl.plots import plot_depth_multiplier


@pytest.fixture(scope="module")
def v1_costs():
    return mobilenet_v1_costs()


def _published(alpha, resolution, separable=1):
    (row,) = [
        r
        for r in MOBILENET_V1_PUBLISHED
        if (r["alpha"], r["resolution"], r["separable"]) == (alpha, resolution, separable)
    ]
    return row


def test_v1_costs_follow_tables_6_and_7(v1_costs):
    for row in v1_costs:
        published = _published(row["alpha"], row["resolution"])
        # Mult-adds within 2%; params printed to 0.1M, so within half of that or 2%.
        assert row["madds_M"] == pytest.approx(published["madds_M"], rel=0.02)
        assert abs(row["params_M"] - published["params_M"]) <= 0.05 + 0.02 * row["params_M"]


def test_v1_costs_scale_with_alpha_and_rho_squared(v1_costs):
    base = next(r for r in v1_costs if r["alpha"] == 1.0 and r["resolution"] == 224)
    fc = 1024 * 1000  # the classifier's mult-adds do not scale with the resolution
    for row in v1_costs:
        if row["alpha"] == 1.0 and row["resolution"] != 224:
            expected = (base["madds"] - fc) * (row["resolution"] / 224) ** 2 + fc
            assert row["madds"] == pytest.approx(expected, rel=1e-3)
            assert row["params"] == base["params"]


def test_plot_depth_multiplier_returns_a_figure(v1_costs):
    fig = plot_depth_multiplier(v1_costs, MOBILENET_V1_PUBLISHED)
    assert len(fig.axes) == 3
    assert fig.axes[0].get_xlabel() == "width multiplier alpha"


def test_digits_comparison_reports_both_models():
    tiny = (("conv", 8, 1), ("separable", 16, 2))
    result = compare_conv_vs_separable_on_digits(epochs=1, table=tiny)
    assert set(result) == {"standard", "separable"}
    for row in result.values():
        assert set(row) >= {"test_acc", "params", "macs", "latency_ms"}
        assert 0 <= row["test_acc"] <= 1
    assert result["separable"]["params"] < result["standard"]["params"]
    assert result["separable"]["macs"] < result["standard"]["macs"]
    assert DIGITS_TABLE[0][0] == "conv"


def test_digits_comparison_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    compare_conv_vs_separable_on_digits(epochs=1, table=(("conv", 4, 1),))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_time_conv_layers_counts_the_closed_form_macs_and_times_every_part():
    rows = time_conv_layers((4, 6), (8,), min_run_time=0.01)
    assert [(r["map_size"], r["channels"]) for r in rows] == [(4, 8), (6, 8)]
    for row in rows:
        size, ch = row["map_size"], row["channels"]
        assert row["full_macs"] == 9 * ch * ch * size * size
        assert row["dw_macs"] + row["pw_macs"] == row["split_macs"]
        assert row["macs_ratio"] == pytest.approx(1 / ch + 1 / 9)
        assert all(row[f"{k}_ms"] > 0 for k in ("full", "split", "dw", "pw"))
        assert row["latency_ratio"] == row["split_ms"] / row["full_ms"]
    assert count_macs(standard_conv(8, 8), (1, 8, 4, 4)) == rows[0]["full_macs"]
    assert count_macs(separable_conv(8, 8), (1, 8, 4, 4)) == rows[0]["split_macs"]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: compare_conv_vs_separable_on_digits(epochs=1, threads=0), r"threads must be"),
        (lambda: time_conv_layers((8,), (True,)), r"channels must be a positive int, got True"),
        (lambda: time_conv_layers((), (8,)), r"map_sizes must be a non-empty sequence"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
