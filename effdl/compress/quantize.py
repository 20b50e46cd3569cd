"""Affine quantization of weights and activations, from rounding rules to integer-only layers,
after Jacob et al. 2018 (CVPR), Krishnamoorthi 2018 (whitepaper) and the PyTorch quantization
docs. Start with `affine_qparams` and `quantize_per_tensor` (the mapping q = round(x / s) + z),
then `fake_quantize`, the observers, `prepare_qat`, and last `IntegerLinear` (int8 arithmetic
with a fixed-point requantization, Jacob et al. section 2).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import warnings
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from effdl._checks import check_fraction, check_in, check_positive_number

#: Integer range of each storage dtype the kit quantizes to.
DTYPES: dict[torch.dtype, tuple[int, int]] = {torch.int8: (-128, 127), torch.uint8: (0, 255)}

#: Bit widths the kit accepts: the sub-byte widths of the accuracy sweeps, a byte, and int16.
ALLOWED_BITS = (2, 3, 4, 5, 6, 7, 8, 16)

# torch's observers never let a scale fall below float32's machine epsilon (a constant tensor
# would otherwise give scale 0 and a division by zero).
_EPS = torch.finfo(torch.float32).eps

_QUANTIZED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

QParams = tuple[float | Tensor, int | Tensor]


# ---------------------------------------------------------------------------------------------
# The affine mapping
# ---------------------------------------------------------------------------------------------


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """Return the integer range (qmin, qmax) of a `bits`-wide integer, e.g. (0, 255) or (-128, 127).

    Source: Krishnamoorthi 2018, "Quantizing deep convolutional networks for efficient
    inference", section 2.1.
    """
    _check_bits(bits)
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def affine_qparams(
    lo: float | Tensor,
    hi: float | Tensor,
    bits: int = 8,
    *,
    symmetric: bool = False,
    signed: bool = False,
) -> QParams:
    """Return (scale, zero_point) mapping the real range [lo, hi] onto `bits`-wide integers.

    `lo` and `hi` are floats (per tensor: a float and an int come back) or 1-D tensors (per
    channel: a float32 and an int64 tensor come back). The range is widened to contain 0, so
    that real zero (padding, ReLU outputs) is exactly representable. Symmetric puts the zero
    point in the middle of the integer range (0 when signed). At 8 bits this is what
    torch.ao's MinMaxObserver computes.

    Source: Jacob et al. 2018, section 2.1 (eq. 1); PyTorch's torch.ao.quantization observers.
    """
    qmin, qmax = qrange(bits, signed)
    scalar = not isinstance(lo, Tensor) and not isinstance(hi, Tensor)
    lo_t = torch.as_tensor(lo, dtype=torch.float32)
    hi_t = torch.as_tensor(hi, dtype=torch.float32)
    if lo_t.dim() > 1 or hi_t.dim() > 1:
        raise ValueError(
            f"lo and hi must be floats or 1-D tensors, got shapes "
            f"{tuple(lo_t.shape)} and {tuple(hi_t.shape)}"
        )
    if bool((lo_t > hi_t).any()):
        raise ValueError(f"lo must be <= hi, got lo={lo!r}, hi={hi!r}")
    lo_t = torch.minimum(lo_t, torch.zeros_like(lo_t))  # widen the range to contain 0
    hi_t = torch.maximum(hi_t, torch.zeros_like(hi_t))
    eps = torch.tensor(_EPS)
    if symmetric:
        amax = torch.maximum(-lo_t, hi_t)
        scale = torch.maximum(amax / ((qmax - qmin) / 2), eps)  # s = max|x| / ((qmax - qmin) / 2)
        # torch puts the unsigned middle at 128 (not 127) for 8 bits: 2^(bits-1) in general.
        middle = 0 if signed else (qmin + qmax + 1) // 2
        zero_point = torch.full_like(scale, middle, dtype=torch.int64)
    else:
        scale = torch.maximum((hi_t - lo_t) / (qmax - qmin), eps)  # s = (hi - lo) / (qmax - qmin)
        zero_point = qmin - torch.round(lo_t / scale).to(torch.int64)  # z = qmin - round(lo / s)
        zero_point = zero_point.clamp(qmin, qmax)
    if scalar:
        return float(scale), int(zero_point)
    return scale, zero_point


def quantize_per_tensor(x: Tensor, scale: float, zero_point: int, dtype: torch.dtype) -> Tensor:
    """Return the integers q = clamp(round(x / scale) + zero_point) as an int8/uint8 tensor.

    Bit-exact with `torch.quantize_per_tensor(x, scale, zero_point, dtype).int_repr()`: like
    torch's kernels it multiplies by the float32 reciprocal of the scale (not a division) and
    rounds ties to even.

    Source: Jacob et al. 2018, eq. 1; PyTorch's quantize_val (aten/src/ATen/native/quantized).
    """
    qmin, qmax = _dtype_range(dtype)
    scale = _check_scale(scale)
    _check_zero_point(zero_point, qmin, qmax)
    return _quantize(x, torch.tensor(scale), torch.tensor(zero_point), qmin, qmax).to(dtype)


def quantize_per_channel(
    x: Tensor, scales: Tensor, zero_points: Tensor, axis: int, dtype: torch.dtype
) -> Tensor:
    """Return per-channel integers: channel c along `axis` uses scales[c] and zero_points[c].

    Bit-exact with `torch.quantize_per_channel(...).int_repr()`.

    Source: Krishnamoorthi 2018, section 2.3 (per-channel quantization).
    """
    qmin, qmax = _dtype_range(dtype)
    axis = _check_axis(axis, x)
    scales, zero_points = _channel_params(scales, zero_points, x, axis, qmin, qmax)
    shape = _broadcast_shape(x, axis)
    return _quantize(x, scales.view(shape), zero_points.view(shape), qmin, qmax).to(dtype)


def dequantize(
    q: Tensor, scale: float | Tensor, zero_point: int | Tensor, axis: int | None = None
) -> Tensor:
    """Return the float32 values x = scale * (q - zero_point) the integers stand for.

    Source: Jacob et al. 2018, eq. 1.
    """
    scale_t, zero_t = _params_for(q, scale, zero_point, axis, *_wide_range(q))
    return (q.to(torch.float32) - zero_t) * scale_t  # x = s (q - z)


def fake_quantize(
    x: Tensor,
    scale: float | Tensor,
    zero_point: int | Tensor,
    bits: int = 8,
    *,
    signed: bool = False,
    axis: int | None = None,
) -> Tensor:
    """Return x quantized to `bits`-wide integers and mapped back to floats (same dtype as x).

    Equals `torch.fake_quantize_per_tensor_affine` (or `..._per_channel_affine` when `axis` is
    given) with quant_min/quant_max = `qrange(bits, signed)`.

    Source: Jacob et al. 2018, section 3 ("simulated quantization"); PyTorch docs.
    """
    qmin, qmax = qrange(bits, signed)
    scale_t, zero_t = _params_for(x, scale, zero_point, axis, qmin, qmax)
    q = _quantize(x, scale_t, zero_t, qmin, qmax)
    return ((q - zero_t) * scale_t).to(x.dtype)  # x_hat = s (q - z)


def fake_quantize_ste(
    x: Tensor,
    scale: float | Tensor,
    zero_point: int | Tensor,
    bits: int = 8,
    *,
    signed: bool = False,
    axis: int | None = None,
) -> Tensor:
    """Return `fake_quantize(x, ...)` whose gradient is the straight-through estimator.

    Rounding has zero gradient almost everywhere, so training through it would stall; the STE
    passes the gradient unchanged where x falls inside the clamp range and blocks it outside,
    where the output really does not depend on x.

    Source: Bengio et al. 2013, "Estimating or propagating gradients through stochastic
    neurons"; Jacob et al. 2018, section 3.
    """
    qmin, qmax = qrange(bits, signed)
    scale_t, zero_t = _params_for(x, scale, zero_point, axis, qmin, qmax)
    scale_t = scale_t.detach()
    with torch.no_grad():
        unclamped = torch.round(x * _reciprocal(scale_t)) + zero_t
        inside = (unclamped >= qmin) & (unclamped <= qmax)
        x_hat = (unclamped.clamp(qmin, qmax) - zero_t) * scale_t
    # forward: x_hat; backward: d x_hat / d x = 1 inside the range, 0 outside
    return x_hat.to(x.dtype) + (x - x.detach()) * inside


# ---------------------------------------------------------------------------------------------
# Observers: calibration statistics for post-training quantization
# ---------------------------------------------------------------------------------------------


class MinMaxObserver:
    """Records the smallest and largest value seen, over the whole tensor and along each axis.

    `observe(x)` returns x unchanged (so it can sit inside a forward pass); `qparams(...)`
    turns the range into (scale, zero_point) with `affine_qparams`; `axis` asks for one pair
    per channel along that axis.

    Source: PyTorch's torch.ao.quantization.MinMaxObserver / PerChannelMinMaxObserver.
    """

    def __init__(self) -> None:
        self._ranges: dict[int | None, tuple[Tensor, Tensor] | None] = {}
        self._shape: tuple[int, ...] | None = None
        self.seen = 0  # batches observed

    def observe(self, x: Tensor) -> Tensor:
        """Return x after folding its range into the statistics."""
        if x.numel() == 0:
            return x
        with torch.no_grad():
            xf = x.detach().to(torch.float32)
            current: dict[int | None, tuple[Tensor, Tensor]] = {None: (xf.min(), xf.max())}
            for axis in range(xf.dim()):
                flat = xf.movedim(axis, 0).reshape(xf.shape[axis], -1)
                current[axis] = (flat.min(dim=1).values, flat.max(dim=1).values)
            if self._shape is not None and len(self._shape) != xf.dim():
                raise ValueError(
                    f"x must have {len(self._shape)} dims like the tensors observed before, "
                    f"got shape {tuple(xf.shape)}"
                )
            first = self._shape is None
            for axis, (lo, hi) in current.items():
                old = self._ranges.get(axis)
                if first:
                    self._ranges[axis] = (lo, hi)
                elif old is None or old[0].shape != lo.shape:
                    self._ranges[axis] = None  # channel count changed: no per-channel stats
                else:
                    self._ranges[axis] = self._update(old, lo, hi)
            self._shape = tuple(xf.shape)
            self.seen += 1
        return x

    def _update(self, old: tuple[Tensor, Tensor], lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        return torch.minimum(old[0], lo), torch.maximum(old[1], hi)

    def range(self, axis: int | None = None) -> tuple[Tensor, Tensor]:
        """Return the recorded (lo, hi): 0-d tensors, or 1-D per channel along `axis`."""
        if self.seen == 0:
            raise ValueError("observer has seen no data: call observe(x) first")
        if axis is not None:
            if isinstance(axis, bool) or not isinstance(axis, int):
                raise ValueError(f"axis must be an int or None, got {axis!r}")
            ndim = len(self._shape)
            if not -ndim <= axis < ndim:
                raise ValueError(f"axis must be in [{-ndim}, {ndim - 1}], got {axis}")
            axis %= ndim
        stats = self._ranges.get(axis)
        if stats is None:
            raise ValueError(f"axis={axis}: the channel count changed between observations")
        return stats

    def qparams(
        self,
        bits: int = 8,
        *,
        symmetric: bool = False,
        signed: bool = False,
        axis: int | None = None,
    ) -> QParams:
        """Return (scale, zero_point) for the observed range (tensors per channel if `axis`)."""
        lo, hi = self.range(axis)
        if axis is None:
            lo, hi = float(lo), float(hi)
        return affine_qparams(lo, hi, bits, symmetric=symmetric, signed=signed)


class MovingAverageObserver(MinMaxObserver):
    """Tracks an exponential moving average of each batch's min and max (activations drift
    during training and outliers in one batch should not set the range for good).

    Source: Jacob et al. 2018, section 3 ("EMA of the ranges"); PyTorch's
    MovingAverageMinMaxObserver (averaging_constant = momentum).
    """

    def __init__(self, momentum: float = 0.01) -> None:
        super().__init__()
        self.momentum = check_fraction("momentum", momentum, allow_zero=False)

    def _update(self, old: tuple[Tensor, Tensor], lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        c = self.momentum
        return old[0] + c * (lo - old[0]), old[1] + c * (hi - old[1])  # m <- m + c (new - m)


class PercentileObserver(MinMaxObserver):
    """Clips the range to [the (100 - p)-th, the p-th percentile] of the values seen instead of
    their extremes, so that a few outliers do not waste the integer grid. Keeps every observed
    value (fine for calibration sets of a few batches).

    Source: Krishnamoorthi 2018, section 3.4 (clipping the range); Wu et al. 2020,
    "Integer quantization for deep learning inference", section 4.1 (percentile calibration).
    """

    def __init__(self, percentile: float = 99.99) -> None:
        super().__init__()
        if isinstance(percentile, bool) or not isinstance(percentile, int | float):
            raise ValueError(f"percentile must be a number in (0, 100], got {percentile!r}")
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        self.percentile = float(percentile)
        self._values: list[Tensor] = []

    def observe(self, x: Tensor) -> Tensor:
        """Return x after storing a copy of it."""
        super().observe(x)
        if x.numel():
            self._values.append(x.detach().to(torch.float32).clone())
        return x

    def range(self, axis: int | None = None) -> tuple[Tensor, Tensor]:
        """Return the clipped (lo, hi) at the percentile (and 100 - percentile)."""
        super().range(axis)  # checks the axis
        if axis is None:
            rows = torch.cat([v.reshape(-1) for v in self._values])[None]
        else:
            rows = torch.cat(
                [v.movedim(axis, 0).reshape(v.shape[axis], -1) for v in self._values], 1
            )
        # torch.quantile refuses more than 2^24 values: a regular subsample keeps the estimate.
        step = max(1, math.ceil(rows.numel() / 2**24))
        rows = rows[:, ::step]
        q = self.percentile / 100
        clip_lo = torch.quantile(rows, 1 - q, dim=1)
        clip_hi = torch.quantile(rows, q, dim=1)
        if axis is None:
            return clip_lo[0], clip_hi[0]
        return clip_lo, clip_hi


# ---------------------------------------------------------------------------------------------
# Post-training weight quantization and quantization-aware training
# ---------------------------------------------------------------------------------------------


def quantize_weights_(
    model: nn.Module, bits: int, *, per_channel: bool = False, symmetric: bool = True
) -> nn.Module:
    """Return `model` with every Linear/Conv weight replaced in place by its fake-quantized
    copy at `bits` bits (per output channel if `per_channel`), for accuracy-vs-bits sweeps.

    Symmetric weights use signed integers with zero point 0; asymmetric ones unsigned.

    Source: Krishnamoorthi 2018, section 3.1 (post-training weight quantization).
    """
    _check_bits(bits)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _QUANTIZED_TYPES):
                w = module.weight
                w.copy_(_fake_quantize_weight(w, bits, per_channel, symmetric, ste=False))
    return model


class _FakeQuantizeWeight(nn.Module):
    """Parametrization: the layer sees the fake-quantized weight, the optimizer the float one."""

    def __init__(self, bits: int, per_channel: bool, symmetric: bool) -> None:
        super().__init__()
        self.bits, self.per_channel, self.symmetric = bits, per_channel, symmetric

    def forward(self, w: Tensor) -> Tensor:
        return _fake_quantize_weight(w, self.bits, self.per_channel, self.symmetric, ste=True)


class _FakeQuantizeActivation:
    """Forward hook: the module's output passes through fake quantization with EMA ranges."""

    def __init__(self, bits: int, momentum: float) -> None:
        self.bits = bits
        self.observer = MovingAverageObserver(momentum)

    def __call__(self, module: nn.Module, inputs: object, output: Tensor) -> Tensor:
        if module.training or self.observer.seen == 0:
            self.observer.observe(output)
        scale, zero_point = self.observer.qparams(self.bits)
        return fake_quantize_ste(output, scale, zero_point, self.bits)


def prepare_qat(
    model: nn.Module,
    bits: int = 8,
    *,
    per_channel: bool = False,
    symmetric: bool = True,
    activations: bool = False,
    momentum: float = 0.01,
) -> nn.Module:
    """Return `model`, changed in place so that every Linear/Conv2d computes with fake-quantized
    weights (and, if `activations`, fake-quantized outputs with EMA ranges) while the float
    weights stay the trained parameters; gradients pass by the straight-through estimator.

    The weights become parametrizations (torch.nn.utils.parametrize): the state_dict keys gain
    `parametrizations.weight.original`. The activation ranges are updated in training mode only.

    Source: Jacob et al. 2018, section 3 (training with simulated quantization).
    """
    _check_bits(bits)
    check_fraction("momentum", momentum, allow_zero=False)
    for module in list(model.modules()):
        if isinstance(module, nn.Linear | nn.Conv2d):
            if not parametrize.is_parametrized(module, "weight"):
                parametrize.register_parametrization(
                    module, "weight", _FakeQuantizeWeight(bits, per_channel, symmetric)
                )
            if activations:
                module.register_forward_hook(_FakeQuantizeActivation(bits, momentum))
    return model


# ---------------------------------------------------------------------------------------------
# PyTorch's own int8 kernels (torch.ao.quantization, eager mode)
# ---------------------------------------------------------------------------------------------


@functools.cache
def torch_ao_available() -> bool:
    """Return True if torch.ao.quantization and an x86/fbgemm int8 engine work in this torch.

    Source: PyTorch docs, "Quantization" (backends).
    """
    try:
        from torch.ao.quantization import quantize_dynamic

        engines = torch.backends.quantized.supported_engines
        if not any(e in engines for e in ("x86", "fbgemm")):
            return False
        with _quiet():
            probe = quantize_dynamic(nn.Sequential(nn.Linear(4, 4)), {nn.Linear}, torch.qint8)
            probe(torch.ones(1, 4))
        return True
    except Exception:  # any failure means: no usable int8 kernels
        return False


def dynamic_int8(model: nn.Module) -> nn.Module:
    """Return a copy of `model` whose nn.Linear layers run torch's dynamic int8 kernels (int8
    weights, activations quantized on the fly per batch).

    Source: PyTorch docs, torch.ao.quantization.quantize_dynamic.
    """
    _require_torch_ao()
    from torch.ao.quantization import quantize_dynamic

    with _quiet():
        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


class _Quantized(nn.Module):
    """Float in, float out: quantizes the input, runs the converted model, dequantizes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from torch.ao.quantization import DeQuantStub, QuantStub

        self.quant, self.model, self.dequant = QuantStub(), model, DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        return self.dequant(self.model(self.quant(x)))


def static_int8(
    model: nn.Module, calibration_batches: Iterable[Tensor], *, backend: str = "x86"
) -> nn.Module:
    """Return an int8 copy of `model` by eager-mode static quantization: wrap it in
    QuantStub/DeQuantStub, fuse Conv-BN-ReLU / Linear-ReLU runs inside nn.Sequential, observe
    the activations on `calibration_batches`, convert. Float tensors go in and come out.

    The model must use modules for everything between its layers (nn.ReLU, nn.Flatten, ...):
    eager mode cannot quantize functional calls or additions.

    Source: PyTorch docs, "Quantization", eager mode post-training static quantization.
    """
    check_in("backend", backend, ("x86", "fbgemm", "qnnpack", "onednn"))
    _require_torch_ao()
    from torch.ao.quantization import convert, fuse_modules, get_default_qconfig, prepare

    if backend not in torch.backends.quantized.supported_engines:
        raise ValueError(
            f"backend must be one of {torch.backends.quantized.supported_engines}, got {backend!r}"
        )
    torch.backends.quantized.engine = backend
    float_copy = copy.deepcopy(model).eval()
    groups = _fusable_groups(float_copy)
    with _quiet():
        if groups:
            float_copy = fuse_modules(float_copy, groups)
        wrapped = _Quantized(float_copy).eval()
        wrapped.qconfig = get_default_qconfig(backend)
        prepared = prepare(wrapped)
        seen = 0
        with torch.no_grad():
            for batch in calibration_batches:
                prepared(batch[0] if isinstance(batch, list | tuple) else batch)
                seen += 1
        if seen == 0:
            raise ValueError("calibration_batches must hold at least one batch, got none")
        return convert(prepared)


# ---------------------------------------------------------------------------------------------
# Integer-only inference (Jacob et al. 2018, section 2)
# ---------------------------------------------------------------------------------------------


def quantize_multiplier(m: float) -> tuple[int, int]:
    """Return (m0, shift) with m ~= m0 * 2^-31 * 2^-shift and m0 an int32 in [2^30, 2^31).

    The real multiplier M = s_in * s_w / s_out of a layer becomes an integer multiply and a
    right shift, so requantization needs no floating point. The relative error is at most
    2^-31. `shift` is negative for m >= 1.

    Source: Jacob et al. 2018, section 2.2 (eq. 5-6).
    """
    m = check_positive_number("m", m)
    if not math.isfinite(m) or m >= 2**30:
        raise ValueError(f"m must be finite and below 2^30, got {m}")
    fraction, exponent = math.frexp(m)  # m = fraction * 2^exponent, fraction in [0.5, 1)
    m0 = round(fraction * 2**31)  # m0 = round(fraction * 2^31), in [2^30, 2^31]
    if m0 == 2**31:  # fraction rounded up to 1: halve it and move the factor into the exponent
        m0, exponent = m0 // 2, exponent + 1
    return m0, -exponent


def int_matmul(a: Tensor, b: Tensor, *, kernel: str = "auto") -> Tensor:
    """Return the int32 product a @ b of an int8/uint8 (M, K) and an int8 (K, N) matrix.

    kernel="auto" uses `torch._int_mm` (on CPU it takes int8 or uint8 `a`, int8 `b`, both 2-D,
    any sizes; on CUDA it wants int8, M > 16 and K, N multiples of 8) and falls back to an
    int32 matmul where that kernel is missing or refuses the input; "int_mm" insists on it,
    "int32" always takes the fallback. Both give the same integers. On CPU torch 2.14's
    `_int_mm` is a slow reference loop (about 10x slower than a float32 matmul; a
    column-major `b`, such as `weight.t()`, is about 5x faster than a row-major one), so
    "int32" is often the quicker choice there. int32 sums overflow only past K ~ 2^17.

    Source: Jacob et al. 2018, section 2.3 (int8 x int8 -> int32 accumulators).
    """
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"a and b must be 2-D, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"a's columns must match b's rows, got {tuple(a.shape)} @ {tuple(b.shape)}"
        )
    if a.dtype not in DTYPES or b.dtype != torch.int8:
        raise ValueError(f"a must be int8/uint8 and b int8, got {a.dtype} and {b.dtype}")
    check_in("kernel", kernel, ("auto", "int_mm", "int32"))
    if kernel == "int_mm":
        return torch._int_mm(a, b)  # torch's own error says what it refuses
    if kernel == "auto" and _int_mm_accepts(a, b):
        try:
            return torch._int_mm(a, b)
        except RuntimeError:
            pass  # e.g. a build without the kernel: the plain product below is exact too
    return _int_matmul_fallback(a, b)


class IntegerLinear(nn.Module):
    """A Linear layer computed with integers only: uint8/int8 input, int8 weights, int32
    accumulators and bias, a fixed-point requantization to the output's uint8/int8 grid.

    Build it with `IntegerLinear.from_float(linear, input_qparams, output_qparams)`; forward
    takes the quantized input (quantized with `input_qparams`) and returns the quantized output.

    Source: Jacob et al. 2018, sections 2.2-2.4.
    """

    def __init__(
        self,
        weight_q: Tensor,
        weight_scale: Tensor,
        bias_q: Tensor,
        input_qparams: tuple[float, int],
        output_qparams: tuple[float, int],
        output_dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.register_buffer("weight_q", weight_q)  # (out, in) int8, zero point 0
        self.register_buffer("bias_q", bias_q)  # (out,) int32 with scale s_in * s_w
        self.register_buffer("weight_scale", weight_scale)  # (out,) float32
        self.input_scale, self.input_zero_point = input_qparams
        self.output_scale, self.output_zero_point = output_qparams
        self.output_dtype = output_dtype
        self.kernel = "auto"  # int_matmul's kernel: set "int32" to skip torch._int_mm
        multipliers = [
            quantize_multiplier(self.input_scale * float(s) / self.output_scale)
            for s in weight_scale
        ]
        self.register_buffer("m0", torch.tensor([m for m, _ in multipliers], dtype=torch.int64))
        self.register_buffer("shift", torch.tensor([s for _, s in multipliers], dtype=torch.int64))
        # sum_k W[n, k], to take the input's zero point out of the product (Jacob eq. 7-8)
        self.register_buffer("weight_row_sums", weight_q.to(torch.int32).sum(dim=1))

    @classmethod
    def from_float(
        cls,
        linear: nn.Linear,
        input_qparams: tuple[float, int],
        output_qparams: tuple[float, int],
        *,
        per_channel: bool = True,
        output_dtype: torch.dtype = torch.uint8,
    ) -> IntegerLinear:
        """Return the integer version of `linear` for inputs quantized with `input_qparams`
        = (scale, zero_point), producing outputs on the `output_qparams` grid."""
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        weight = linear.weight.detach().to(torch.float32)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.float32)
        return cls(
            *_integer_params(weight, bias, input_qparams, output_qparams, output_dtype, per_channel)
        )

    def forward(self, x_q: Tensor) -> Tensor:
        """Return the quantized output for quantized input `x_q` (..., in_features)."""
        lead = x_q.shape[:-1]
        acc = self._accumulate(x_q.reshape(-1, x_q.shape[-1]))
        return self._requantize(acc).reshape(*lead, -1)

    def _accumulate(self, x_q: Tensor) -> Tensor:
        _check_quantized_input(x_q, self.input_zero_point)
        # sum_k (x_k - z_x) W_nk = sum_k x_k W_nk - z_x sum_k W_nk, in int32
        acc = int_matmul(x_q.contiguous(), self.weight_q.t(), kernel=self.kernel)
        return acc - self.input_zero_point * self.weight_row_sums + self.bias_q

    def _requantize(self, acc: Tensor) -> Tensor:
        # q_out = z_out + round(acc * m0 * 2^-(31 + shift)): int64 products, a rounding shift
        total_shift = 31 + self.shift
        rounding = torch.bitwise_left_shift(torch.ones_like(total_shift), total_shift - 1)
        scaled = torch.bitwise_right_shift(acc.to(torch.int64) * self.m0 + rounding, total_shift)
        qmin, qmax = DTYPES[self.output_dtype]
        return (scaled + self.output_zero_point).clamp(qmin, qmax).to(self.output_dtype)


class IntegerConv2d(IntegerLinear):
    """A Conv2d computed with integers only, as a matrix product over im2col patches
    (F.unfold); padding uses the input's zero point, which stands for real 0.

    Build it with `IntegerConv2d.from_float(conv, input_qparams, output_qparams)`; groups must
    be 1.

    Source: Jacob et al. 2018, sections 2.2-2.4.
    """

    @classmethod
    def from_float(
        cls,
        conv: nn.Conv2d,
        input_qparams: tuple[float, int],
        output_qparams: tuple[float, int],
        *,
        per_channel: bool = True,
        output_dtype: torch.dtype = torch.uint8,
    ) -> IntegerConv2d:
        """Return the integer version of `conv` (groups 1, zero padding)."""
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(
                "conv must have groups=1, padding_mode='zeros' and numeric padding, got "
                f"groups={conv.groups}, padding_mode={conv.padding_mode!r}, "
                f"padding={conv.padding!r}"
            )
        weight = conv.weight.detach().to(torch.float32).flatten(1)  # (out, in * kh * kw)
        bias = None if conv.bias is None else conv.bias.detach().to(torch.float32)
        layer = cls(
            *_integer_params(weight, bias, input_qparams, output_qparams, output_dtype, per_channel)
        )
        layer.kernel_size, layer.stride = conv.kernel_size, conv.stride
        layer.padding, layer.dilation = conv.padding, conv.dilation
        return layer

    def forward(self, x_q: Tensor) -> Tensor:
        """Return the quantized output (N, out, H', W') for quantized input (N, in, H, W)."""
        if x_q.dim() != 4:
            raise ValueError(f"x_q must be (N, C, H, W), got shape {tuple(x_q.shape)}")
        _check_quantized_input(x_q, self.input_zero_point)
        n, _, h, w = x_q.shape
        (ph, pw), (kh, kw) = self.padding, self.kernel_size
        (sh, sw), (dh, dw) = self.stride, self.dilation
        # Real 0 is the integer z_x, so the border is padded with z_x, not with 0.
        padded = F.pad(x_q.to(torch.float32), (pw, pw, ph, ph), value=self.input_zero_point)
        # unfold runs on float32, exact for 8-bit integers; the product itself is integer.
        cols = F.unfold(padded, (kh, kw), dilation=(dh, dw), stride=(sh, sw))  # (N, C*kh*kw, L)
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1]).to(x_q.dtype)
        out = self._requantize(self._accumulate(rows))  # (N * L, out)
        h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        return out.reshape(n, h_out, w_out, -1).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in ALLOWED_BITS:
        raise ValueError(f"bits must be one of {ALLOWED_BITS}, got {bits!r}")
    return bits


def _dtype_range(dtype: object) -> tuple[int, int]:
    check_in("dtype", dtype, tuple(DTYPES))
    return DTYPES[dtype]


def _check_scale(scale: object) -> float:
    if isinstance(scale, Tensor) and scale.numel() == 1:
        scale = float(scale)
    value = check_positive_number("scale", scale)
    if not math.isfinite(value):
        raise ValueError(f"scale must be finite, got {scale!r}")
    return value


def _check_zero_point(zero_point: object, qmin: int, qmax: int) -> int:
    if isinstance(zero_point, Tensor) and zero_point.numel() == 1:
        zero_point = int(zero_point)
    if isinstance(zero_point, bool) or not isinstance(zero_point, int):
        raise ValueError(f"zero_point must be an int, got {zero_point!r}")
    if not qmin <= zero_point <= qmax:
        raise ValueError(f"zero_point must be in [{qmin}, {qmax}], got {zero_point}")
    return zero_point


def _check_axis(axis: object, x: Tensor) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"axis must be an int, got {axis!r}")
    if not -x.dim() <= axis < x.dim():
        raise ValueError(
            f"axis must be in [{-x.dim()}, {x.dim() - 1}] for x of "
            f"shape {tuple(x.shape)}, got {axis}"
        )
    return axis % x.dim()


def _channel_params(
    scales: object, zero_points: object, x: Tensor, axis: int, qmin: int, qmax: int
) -> tuple[Tensor, Tensor]:
    scales_t = torch.as_tensor(scales, dtype=torch.float64)
    zeros_t = torch.as_tensor(zero_points)
    channels = x.shape[axis]
    if scales_t.shape != (channels,) or zeros_t.shape != (channels,):
        raise ValueError(
            f"scales and zero_points must have shape ({channels},) (x's size along axis "
            f"{axis}), got {tuple(scales_t.shape)} and {tuple(zeros_t.shape)}"
        )
    if not bool((scales_t > 0).all()) or not bool(torch.isfinite(scales_t).all()):
        raise ValueError(f"scale must be > 0 and finite in every channel, got {scales_t.tolist()}")
    if zeros_t.is_floating_point() and not bool((zeros_t == zeros_t.round()).all()):
        raise ValueError(f"zero_point must hold integers, got {zeros_t.tolist()}")
    if not bool(((zeros_t >= qmin) & (zeros_t <= qmax)).all()):
        raise ValueError(f"zero_point must be in [{qmin}, {qmax}], got {zeros_t.tolist()}")
    return scales_t.to(torch.float32), zeros_t.to(torch.float32)


def _params_for(
    x: Tensor, scale: object, zero_point: object, axis: int | None, qmin: int, qmax: int
) -> tuple[Tensor, Tensor]:
    """Return scale and zero point as float32 tensors that broadcast against x."""
    if axis is None:
        scale_t = torch.as_tensor(_check_scale(scale), dtype=torch.float32)
        return scale_t, torch.tensor(float(_check_zero_point(zero_point, qmin, qmax)))
    axis = _check_axis(axis, x)
    scale_t, zero_t = _channel_params(scale, zero_point, x, axis, qmin, qmax)
    shape = _broadcast_shape(x, axis)
    return scale_t.view(shape), zero_t.view(shape)


def _broadcast_shape(x: Tensor, axis: int) -> list[int]:
    shape = [1] * x.dim()
    shape[axis] = x.shape[axis]
    return shape


def _reciprocal(scale: Tensor) -> Tensor:
    # torch's kernels multiply by the float32 reciprocal 1.0f / scale; dividing by the scale
    # instead rounds differently on a few values per thousand (tested against torch).
    return 1.0 / scale.to(torch.float32)


def _quantize(x: Tensor, scale: Tensor, zero_point: Tensor, qmin: int, qmax: int) -> Tensor:
    """Float32 tensor of integers clamp(round(x * (1/s)) + z, qmin, qmax), ties to even."""
    x = x.to(torch.float32)
    inv_scale = _reciprocal(torch.as_tensor(scale))
    return (torch.round(x * inv_scale) + zero_point).clamp(qmin, qmax)  # q = round(x/s) + z


def _wide_range(q: Tensor) -> tuple[int, int]:
    """Integer range dequantize accepts zero points from: the dtype's, or 16-bit for others."""
    return DTYPES.get(q.dtype, (-(2**15), 2**16 - 1))


def _fake_quantize_weight(
    w: Tensor, bits: int, per_channel: bool, symmetric: bool, *, ste: bool
) -> Tensor:
    signed = symmetric
    if per_channel:
        flat = w.detach().flatten(1)
        lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
        axis: int | None = 0
    else:
        lo, hi = float(w.detach().min()), float(w.detach().max())
        axis = None
    scale, zero_point = affine_qparams(lo, hi, bits, symmetric=symmetric, signed=signed)
    fq = fake_quantize_ste if ste else fake_quantize
    return fq(w, scale, zero_point, bits, signed=signed, axis=axis)


def _integer_params(
    weight: Tensor,
    bias: Tensor | None,
    input_qparams: tuple[float, int],
    output_qparams: tuple[float, int],
    output_dtype: torch.dtype,
    per_channel: bool,
) -> tuple:
    out_lo, out_hi = _dtype_range(output_dtype)
    s_in, z_in = _unpack_qparams("input_qparams", input_qparams, -128, 255)
    s_out, z_out = _unpack_qparams("output_qparams", output_qparams, out_lo, out_hi)
    # weights: symmetric int8, zero point 0, so the product needs no weight-offset terms
    if per_channel:
        lo, hi = weight.min(dim=1).values, weight.max(dim=1).values
        w_scale, _ = affine_qparams(lo, hi, 8, symmetric=True, signed=True)
        w_q = quantize_per_channel(weight, w_scale, torch.zeros_like(w_scale).long(), 0, torch.int8)
    else:
        s, _ = affine_qparams(
            float(weight.min()), float(weight.max()), 8, symmetric=True, signed=True
        )
        w_scale = torch.full((weight.shape[0],), s, dtype=torch.float32)
        w_q = quantize_per_tensor(weight, s, 0, torch.int8)
    if bias is None:
        bias = torch.zeros(weight.shape[0])
    # bias in int32 on the accumulator's scale s_in * s_w, zero point 0 (Jacob et al. eq. 10)
    bias_q = torch.round(bias.double() / (s_in * w_scale.double())).clamp(-(2**31), 2**31 - 1)
    return w_q, w_scale, bias_q.to(torch.int32), (s_in, z_in), (s_out, z_out), output_dtype


def _unpack_qparams(name: str, qparams: object, qmin: int, qmax: int) -> tuple[float, int]:
    if not isinstance(qparams, tuple | list) or len(qparams) != 2:
        raise ValueError(f"{name} must be a (scale, zero_point) pair, got {qparams!r}")
    scale, zero_point = qparams
    return _check_scale(scale), _check_zero_point(zero_point, qmin, qmax)


def _check_quantized_input(x_q: Tensor, zero_point: int) -> None:
    if x_q.dtype not in DTYPES:
        raise ValueError(f"x_q must be an int8 or uint8 tensor, got {x_q.dtype}")
    qmin, qmax = DTYPES[x_q.dtype]
    if not qmin <= zero_point <= qmax:
        raise ValueError(
            f"x_q is {x_q.dtype} but the input zero point {zero_point} is outside [{qmin}, {qmax}]"
        )


def _int_mm_accepts(a: Tensor, b: Tensor) -> bool:
    if not hasattr(torch, "_int_mm") or a.device != b.device:
        return False
    if a.device.type == "cuda":  # cuBLASLt's int8 GEMM constraints
        m, k = a.shape
        n = b.shape[1]
        return a.dtype == torch.int8 and m > 16 and k % 8 == 0 and n % 8 == 0
    return a.device.type == "cpu"


def _int_matmul_fallback(a: Tensor, b: Tensor) -> Tensor:
    # int32 products of int8 values are exact; torch's integer matmul accumulates in int32.
    return a.to(torch.int32) @ b.to(torch.int32)


def _require_torch_ao() -> None:
    if not torch_ao_available():
        raise RuntimeError(
            "torch.ao.quantization's int8 kernels are not usable in this torch build "
            f"({torch.__version__}); torch_ao_available() is False"
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch.ao's deprecation warnings around one call (they are about its future)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _fusable_groups(model: nn.Module) -> list[list[str]]:
    """Names of Conv-BN(-ReLU), Conv-ReLU and Linear-ReLU runs inside nn.Sequential blocks."""
    patterns = [
        (nn.Conv2d, nn.BatchNorm2d, nn.ReLU),
        (nn.Conv2d, nn.BatchNorm2d),
        (nn.Conv2d, nn.ReLU),
        (nn.Linear, nn.ReLU),
    ]
    groups: list[list[str]] = []
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        i = 0
        while i < len(names):
            for pattern in patterns:
                window = names[i : i + len(pattern)]
                if len(window) == len(pattern) and all(
                    type(module._modules[n]) is t for n, t in zip(window, pattern, strict=True)
                ):
                    groups.append([f"{prefix}.{n}" if prefix else n for n in window])
                    i += len(pattern) - 1
                    break
            i += 1
    return groups
