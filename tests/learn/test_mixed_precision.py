"""Mixed precision: the float formats against torch.finfo and numpy, underflow and summation
against closed forms, the loss scaler step for step against torch.amp.GradScaler, the reference
trainer against a hand-written fp32 loop, and the memory of a training step."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from effdl.learn import mixed_precision as M

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("dtype", DTYPES)
def test_float_format_equals_torch_finfo(dtype):
    f, info = M.float_format(dtype), torch.finfo(dtype)
    assert f.bits == info.bits
    assert f.max == info.max and f.eps == info.eps
    assert f.smallest_normal == info.smallest_normal
    assert f.smallest_subnormal == info.smallest_normal * info.eps
    # the smallest subnormal survives the cast, half of it rounds (to even) to zero
    assert float(torch.tensor(f.smallest_subnormal).to(dtype)) == f.smallest_subnormal
    assert float(torch.tensor(f.smallest_subnormal / 2).to(dtype)) == 0.0


def test_float_format_names_and_layouts():
    assert M.float_format("fp16").max == 65504.0
    assert M.float_format("bf16").exponent_bits == M.float_format("fp32").exponent_bits == 8
    assert M.float_format("bf16").mantissa_bits == 7
    assert M.float_format("fp16").bias == 15 and M.float_format("fp32").bias == 127


@pytest.mark.parametrize(
    ("value", "dtype", "bits"),
    [
        (1.0, torch.float16, ("0", "01111", "0000000000")),
        (-2.0, torch.float16, ("1", "10000", "0000000000")),
        (65504.0, torch.float16, ("0", "11110", "1111111111")),
        (2.0**-24, torch.float16, ("0", "00000", "0000000001")),  # the smallest subnormal
        (1.0, torch.bfloat16, ("0", "01111111", "0000000")),
        (0.1, torch.float32, ("0", "01111011", "10011001100110011001101")),
    ],
)
def test_float_bits_hand_checked(value, dtype, bits):
    assert M.float_bits(value, dtype) == bits


@given(st.floats(min_value=-6e4, max_value=6e4, allow_nan=False, allow_subnormal=True))
@settings(max_examples=200, deadline=None)
def test_float_bits_match_numpy_float16(value):
    sign, exponent, mantissa = M.float_bits(value, torch.float16)
    raw = int(np.array([value], dtype=np.float16).view(np.uint16)[0])
    assert sign + exponent + mantissa == format(raw, "016b")


@given(st.floats(min_value=1e-7, max_value=6e4, allow_nan=False))
@settings(max_examples=200, deadline=None)
def test_spacing_matches_numpy_for_fp16_and_fp32(value):
    half = float(np.float16(value))
    assert M.spacing(value, torch.float16) == float(np.spacing(np.float16(half)))
    single = float(np.float32(value))
    assert M.spacing(value, torch.float32) == float(np.spacing(np.float32(single)))


def test_spacing_of_bf16_and_at_the_top_of_the_range():
    assert M.spacing(1.0, "bf16") == 2.0**-7
    assert M.spacing(300.0, "bf16") == 2.0  # 256 <= 300 < 512: 2^8 * 2^-7
    assert M.spacing(65504.0, torch.float16) == math.inf
    assert M.spacing(70000.0, torch.float16) == math.inf  # rounds to inf itself
    assert M.spacing(-1e39, torch.float32) == math.inf


# ----------------------------------------------------------------------------- underflow, sums


def test_underflow_fraction_counts_only_the_values_that_vanish():
    f16 = M.float_format("fp16")
    t = torch.tensor([0.0, 1.0, f16.smallest_subnormal, f16.smallest_subnormal / 4, 1e-30])
    # four non-zero values; 2^-26 and 1e-30 flush to zero in fp16, none do in bf16
    assert M.underflow_fraction(t, torch.float16) == 0.5
    assert M.underflow_fraction(t, torch.bfloat16) == 0.0
    # scaling by 2^8 lifts 2^-26 into range; 1e-30 stays out
    assert M.underflow_fraction(t, torch.float16, scale=2.0**8) == 0.25
    assert M.underflow_fraction(torch.zeros(3), torch.float16) == 0.0


def test_sequential_sum_stalls_in_fp16_and_not_with_an_fp32_accumulator():
    values = torch.full((4096,), 0.25)
    assert M.sequential_sum(values, torch.float32) == 1024.0
    # in fp16 the spacing reaches 0.5 at 512: 512 + 0.25 rounds back to 512 (half to even)
    assert M.sequential_sum(values, torch.float16) == 512.0
    assert M.sequential_sum(values, torch.float16, accumulate=torch.float32) == 1024.0
    # bf16 stalls much earlier: spacing 2^-7 * 2^5 = 0.25 at 32, 0.5 from 64 on
    assert M.sequential_sum(values, torch.bfloat16) == 64.0


# ----------------------------------------------------------------------------- loss scaler


def _run(scaler_kind, pattern, **kwargs):
    """Train one parameter for len(pattern) steps; step i overflows where pattern[i]."""
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    optimizer = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    scaler = (
        torch.amp.GradScaler("cpu", **kwargs) if scaler_kind == "torch" else M.LossScaler(**kwargs)
    )
    scales = []
    for i, overflow in enumerate(pattern):
        optimizer.zero_grad()
        loss = (p * p).sum() * (i + 1) * (math.inf if overflow else 1.0)
        if scaler_kind == "torch":
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scales.append(scaler.get_scale())
        else:
            scaler.scale_loss(loss).backward()
            scaler.step(optimizer)
            scales.append(scaler.scale)
    return scales, p.detach().clone()


@given(
    pattern=st.lists(st.booleans(), min_size=1, max_size=40),
    init_scale=st.sampled_from([1.0, 3.7, 2.0**16, 1e38]),
    growth_factor=st.sampled_from([2.0, 1.7, 3.0]),
    backoff_factor=st.sampled_from([0.5, 0.3, 0.9]),
    growth_interval=st.integers(1, 5),
)
@settings(max_examples=60, deadline=None)
def test_loss_scaler_follows_grad_scaler_step_for_step(
    pattern, init_scale, growth_factor, backoff_factor, growth_interval
):
    kwargs = dict(
        init_scale=init_scale,
        growth_factor=growth_factor,
        backoff_factor=backoff_factor,
        growth_interval=growth_interval,
    )
    theirs, their_p = _run("torch", pattern, **kwargs)
    ours, our_p = _run("kit", pattern, **kwargs)
    assert ours == theirs
    torch.testing.assert_close(our_p, their_p, rtol=0, atol=0)


def test_loss_scaler_scripted_pattern():
    scaler = M.LossScaler(init_scale=8.0, growth_interval=2)
    trace = []
    for found_inf in (False, False, True, False, True, True, False, False, False):
        scaler.update(found_inf)
        trace.append(scaler.scale)
    assert trace == [8.0, 16.0, 8.0, 8.0, 4.0, 2.0, 2.0, 4.0, 4.0]
    assert scaler.skipped == 3


def test_loss_scaler_never_grows_to_infinity():
    scaler = M.LossScaler(init_scale=2.0**127, growth_interval=1)
    scaler.update(False)  # 2^128 overflows float32: the scale stays
    assert scaler.scale == 2.0**127


def test_a_skipped_step_leaves_the_parameters_alone():
    p = nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([p], lr=1.0)
    scaler = M.LossScaler(init_scale=4.0)
    (p.sum() * math.inf).backward()
    assert scaler.step(optimizer) is False
    assert torch.equal(p.detach(), torch.ones(2)) and scaler.scale == 2.0
    optimizer.zero_grad()
    scaler.scale_loss(p.sum()).backward()
    assert torch.equal(p.grad, torch.full((2,), 2.0))  # scaled by 2
    assert scaler.step(optimizer) is True
    assert torch.equal(p.detach(), torch.zeros(2))  # unscaled gradient 1, lr 1


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"init_scale": 0.0}, "init_scale"),
        ({"init_scale": -1.0}, "init_scale"),
        ({"growth_factor": 1.0}, "growth_factor"),
        ({"growth_factor": 0.5}, "growth_factor"),
        ({"backoff_factor": 0.0}, "backoff_factor"),
        ({"backoff_factor": 1.0}, "backoff_factor"),
        ({"growth_interval": 0}, "growth_interval"),
    ],
)
def test_loss_scaler_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        M.LossScaler(**kwargs)


# ----------------------------------------------------------------------------- trainers


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=False)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def _fp32_loop(model, loader, epochs, lr=0.1, momentum=0.9):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model


def test_fit_autocast_without_dtype_is_the_plain_fp32_loop():
    loader = _data()
    mine = _model()
    M.fit_autocast(mine, loader, dtype=None, epochs=2, lr=0.1)
    reference = _fp32_loop(_model(), loader, 2)
    for a, b in zip(mine.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_train_mixed_keeps_fp32_masters_close_to_the_fp32_run():
    loader = _data()
    model = _model()
    history = M.train_mixed(model, loader, loader, dtype=torch.bfloat16, epochs=10, lr=0.1)
    reference = _fp32_loop(_model(), loader, 10)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        # bf16 products (8 significant bits) move the weights a little, not far
        assert (a - b).abs().max() < 0.05
        assert not torch.equal(a, b)
    assert history.last["val_acc"] > 0.8 and history.last["skipped"] == 0


def test_train_mixed_with_a_huge_scale_backs_off_and_still_learns():
    loader = _data()
    model = _model()
    scaler = M.LossScaler(init_scale=2.0**24, growth_interval=1000)
    history = M.train_mixed(
        model, loader, loader, dtype=torch.float16, scaler=scaler, epochs=10, lr=0.1
    )
    # the scaled gradients overflow fp16 (65504) until the scale has backed off far enough:
    # those first steps are skipped, each halving the scale (no growth within 1000 steps)
    skipped = history.last["skipped"]
    assert 1 <= skipped < 30 and scaler.scale == 2.0 ** (24 - skipped)
    assert history.last["val_acc"] > 0.8


def test_fit_autocast_bf16_on_cpu_learns_and_keeps_fp32_weights():
    loader = _data()
    model = _model()
    history = M.fit_autocast(model, loader, loader, dtype="bf16", epochs=10, lr=0.1)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert history.last["val_acc"] > 0.8


@pytest.mark.parametrize(
    ("device", "dtype", "name"),
    [
        ("cpu", torch.float32, "dtype"),
        ("cpu", torch.int8, "dtype"),
        ("cuda", torch.float64, "dtype"),
        ("mps", torch.float16, "device"),
    ],
)
def test_check_autocast_refuses_what_autocast_cannot_do(device, dtype, name):
    with pytest.raises(ValueError, match=name):
        M.check_autocast(device, dtype)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="dtype"):
        M.float_format(torch.float64)
    with pytest.raises(TypeError, match="value"):
        M.float_bits("1", torch.float16)
    with pytest.raises(ValueError, match="scale"):
        M.underflow_fraction(torch.ones(2), torch.float16, scale=0.0)
    with pytest.raises(TypeError, match="t must"):
        M.underflow_fraction(torch.ones(2, dtype=torch.int32), torch.float16)
    with pytest.raises(ValueError, match="values"):
        M.sequential_sum(torch.ones(2, 2), torch.float16)
    with pytest.raises(ValueError, match="epochs"):
        M.train_mixed(_model(), _data(), epochs=0)
    with pytest.raises(TypeError, match="scaler"):
        M.train_mixed(_model(), _data(), scaler=torch.amp.GradScaler("cpu"))
    with pytest.raises(ValueError, match="dtype"):
        M.fit_autocast(_model(), _data(), dtype=torch.float32)


# ----------------------------------------------------------------------------- memory


def test_training_memory_counts_weights_gradients_and_saved_activations():
    model = nn.Sequential(nn.Linear(100, 200), nn.ReLU(), nn.Linear(200, 10))
    x = torch.randn(32, 100)
    full = M.training_memory(model, x)
    params = sum(p.numel() for p in model.parameters())
    assert full["weights"] == full["gradients"] == 4 * params and full["master"] == 0
    # saved for backward: the input and both Linear outputs' inputs (x, relu output) and the
    # ReLU's output mask or result; at least x (32x100) and the hidden (32x200) in fp32
    assert full["activations"] >= 4 * 32 * (100 + 200)
    half = M.training_memory(model, x, dtype=torch.bfloat16)
    assert half["weights"] == half["gradients"] == 2 * params
    assert half["master"] == 4 * params
    assert half["activations"] * 2 == pytest.approx(full["activations"], rel=0.2)
    assert half["total"] == sum(v for k, v in half.items() if k != "total")


def test_reference_recipe_in_bf16_is_what_autocast_computes_for_linear_layers():
    # autocast runs each Linear on bf16 copies of its input and fp32 weight and the loss in
    # fp32, and its gradients reach the fp32 weights through the casts: the recipe written out
    loader = _data()
    reference, autocast = _model(), _model()
    M.train_mixed(reference, loader, dtype=torch.bfloat16, epochs=3, lr=0.1)
    M.fit_autocast(autocast, loader, dtype=torch.bfloat16, epochs=3, lr=0.1)
    for a, b in zip(reference.parameters(), autocast.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
