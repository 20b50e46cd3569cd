"""Lesson 03's experiments on small settings: the figures they report against direct
computations with torch's own quantization functions."""

import numpy as np
import pytest
import torch
from torch import nn

from effdl.compress.quantize import quantize_weights_
from effdl.experiments import quantization as Q


@pytest.fixture(scope="module")
def trained():
    return Q.train_float_model(seed=0, epochs=3)


def test_build_quant_model_is_seeded_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b, c = Q.build_quant_model(0), Q.build_quant_model(0), Q.build_quant_model(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_ideal_size_counts_weights_at_the_bit_width_plus_qparams():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    # weight 12 values x 4 bits = 6 bytes, one scale + zero point = 8 bytes; bias (3) and
    # BatchNorm (weight, bias, running mean and var: 12) stay float32.
    assert Q.ideal_size_bytes(model, 4) == 6 + 8 + 4 * 3 + 4 * 12
    assert Q.ideal_size_bytes(model, 4, per_channel=True) == 6 + 3 * 8 + 4 * 3 + 4 * 12
    with pytest.raises(ValueError, match="bits"):
        Q.ideal_size_bytes(model, 1)


def test_bit_sweep_rows_equal_quantizing_a_copy_directly(trained):
    model, splits = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = Q.bit_sweep(model, splits, bits=(8, 3), per_channel=(False, True))
    assert [(r["bits"], r["per_channel"]) for r in rows] == [
        (8, False),
        (3, False),
        (8, True),
        (3, True),
    ]
    # the sweep works on copies
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    float_accuracy = Q.accuracy_percent(model, splits)
    for row in rows:
        copy = Q.build_quant_model(0)
        copy.load_state_dict(before)
        quantize_weights_(copy.eval(), row["bits"], per_channel=row["per_channel"])
        assert row["accuracy"] == pytest.approx(Q.accuracy_percent(copy, splits))
        assert row["float_accuracy"] == pytest.approx(float_accuracy)
        assert row["drop"] == pytest.approx(float_accuracy - row["accuracy"])
    eight_bit = [r for r in rows if r["bits"] == 8]
    assert all(abs(r["drop"]) <= 1.5 for r in eight_bit)


def test_bit_sweep_rejects_bad_bits(trained):
    model, splits = trained
    with pytest.raises(ValueError, match="bits"):
        Q.bit_sweep(model, splits, bits=(8, 1))
    with pytest.raises(ValueError, match="per_channel"):
        Q.bit_sweep(model, splits, per_channel=())


def test_error_histogram_rms_matches_torch_fake_quantize():
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    for bits in (8, 4, 2):
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        # symmetric, signed: s = max|w| / ((qmax - qmin) / 2), zero point 0
        scale = float(w.abs().max()) / ((qmax - qmin) / 2)
        direct = w - torch.fake_quantize_per_tensor_affine(w, scale, 0, qmin, qmax)
        h = Q.error_histogram(w, bits)
        assert torch.allclose(h["error"], direct, atol=1e-7)
        assert h["rms"] == pytest.approx(float(direct.pow(2).mean().sqrt()), rel=1e-5)
        assert h["levels"] == 2**bits and h["step"] == pytest.approx(scale)
        assert h["counts"].sum() == w.numel()
        # rounding error never exceeds half a step (inside the clamp range, which covers w)
        assert h["max_abs"] <= scale / 2 + 1e-6


def test_per_channel_error_is_smaller_when_channel_ranges_differ():
    w = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    w = w * torch.tensor([[0.01], [0.1], [1.0], [10.0]])
    per_tensor = Q.error_histogram(w, 4, per_channel=False)
    per_channel = Q.error_histogram(w, 4, per_channel=True)
    assert per_channel["rms"] < per_tensor["rms"]
    # the small channels are rounded far more finely with their own scale
    small = slice(0, 2)
    assert per_channel["error"][small].abs().max() < per_tensor["error"][small].abs().max()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"w": [1.0, 2.0]}, "w"),
        ({"w": torch.arange(4)}, "w"),
        ({"w": torch.ones(3), "bits": 9}, "bits"),
        ({"w": torch.ones(3), "bits": 1}, "bits"),
        ({"w": torch.ones(3), "bits": True}, "bits"),
        ({"w": torch.ones(3), "per_channel": True}, "per_channel"),
    ],
)
def test_error_histogram_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Q.error_histogram(**kwargs)


def test_int8_speed_small_shapes_report_consistent_figures():
    figures = Q.int8_speed((256, 512, 256), batch=32, threads=1, layer_width=256, min_run_time=0.05)
    assert figures["speedup"] == pytest.approx(figures["fp32_ms"] / figures["int8_ms"])
    assert figures["size_ratio"] == pytest.approx(figures["fp32_bytes"] / figures["int8_bytes"])
    assert figures["weight_count"] == 2 * 256 * 512
    # int8 weights: about 4x smaller once weights dominate the file (3.5x at these sizes)
    assert 3.5 < figures["size_ratio"] < 4.0
    assert figures["output_rel_error"] < 0.05
    # the integer-only layer is off by at most a couple of output steps from the float layer
    assert figures["kit_max_error_steps"] <= 2.5
    assert figures["kit_vs_torch"] == pytest.approx(
        figures["kit_linear_ms"] / figures["torch_int8_linear_ms"]
    )


def test_make_mlp_shapes_and_checks():
    mlp = Q.make_mlp((8, 16, 4))
    assert [m.out_features for m in mlp if isinstance(m, nn.Linear)] == [16, 4]
    assert isinstance(mlp[1], nn.ReLU)
    with pytest.raises(ValueError, match="layer_sizes"):
        Q.make_mlp((8,))
    with pytest.raises(ValueError, match="layer_sizes"):
        Q.make_mlp((8, 0))


def test_static_int8_cnn_keeps_accuracy_and_shrinks_the_model(trained):
    model, splits = trained
    figures = Q.static_int8_cnn(model, splits, batch=8, min_run_time=0.05)
    assert figures["fp32_accuracy"] == pytest.approx(Q.accuracy_percent(model, splits))
    assert abs(figures["accuracy_drop"]) <= 2.0
    assert figures["size_ratio"] > 1.5
    assert figures["params"] == sum(p.numel() for p in model.parameters())
    assert np.isfinite(figures["speedup"]) and figures["speedup"] > 0
