import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import observer as tobs

from effdl.compress.quantize import (
    DTYPES,
    IntegerConv2d,
    IntegerLinear,
    MinMaxObserver,
    MovingAverageObserver,
    PercentileObserver,
    affine_qparams,
    dequantize,
    dynamic_int8,
    fake_quantize,
    fake_quantize_ste,
    int_matmul,
    prepare_qat,
    qrange,
    quantize_multiplier,
    quantize_per_channel,
    quantize_per_tensor,
    quantize_weights_,
    static_int8,
    torch_ao_available,
)

# torch warns that its quantized tensors are deprecated; they are the reference here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

TORCH_DTYPE = {torch.uint8: torch.quint8, torch.int8: torch.qint8}
# power-of-two scales make x / s exact; the others exercise float32 reciprocal rounding
SCALES = [0.25, 2.0**-7, 0.1, 0.037, 1 / 3, 2.3e-5]
needs_ao = pytest.mark.skipif(not torch_ao_available(), reason="no torch.ao int8 kernels")


def tie_inputs(scale: float, zero_point: int, dtype: torch.dtype) -> torch.Tensor:
    """Values on every half-step of the grid (and beyond it, to test clamping) plus noise."""
    qmin, qmax = DTYPES[dtype]
    k = torch.arange(qmin - zero_point - 20, qmax - zero_point + 20, dtype=torch.float64)
    halves = ((k + 0.5) * scale).float()
    steps = (k * scale).float()
    noise = torch.randn(5000, generator=torch.Generator().manual_seed(0)) * scale * 100
    return torch.cat([halves, steps, noise])


# --- the affine mapping -----------------------------------------------------------------------


def test_qrange_examples():
    assert qrange(8, False) == (0, 255)
    assert qrange(8, True) == (-128, 127)
    assert qrange(2, False) == (0, 3)
    assert qrange(4, True) == (-8, 7)
    assert qrange(16, True) == (-32768, 32767)


@pytest.mark.parametrize("bits", [1, 9, 15, 32, 0, -8, 8.0, True])
def test_qrange_rejects_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        qrange(bits, False)


@pytest.mark.parametrize(
    ("dtype", "qscheme", "symmetric", "signed"),
    [
        (torch.quint8, torch.per_tensor_affine, False, False),
        (torch.qint8, torch.per_tensor_affine, False, True),
        (torch.qint8, torch.per_tensor_symmetric, True, True),
        (torch.quint8, torch.per_tensor_symmetric, True, False),
    ],
)
@pytest.mark.parametrize("shift", [0.0, 1.5, -4.0])
def test_affine_qparams_match_torch_minmax_observer(dtype, qscheme, symmetric, signed, shift):
    x = torch.randn(1000, generator=torch.Generator().manual_seed(1)) * 3 + shift
    ref = tobs.MinMaxObserver(dtype=dtype, qscheme=qscheme)
    ref(x)
    ref_scale, ref_zero = ref.calculate_qparams()
    scale, zero = affine_qparams(
        float(x.min()), float(x.max()), 8, symmetric=symmetric, signed=signed
    )
    assert scale == float(ref_scale) and zero == int(ref_zero)


def test_affine_qparams_per_channel_match_torch():
    x = torch.randn(6, 50, generator=torch.Generator().manual_seed(2)) * torch.arange(1, 7)[:, None]
    x[2] += 5  # a channel that is all positive
    for qscheme, symmetric in [
        (torch.per_channel_affine, False),
        (torch.per_channel_symmetric, True),
    ]:
        ref = tobs.PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=qscheme)
        ref(x)
        ref_scale, ref_zero = ref.calculate_qparams()
        scale, zero = affine_qparams(
            x.min(1).values, x.max(1).values, symmetric=symmetric, signed=True
        )
        assert torch.equal(scale, ref_scale) and torch.equal(zero, ref_zero.long())


def test_affine_qparams_zero_width_range_uses_eps_like_torch():
    ref = tobs.MinMaxObserver()
    ref(torch.zeros(10))
    scale, zero = affine_qparams(0.0, 0.0)
    assert scale == float(ref.calculate_qparams()[0]) == torch.finfo(torch.float32).eps
    assert zero == 0
    # a constant positive tensor still maps exactly: 0 is in the range, the constant on qmax
    scale, zero = affine_qparams(2.0, 2.0)
    assert zero == 0 and scale == pytest.approx(2.0 / 255)


def test_affine_qparams_bad_input():
    with pytest.raises(ValueError, match="bits"):
        affine_qparams(-1.0, 1.0, 1)
    with pytest.raises(ValueError, match="lo"):
        affine_qparams(1.0, -1.0)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(
    ("dtype", "zero_point"),
    [(torch.uint8, 0), (torch.uint8, 131), (torch.int8, 0), (torch.int8, -17)],
)
def test_quantize_per_tensor_is_bit_exact_with_torch_ties_included(scale, dtype, zero_point):
    x = tie_inputs(scale, zero_point, dtype)
    ref = torch.quantize_per_tensor(x, scale, zero_point, TORCH_DTYPE[dtype]).int_repr()
    got = quantize_per_tensor(x, scale, zero_point, dtype)
    assert got.dtype == dtype
    assert torch.equal(got, ref)


def test_quantize_rounds_ties_to_even_and_clamps():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0])
    got = quantize_per_tensor(x, 1.0, 0, torch.int8)
    assert got.tolist() == [0, 2, 2, 0, -2, 127, -128]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_per_channel_is_bit_exact_with_torch(dtype, axis):
    gen = torch.Generator().manual_seed(3)
    channels = len(SCALES)
    scales = torch.tensor(SCALES, dtype=torch.float64)
    qmin, qmax = DTYPES[dtype]
    zeros = torch.randint(qmin, qmax + 1, (channels,), generator=gen)
    # each channel: every half-step of its own grid (and past its ends), then noise
    k = torch.arange(-300, 300, dtype=torch.float64)
    halves = ((k[None, :] + 0.5) * scales[:, None]).float()
    noise = torch.randn(channels, 600, generator=gen) * scales[:, None].float() * 100
    rows = torch.cat([halves, noise], dim=1)  # (channels, 1200)
    x = rows.reshape(channels, 2, 600).movedim(0, axis).contiguous()
    ref = torch.quantize_per_channel(x, scales, zeros, axis % 3, TORCH_DTYPE[dtype]).int_repr()
    got = quantize_per_channel(x, scales, zeros, axis, dtype)
    assert torch.equal(got, ref)


def test_dequantize_matches_torch():
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(4))
    qt = torch.quantize_per_tensor(x, 0.037, 100, torch.quint8)
    got = dequantize(qt.int_repr(), 0.037, 100)
    assert torch.equal(got, qt.dequantize())
    scales, zeros = torch.tensor([0.1, 0.02, 0.3, 0.05, 0.011]), torch.tensor([0, -3, 5, 1, 0])
    qc = torch.quantize_per_channel(x, scales.double(), zeros, 0, torch.qint8)
    got = dequantize(qc.int_repr(), scales, zeros, axis=0)
    assert torch.equal(got, qc.dequantize())


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8, 16])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("scale", [0.25, 0.037, 1 / 3])
def test_fake_quantize_matches_torch_at_every_bit_width(bits, signed, scale):
    qmin, qmax = qrange(bits, signed)
    zero_point = (qmin + qmax + 1) // 2 if not signed else 0
    k = torch.arange(qmin - zero_point - 3, qmax - zero_point + 3, dtype=torch.float64)[:4000]
    x = torch.cat([((k + 0.5) * scale).float(), torch.randn(3000) * scale * 2**bits / 4])
    ref = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, qmin, qmax)
    assert torch.equal(fake_quantize(x, scale, zero_point, bits, signed=signed), ref)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_fake_quantize_per_channel_matches_torch(bits):
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(8, 3, 3, 3, generator=gen)
    flat = w.flatten(1)
    scale, zero = affine_qparams(flat.min(1).values, flat.max(1).values, bits)
    qmin, qmax = qrange(bits, False)
    ref = torch.fake_quantize_per_channel_affine(w, scale, zero.int(), 0, qmin, qmax)
    assert torch.equal(fake_quantize(w, scale, zero, bits, axis=0), ref)


def test_quantize_bad_input_names_the_argument():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="scale"):
        quantize_per_tensor(x, 0.0, 0, torch.uint8)
    with pytest.raises(ValueError, match="scale"):
        quantize_per_tensor(x, -0.1, 0, torch.uint8)
    with pytest.raises(ValueError, match="zero_point"):
        quantize_per_tensor(x, 0.1, 256, torch.uint8)
    with pytest.raises(ValueError, match="zero_point"):
        quantize_per_tensor(x, 0.1, -129, torch.int8)
    with pytest.raises(ValueError, match="dtype"):
        quantize_per_tensor(x, 0.1, 0, torch.int32)
    with pytest.raises(ValueError, match="axis"):
        quantize_per_channel(x, torch.ones(3), torch.zeros(3), 2, torch.uint8)
    with pytest.raises(ValueError, match="scale"):
        quantize_per_channel(x, torch.tensor([1.0, 0.0, 1.0]), torch.zeros(3), 1, torch.uint8)
    with pytest.raises(ValueError, match="zero_point"):
        quantize_per_channel(x, torch.ones(3), torch.tensor([0, 300, 0]), 1, torch.uint8)
    with pytest.raises(ValueError, match="scales and zero_points"):
        quantize_per_channel(x, torch.ones(4), torch.zeros(4), 1, torch.uint8)
    with pytest.raises(ValueError, match="bits"):
        fake_quantize(x, 0.1, 0, 9)
    with pytest.raises(ValueError, match="zero_point"):
        fake_quantize(x, 0.1, 4, 2)  # 2 unsigned bits hold 0..3
    with pytest.raises(ValueError, match="axis"):
        fake_quantize(x, torch.ones(4), torch.zeros(4), axis=-3)
    with pytest.raises(ValueError, match="scale"):
        dequantize(torch.zeros(3, dtype=torch.uint8), 0, 0)


# --- observers --------------------------------------------------------------------------------


def batches(n=5, shape=(16, 6)):
    gen = torch.Generator().manual_seed(6)
    return [torch.randn(*shape, generator=gen) * (i + 1) + i for i in range(n)]


@pytest.mark.parametrize("symmetric", [False, True])
def test_minmax_observer_matches_torch(symmetric):
    ours = MinMaxObserver()
    qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    ref = tobs.MinMaxObserver(dtype=torch.quint8, qscheme=qscheme)
    pc_qscheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    ref_pc = tobs.PerChannelMinMaxObserver(ch_axis=1, dtype=torch.quint8, qscheme=pc_qscheme)
    for x in batches():
        assert ours.observe(x) is x
        ref(x)
        ref_pc(x)
    scale, zero = ours.qparams(symmetric=symmetric)
    ref_scale, ref_zero = ref.calculate_qparams()
    assert (scale, zero) == (float(ref_scale), int(ref_zero))
    scale, zero = ours.qparams(symmetric=symmetric, axis=1)
    ref_scale, ref_zero = ref_pc.calculate_qparams()
    assert torch.equal(scale, ref_scale) and torch.equal(zero, ref_zero.long())


def test_moving_average_observer_matches_torch():
    ours = MovingAverageObserver(momentum=0.1)
    ref = tobs.MovingAverageMinMaxObserver(averaging_constant=0.1)
    ref_pc = tobs.MovingAveragePerChannelMinMaxObserver(
        averaging_constant=0.1, ch_axis=1, qscheme=torch.per_channel_affine
    )
    for x in batches():
        ours.observe(x)
        ref(x)
        ref_pc(x)
    lo, hi = ours.range()
    assert torch.allclose(lo, ref.min_val) and torch.allclose(hi, ref.max_val)
    scale, zero = ours.qparams()
    ref_scale, ref_zero = ref.calculate_qparams()
    assert scale == pytest.approx(float(ref_scale), rel=1e-6) and zero == int(ref_zero)
    scale, zero = ours.qparams(axis=1)
    ref_scale, ref_zero = ref_pc.calculate_qparams()
    assert torch.allclose(scale, ref_scale) and torch.equal(zero, ref_zero.long())


def test_percentile_observer_clips_outliers():
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(7))
    x[:3] = torch.tensor([1000.0, -1000.0, 500.0])
    clipped = PercentileObserver(99.9)
    full = PercentileObserver(100)
    minmax = MinMaxObserver()
    for obs in (clipped, full, minmax):
        obs.observe(x)
    lo, hi = clipped.range()
    assert 2.5 < float(hi) < 4 and -4 < float(lo) < -2.5
    assert torch.equal(torch.stack(full.range()), torch.stack(minmax.range()))
    assert clipped.qparams()[0] < minmax.qparams()[0] / 100
    lo_c, hi_c = clipped.range(axis=0)
    assert lo_c.shape == (100_000,)


def test_observer_bad_input():
    with pytest.raises(ValueError, match="observe"):
        MinMaxObserver().qparams()
    obs = MinMaxObserver()
    obs.observe(torch.randn(4, 3))
    with pytest.raises(ValueError, match="axis"):
        obs.qparams(axis=2)
    with pytest.raises(ValueError, match="bits"):
        obs.qparams(bits=1)
    obs.observe(torch.randn(5, 3))  # batch size changed: per-channel along 0 is gone
    with pytest.raises(ValueError, match="axis"):
        obs.qparams(axis=0)
    assert obs.qparams(axis=1)[0].shape == (3,)
    with pytest.raises(ValueError, match="momentum"):
        MovingAverageObserver(momentum=1.5)
    with pytest.raises(ValueError, match="percentile"):
        PercentileObserver(percentile=0)


# --- post-training weight quantization and QAT ------------------------------------------------


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 3 * 3, 10),
    )


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("per_channel", [False, True])
def test_quantize_weights_puts_each_weight_on_a_grid(bits, per_channel):
    model = small_cnn()
    before = [m.weight.detach().clone() for m in model if isinstance(m, nn.Conv2d | nn.Linear)]
    assert quantize_weights_(model, bits, per_channel=per_channel) is model
    after = [m.weight.detach() for m in model if isinstance(m, nn.Conv2d | nn.Linear)]
    for w0, w in zip(before, after, strict=True):
        groups = w.flatten(1) if per_channel else w.reshape(1, -1)
        for row in groups:
            assert row.unique().numel() <= 2**bits
        amax = w0.flatten(1).abs().amax(1, keepdim=True) if per_channel else w0.abs().max()
        step = amax / ((2**bits - 1) / 2)
        assert ((w - w0).flatten(1).abs() <= step.reshape(-1, 1) / 2 + 1e-7).all()
    assert not torch.equal(before[0], after[0])


def test_fake_quantize_ste_gradient_is_one_inside_zero_outside():
    scale, zero = 0.1, 0
    x = torch.tensor([-1.0, -0.7, 0.0, 0.33, 0.79, 0.8, 2.0], requires_grad=True)
    y = fake_quantize_ste(x, scale, zero, 4, signed=True)  # grid -0.8 .. 0.7
    assert torch.equal(y.detach(), fake_quantize(x.detach(), scale, zero, 4, signed=True))
    y.sum().backward()
    inside = (torch.round(x.detach() / scale) >= -8) & (torch.round(x.detach() / scale) <= 7)
    assert torch.equal(x.grad, inside.float())
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_prepare_qat_trains_and_uses_quantized_weights():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(256, 1, 8, 8, generator=gen)
    y = (x.mean((1, 2, 3)) > 0).long() + 2 * (x[:, 0, :4].mean((1, 2)) > 0).long()
    model = prepare_qat(small_cnn(), bits=4, per_channel=True, activations=True)
    conv = model[0]
    assert conv.weight.flatten(1)[0].unique().numel() <= 16
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    assert conv.parametrizations.weight.original.grad is not None
    with pytest.raises(ValueError, match="bits"):
        prepare_qat(small_cnn(), bits=1)


# --- torch.ao int8 kernels --------------------------------------------------------------------


def serialized_size(model):
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


@needs_ao
def test_dynamic_int8_is_close_and_about_four_times_smaller():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 256)).eval()
    q = dynamic_int8(model)
    x = torch.randn(32, 256)
    with torch.no_grad():
        ref, got = model(x), q(x)
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()
    assert isinstance(model[0], nn.Linear)  # the float model is untouched
    ratio = serialized_size(model) / serialized_size(q)
    assert 3.5 < ratio < 4.1


@needs_ao
def test_static_int8_cnn_is_close_to_float():
    model = small_cnn().eval()
    gen = torch.Generator().manual_seed(9)
    calib = [torch.randn(32, 1, 8, 8, generator=gen) for _ in range(4)]
    q = static_int8(model, calib)
    x = torch.randn(64, 1, 8, 8, generator=gen)
    with torch.no_grad():
        ref, got = model(x), q(x)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert (got - ref).abs().max() < 0.1 * ref.abs().max()
    assert "quantized" in type(q.model[0]).__module__  # conv-bn-relu fused and converted
    with pytest.raises(ValueError, match="calibration_batches"):
        static_int8(model, [])
    with pytest.raises(ValueError, match="backend"):
        static_int8(model, calib, backend="tpu")


# --- integer-only inference -------------------------------------------------------------------


def test_quantize_multiplier_reproduces_m():
    gen = torch.Generator().manual_seed(10)
    ms = [0.5, 0.25, 1.0, 0.999999999, 1 / 3, 3.7, 1e-9] + (
        torch.rand(200, generator=gen).double() * 1e-3
    ).tolist()
    for m in ms:
        m0, shift = quantize_multiplier(m)
        assert 2**30 <= m0 < 2**31 and isinstance(m0, int) and isinstance(shift, int)
        approx = m0 * 2.0**-31 * 2.0**-shift  # m0 * 2^-31 * 2^-shift
        assert abs(approx - m) <= m * 2.0**-31
    for bad in (0.0, -0.5, math.inf, math.nan, 2.0**31):
        with pytest.raises(ValueError, match="m "):
            quantize_multiplier(bad)


@pytest.mark.parametrize("shape", [(1, 5, 3), (17, 64, 32), (33, 7, 9), (0, 4, 4)])
@pytest.mark.parametrize("a_dtype", [torch.int8, torch.uint8])
def test_int_matmul_equals_int32_product(shape, a_dtype):
    m, k, n = shape
    gen = torch.Generator().manual_seed(11)
    qmin, qmax = DTYPES[a_dtype]
    a = torch.randint(qmin, qmax + 1, (m, k), generator=gen).to(a_dtype)
    b = torch.randint(-128, 128, (k, n), generator=gen).to(torch.int8)
    got = int_matmul(a, b)
    assert got.dtype == torch.int32
    assert torch.equal(got, a.to(torch.int32) @ b.to(torch.int32))
    assert torch.equal(int_matmul(a, b, kernel="int32"), got)
    if hasattr(torch, "_int_mm"):
        assert torch.equal(int_matmul(a, b, kernel="int_mm"), got)
    assert torch.equal(int_matmul(a, b.t().contiguous().t()), got)  # non-contiguous b


def test_int_matmul_bad_input():
    a = torch.zeros(4, 3, dtype=torch.int8)
    with pytest.raises(ValueError, match="2-D"):
        int_matmul(a[None], a.t())
    with pytest.raises(ValueError, match="columns"):
        int_matmul(a, a)
    with pytest.raises(ValueError, match="int8"):
        int_matmul(a.int(), a.t().int())
    with pytest.raises(ValueError, match="kernel"):
        int_matmul(a, a.t(), kernel="fast")


def simulated_reference(layer_fn, x_q, in_qparams, out_qparams, out_dtype, integer_layer):
    """Float computation on the same integers: dequantized input and weights, then the output
    quantized with the output qparams. Integer-only inference differs only by rounding."""
    s_in, z_in = in_qparams
    x = dequantize(x_q, s_in, z_in)
    w = integer_layer.weight_q.float() * integer_layer.weight_scale[:, None]
    b = integer_layer.bias_q.double() * s_in * integer_layer.weight_scale.double()
    y = layer_fn(x, w, b.float())
    return y, quantize_per_tensor(y, *out_qparams, out_dtype)


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize(
    ("in_dtype", "in_zero", "out_dtype", "out_zero"),
    [(torch.uint8, 120, torch.uint8, 90), (torch.int8, -5, torch.int8, 3)],
)
def test_integer_linear_matches_float_within_one_step(
    per_channel, in_dtype, in_zero, out_dtype, out_zero
):
    torch.manual_seed(12)
    linear = nn.Linear(64, 40)
    x = torch.randn(50, 64)
    in_q = (float(x.abs().max()) / 127, in_zero)
    with torch.no_grad():
        y_float = linear(x)
    out_q = (float(y_float.abs().max()) / 110, out_zero)
    layer = IntegerLinear.from_float(
        linear, in_q, out_q, per_channel=per_channel, output_dtype=out_dtype
    )
    x_q = quantize_per_tensor(x, *in_q, in_dtype)
    got = layer(x_q)
    assert got.dtype == out_dtype and got.shape == (50, 40)
    _, ref = simulated_reference(
        lambda v, w, b: F.linear(v, w, b), x_q, in_q, out_q, out_dtype, layer
    )
    assert (got.int() - ref.int()).abs().max() <= 1
    # against the float layer itself: weight and input rounding add a few steps at most
    direct = quantize_per_tensor(y_float, *out_q, out_dtype)
    assert (got.int() - direct.int()).abs().float().mean() < 1.0
    # leading batch dims are kept; the int32 fallback gives the same integers
    assert torch.equal(layer(x_q.reshape(5, 10, 64)).reshape(50, 40), got)
    layer.kernel = "int32"
    assert torch.equal(layer(x_q), got)


@pytest.mark.parametrize(
    ("stride", "padding", "dilation"), [(1, 0, 1), (1, 1, 1), (2, 1, 1), (1, 2, 2)]
)
def test_integer_conv2d_matches_f_conv2d_within_one_step(stride, padding, dilation):
    torch.manual_seed(13)
    conv = nn.Conv2d(3, 6, 3, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(2, 3, 9, 9)
    in_q = (float(x.abs().max()) / 127, 128)  # uint8 input, real 0 at 128
    with torch.no_grad():
        y_float = conv(x)
    out_q = (float(y_float.abs().max()) / 120, 128)
    layer = IntegerConv2d.from_float(conv, in_q, out_q)
    x_q = quantize_per_tensor(x, *in_q, torch.uint8)
    got = layer(x_q)
    assert got.shape == y_float.shape and got.dtype == torch.uint8

    def conv_fn(v, w, b):
        return F.conv2d(v, w.reshape(conv.weight.shape), b, stride, padding, dilation)

    _, ref = simulated_reference(conv_fn, x_q, in_q, out_q, torch.uint8, layer)
    assert (got.int() - ref.int()).abs().max() <= 1


def test_integer_layers_bad_input():
    linear = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="linear"):
        IntegerLinear.from_float(nn.Conv2d(1, 1, 1), (0.1, 0), (0.1, 0))
    with pytest.raises(ValueError, match="scale"):
        IntegerLinear.from_float(linear, (0.0, 0), (0.1, 0))
    with pytest.raises(ValueError, match="zero_point"):
        IntegerLinear.from_float(linear, (0.1, 0), (0.1, 300))
    with pytest.raises(ValueError, match="input_qparams"):
        IntegerLinear.from_float(linear, 0.1, (0.1, 0))
    layer = IntegerLinear.from_float(linear, (0.1, 200), (0.1, 0))
    with pytest.raises(ValueError, match="x_q"):
        layer(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="x_q"):
        layer(torch.zeros(2, 4, dtype=torch.int8))  # zero point 200 is not an int8
    with pytest.raises(ValueError, match="groups"):
        IntegerConv2d.from_float(nn.Conv2d(4, 4, 3, groups=2), (0.1, 0), (0.1, 0))
    with pytest.raises(ValueError, match="x_q"):
        IntegerConv2d.from_float(nn.Conv2d(1, 1, 3), (0.1, 0), (0.1, 0))(
            torch.zeros(1, 5, 5, dtype=torch.uint8)
        )
