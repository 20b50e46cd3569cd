"""Mixed-precision training (Micikevicius et al. 2018): compute in 16 bits, keep the weights in
32. Start with `float_format` and `float_bits` (what fp32, fp16 and bf16 can hold), then
`underflow_fraction` (gradients that flush to zero in 16 bits) and `sequential_sum` (why sums
need a 32-bit accumulator), then `LossScaler` (dynamic loss scaling, step for step the
schedule of `torch.amp.GradScaler`) and the two trainers: `train_mixed`, the reference recipe
written out (fp32 master weights, a 16-bit copy for the forward and backward passes, gradients
cast back to fp32, loss scaling), and `fit_autocast`, the production route through
`torch.autocast` (bf16 on CPU, fp16 with `GradScaler` on CUDA). `training_memory` counts the
bytes of weights, gradients and saved activations of one training step in each precision.
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from effdl._checks import check_module, check_positive_int, check_positive_number, check_tensor
from effdl.train import History, evaluate

#: The three formats of the lesson, by the names it uses.
FORMATS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
#: Sign, exponent and mantissa (stored fraction) bits of each format (IEEE 754 binary32 and
#: binary16; bfloat16 is binary32 with the last 16 mantissa bits cut off).
_LAYOUT: dict[torch.dtype, tuple[int, int]] = {
    torch.float32: (8, 23),
    torch.float16: (5, 10),
    torch.bfloat16: (8, 7),
}
_SAME_WIDTH_INT = {
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}
#: The dtypes torch.autocast computes in, by device type (bf16 on CUDA needs a GPU that has it).
AUTOCAST_DTYPES: dict[str, tuple[torch.dtype, ...]] = {
    "cpu": (torch.bfloat16, torch.float16),
    "cuda": (torch.float16, torch.bfloat16),
}

# ---------------------------------------------------------------------------------------------
# Floating-point formats
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloatFormat:
    """The shape of a binary floating-point format, computed from its bit widths.

    A normal number is (-1)^s * 1.m * 2^(e - bias) with e in 1 .. 2^E - 2; e = 0 holds zero and
    the subnormals 0.m * 2^(1 - bias), e = 2^E - 1 holds inf and NaN.
    """

    name: str
    dtype: torch.dtype
    exponent_bits: int
    mantissa_bits: int
    bias: int
    max: float  # largest finite value
    smallest_normal: float  # 2^(1 - bias)
    smallest_subnormal: float  # 2^(1 - bias - mantissa_bits)
    eps: float  # the spacing just above 1: 2^-mantissa_bits

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits


def float_format(dtype: torch.dtype | str) -> FloatFormat:
    """Return the `FloatFormat` of fp32, fp16 or bf16 (a torch dtype or its name in `FORMATS`),
    computed from its exponent and mantissa widths (the tests compare it with `torch.finfo`).

    Source: IEEE 754-2008 (binary32, binary16); Micikevicius et al. 2018, section 3.1 (the fp16
    range) and Figure 3; Kalamkar et al. 2019 (bfloat16: fp32's exponent, 7 mantissa bits).
    """
    dtype = _check_dtype("dtype", dtype)
    exponent_bits, mantissa_bits = _LAYOUT[dtype]
    bias = 2 ** (exponent_bits - 1) - 1
    max_exponent = 2**exponent_bits - 2 - bias
    name = next(k for k, v in FORMATS.items() if v is dtype)
    return FloatFormat(
        name=name,
        dtype=dtype,
        exponent_bits=exponent_bits,
        mantissa_bits=mantissa_bits,
        bias=bias,
        max=(2 - 2.0**-mantissa_bits) * 2.0**max_exponent,
        smallest_normal=2.0 ** (1 - bias),
        smallest_subnormal=2.0 ** (1 - bias - mantissa_bits),
        eps=2.0**-mantissa_bits,
    )


def float_bits(value: float, dtype: torch.dtype | str) -> tuple[str, str, str]:
    """Return the (sign, exponent, mantissa) bit strings of `value` rounded to `dtype`, read
    from the stored bits themselves (the tensor viewed as an integer of the same width).

    Source: IEEE 754-2008, section 3.4 (the binary interchange format's fields).
    """
    dtype = _check_dtype("dtype", dtype)
    value = _check_real("value", value)
    exponent_bits, mantissa_bits = _LAYOUT[dtype]
    width = 1 + exponent_bits + mantissa_bits
    raw = int(torch.tensor([value], dtype=dtype).view(_SAME_WIDTH_INT[dtype])[0])
    bits = format(raw & (2**width - 1), f"0{width}b")
    return bits[0], bits[1 : 1 + exponent_bits], bits[1 + exponent_bits :]


def spacing(value: float, dtype: torch.dtype | str) -> float:
    """Return the gap between `value` rounded to `dtype` and the next representable number away
    from zero (the unit in the last place there): 2^(e - mantissa_bits) for a normal number,
    the smallest subnormal below the normal range, inf at and beyond the largest finite value.

    Source: IEEE 754-2008; Goldberg 1991, "What Every Computer Scientist Should Know About
    Floating-Point Arithmetic", section 1.2 (ulps).
    """
    dtype = _check_dtype("dtype", dtype)
    value = _check_real("value", value)
    x = torch.tensor([abs(value)], dtype=dtype)
    if torch.isinf(x).item():  # rounded beyond the largest finite value
        return math.inf
    up = torch.nextafter(x.float(), torch.tensor([math.inf])).to(dtype)  # nextafter in fp32
    if dtype is torch.float32:
        return float(up - x)
    # 16-bit formats: step the stored integer by one (positive numbers are ordered like ints)
    raw = x.view(_SAME_WIDTH_INT[dtype])
    nxt = (raw + 1).view(dtype)
    return float(nxt.float() - x.float())


def underflow_fraction(t: Tensor, dtype: torch.dtype | str, *, scale: float = 1.0) -> float:
    """Return the fraction of the non-zero values of `t * scale` that become zero when cast to
    `dtype`: the gradients that a 16-bit backward pass would lose. Zeros of `t` itself are not
    counted (they lose nothing); an all-zero tensor gives 0.

    Source: Micikevicius et al. 2018, section 3.2 and Figure 3 (in a multibox SSD, 31% of the
    activation gradients were zeros and 67% of the rest below fp16's range before scaling).
    """
    check_tensor("t", t)
    if not t.is_floating_point():
        raise TypeError(f"t must be a float tensor, got {t.dtype}")
    dtype = _check_dtype("dtype", dtype)
    scale = check_positive_number("scale", scale)
    nonzero = t[t != 0].double() * scale
    if nonzero.numel() == 0:
        return 0.0
    return float((nonzero.to(dtype) == 0).double().mean())


def sequential_sum(
    values: Tensor, dtype: torch.dtype | str, accumulate: torch.dtype | str | None = None
) -> float:
    """Add `values` one by one, each rounded to `dtype`, into a running sum held in `accumulate`
    (default: `dtype` itself), and return the total. In fp16 the sum stops growing once the
    spacing at the running total exceeds twice the value added (each addition rounds back);
    an fp32 accumulator, as tensor cores use, keeps adding.

    Source: Micikevicius et al. 2018, section 3.3 (fp16 products accumulated into fp32).
    """
    check_tensor("values", values)
    if values.dim() != 1:
        raise ValueError(f"values must be a 1-D tensor, got shape {tuple(values.shape)}")
    dtype = _check_dtype("dtype", dtype)
    accumulate = dtype if accumulate is None else _check_dtype("accumulate", accumulate)
    total = torch.zeros((), dtype=accumulate)
    for v in values.to(dtype):
        total = (total + v.to(accumulate)).to(accumulate)
    return float(total)


# ---------------------------------------------------------------------------------------------
# Dynamic loss scaling
# ---------------------------------------------------------------------------------------------


class LossScaler:
    """Dynamic loss scaling: multiply the loss by `scale` before the backward pass, so that
    small gradients land inside fp16's range, and divide the gradients by it before the step.

    `update(found_inf)` after each step: a step whose gradients hold an inf or NaN is skipped
    and the scale is multiplied by `backoff_factor`; after `growth_interval` clean steps in a
    row the scale is multiplied by `growth_factor` (unless that would overflow fp32). The scale
    is held in float32, as `torch.amp.GradScaler` holds it, so the two produce the same scales
    for any pattern of overflowing steps (a test checks it).

    Source: Micikevicius et al. 2018, section 3.2 (loss scaling; the dynamic variant in its
    footnote and in NVIDIA's implementation); torch.amp.GradScaler's documented update rule.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ):
        init_scale = check_positive_number("init_scale", init_scale)
        if (
            isinstance(growth_factor, bool)
            or not isinstance(growth_factor, numbers.Real)
            or not growth_factor > 1
        ):
            raise ValueError(f"growth_factor must be a number > 1, got {growth_factor!r}")
        if (
            isinstance(backoff_factor, bool)
            or not isinstance(backoff_factor, numbers.Real)
            or not 0 < backoff_factor < 1
        ):
            raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor!r}")
        self.growth_interval = check_positive_int("growth_interval", growth_interval)
        self._scale = torch.tensor(init_scale, dtype=torch.float32)
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.clean_steps = 0  # clean steps since the last change of scale
        self.skipped = 0  # steps skipped so far

    @property
    def scale(self) -> float:
        return float(self._scale)

    def scale_loss(self, loss: Tensor) -> Tensor:
        """Return `loss * scale`: call `.backward()` on this, not on the loss."""
        return loss * self._scale.to(loss.device)

    def unscale_(self, params) -> bool:
        """Divide the gradients of `params` by the scale in place (multiplying by its float32
        reciprocal, as GradScaler does); return True if any of them holds an inf or NaN."""
        inv = self._scale.double().reciprocal().float()
        found_inf = False
        for p in params:
            if p.grad is None:
                continue
            p.grad.mul_(inv.to(p.grad.device))
            found_inf = found_inf or not bool(torch.isfinite(p.grad).all())
        return found_inf

    def update(self, found_inf: bool) -> None:
        """Back off after an overflowing step; grow after `growth_interval` clean ones."""
        if not isinstance(found_inf, bool):
            raise TypeError(f"found_inf must be a bool, got {type(found_inf).__name__}")
        if found_inf:
            self._scale = _float32(self.scale * self.backoff_factor)
            self.clean_steps = 0
            self.skipped += 1
            return
        self.clean_steps += 1
        if self.clean_steps == self.growth_interval:
            grown = _float32(self.scale * self.growth_factor)
            if torch.isfinite(grown):
                self._scale = grown
            self.clean_steps = 0

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale the gradients of `optimizer`'s parameters, step unless they overflowed, and
        update the scale; return True if the step was taken."""
        params = [p for group in optimizer.param_groups for p in group["params"]]
        found_inf = self.unscale_(params)
        if not found_inf:
            optimizer.step()
        self.update(found_inf)
        return not found_inf

    def __repr__(self) -> str:
        return (
            f"LossScaler(scale={self.scale:g}, growth_factor={self.growth_factor:g}, "
            f"backoff_factor={self.backoff_factor:g}, growth_interval={self.growth_interval})"
        )


# ---------------------------------------------------------------------------------------------
# Trainers
# ---------------------------------------------------------------------------------------------


def train_mixed(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    *,
    dtype: torch.dtype | str = torch.bfloat16,
    scaler: LossScaler | None = None,
    epochs: int = 10,
    lr: float = 1e-2,
    momentum: float = 0.9,
    seed: int = 0,
    device: str | torch.device = "cpu",
    verbose: bool = False,
) -> History:
    """Train `model` with the mixed-precision recipe of Micikevicius et al. written out, and
    return its `History`; `model` ends holding the fp32 master weights.

    Each step copies the fp32 master weights into a 16-bit copy of the model (`dtype`), runs
    the forward and backward passes in that copy on 16-bit inputs, takes the loss in fp32
    (the logits are cast up before the cross-entropy), casts the 16-bit gradients back to fp32
    and lets SGD with momentum update the master weights. With a `scaler` the loss is scaled
    before the backward pass, the gradients are unscaled in fp32, and a step with inf or NaN
    gradients is skipped. Each epoch's record holds train_loss, train_acc, val_loss, val_acc
    (with `val_loader`, evaluated in fp32), skipped (steps skipped so far), scale and seconds.
    Batch norm's running statistics are kept in the 16-bit copy's buffers and copied back.

    Source: Micikevicius et al. 2018, sections 3.1 (fp32 master copy of the weights), 3.2
    (loss scaling) and 3.3 (arithmetic precision: reductions in fp32).
    """
    check_module("model", model)
    dtype = _check_dtype("dtype", dtype)
    if scaler is not None and not isinstance(scaler, LossScaler):
        raise TypeError(f"scaler must be a LossScaler or None, got {type(scaler).__name__}")
    check_positive_int("epochs", epochs)
    lr = check_positive_number("lr", lr)
    device = torch.device(device)
    model.to(device)
    master = [p for p in model.parameters() if p.requires_grad]
    half = copy.deepcopy(model).to(dtype)
    half_params = [p for p in half.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(master, lr=lr, momentum=momentum)
    history = History()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not verbose, leave=False):
            start = time.perf_counter()
            half.train()
            total_loss, correct, seen = 0.0, 0, 0
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                with torch.no_grad():  # 1. the 16-bit copy of the fp32 master weights
                    for h, m in zip(half_params, master, strict=True):
                        h.copy_(m)
                        h.grad = None
                logits = half(x.to(dtype))  # 2. forward in 16 bits
                loss = F.cross_entropy(logits.float(), y)  # 3. the loss in fp32
                (scaler.scale_loss(loss) if scaler else loss).backward()  # 4. backward in 16 bits
                for h, m in zip(half_params, master, strict=True):  # 5. gradients back to fp32
                    m.grad = h.grad.float()
                if scaler:  # 6. unscale in fp32, skip the step on overflow
                    scaler.step(optimizer)
                else:
                    optimizer.step()
                total_loss += loss.item() * len(y)
                correct += int((logits.argmax(-1) == y).sum())
                seen += len(y)
            _copy_buffers(half, model)
            record = {
                "epoch": epoch,
                "train_loss": total_loss / seen,
                "train_acc": correct / seen,
                "skipped": scaler.skipped if scaler else 0,
                "scale": scaler.scale if scaler else 1.0,
            }
            if val_loader is not None:
                val = evaluate(model, _on_device(val_loader, device))
                record["val_loss"], record["val_acc"] = val["loss"], val["accuracy"]
            record["seconds"] = time.perf_counter() - start
            history.records.append(record)
    return history


def fit_autocast(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    *,
    dtype: torch.dtype | str | None = torch.bfloat16,
    epochs: int = 10,
    lr: float = 1e-2,
    momentum: float = 0.9,
    seed: int = 0,
    device: str | torch.device = "cpu",
    verbose: bool = False,
) -> History:
    """Train `model` with `torch.autocast(device, dtype)`, the production route: fp32 weights,
    with matrix products and convolutions run in `dtype` and reductions kept in fp32 by torch's
    own op lists. fp16 trains with `torch.amp.GradScaler`; bf16, with fp32's exponent range,
    needs no scaling; `dtype=None` trains in plain fp32 with the same loop (the baseline). SGD
    with momentum; records as in `train_mixed`.

    Source: Micikevicius et al. 2018; PyTorch documentation, "Automatic Mixed Precision".
    """
    check_module("model", model)
    device = torch.device(device)
    if dtype is not None:
        dtype = check_autocast(device.type, dtype)
    check_positive_int("epochs", epochs)
    lr = check_positive_number("lr", lr)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    use_scaler = dtype is torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    history = History()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not verbose, leave=False):
            start = time.perf_counter()
            model.train()
            total_loss, correct, seen, skipped = 0.0, 0, 0, 0
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad(set_to_none=True)
                with _autocast(device.type, dtype):
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                scaler.scale(loss).backward()
                before = scaler.get_scale() if use_scaler else 1.0
                scaler.step(optimizer)
                scaler.update()
                skipped += int(use_scaler and scaler.get_scale() < before)
                total_loss += loss.item() * len(y)
                correct += int((logits.argmax(-1) == y).sum())
                seen += len(y)
            record = {
                "epoch": epoch,
                "train_loss": total_loss / seen,
                "train_acc": correct / seen,
                "skipped": skipped,
                "scale": scaler.get_scale() if use_scaler else 1.0,
            }
            if val_loader is not None:
                val = evaluate(model, _on_device(val_loader, device))
                record["val_loss"], record["val_acc"] = val["loss"], val["accuracy"]
            record["seconds"] = time.perf_counter() - start
            history.records.append(record)
    return history


def check_autocast(device_type: str, dtype: torch.dtype | str) -> torch.dtype:
    """Return `dtype` if `torch.autocast` can compute in it on `device_type` ("cpu" or
    "cuda"); raise ValueError naming the argument otherwise (fp32, fp64 and integer types are
    not autocast types; bf16 on a GPU without it is refused).

    Source: PyTorch documentation, torch.autocast (the CPU and CUDA op lists and dtypes).
    """
    if device_type not in AUTOCAST_DTYPES:
        raise ValueError(f"device must be one of {tuple(AUTOCAST_DTYPES)}, got {device_type!r}")
    if isinstance(dtype, str):
        dtype = FORMATS.get(dtype, dtype)
    allowed = AUTOCAST_DTYPES[device_type]
    if dtype not in allowed:
        raise ValueError(
            f"dtype must be one of {allowed} for autocast on {device_type}, got {dtype!r}"
        )
    if device_type == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise ValueError("dtype torch.bfloat16 is not supported by this GPU; use torch.float16")
    return dtype


# ---------------------------------------------------------------------------------------------
# Memory of a training step
# ---------------------------------------------------------------------------------------------


def training_memory(
    model: nn.Module, inputs: Tensor, *, dtype: torch.dtype | str | None = None, master: bool = True
) -> dict[str, int]:
    """Return the bytes one training step holds, measured on real tensors: "weights" (the
    parameters the forward pass uses), "master" (fp32 master weights, for a 16-bit run with
    `master`), "gradients" (as the backward pass produces them) and "activations" (every
    tensor autograd saves for the backward pass, counted through
    `torch.autograd.graph.saved_tensors_hooks`, each tensor once by its own elements: a view
    of a larger tensor counts only the view), and "total". `dtype=None`
    is the fp32 step; a 16-bit `dtype` runs the forward pass in a 16-bit copy of the model, as
    `train_mixed` does.

    Source: Micikevicius et al. 2018, abstract ("nearly halves memory requirements") and
    section 1 (activations dominate the memory of training).
    """
    check_module("model", model)
    check_tensor("inputs", inputs)
    net = model if dtype is None else copy.deepcopy(model).to(_check_dtype("dtype", dtype))
    x = inputs if dtype is None else inputs.to(dtype)
    params = [p for p in net.parameters() if p.requires_grad]
    owned = {p.untyped_storage().data_ptr() for p in params}  # weights, however viewed
    saved: dict[tuple, int] = {}

    def pack(t: Tensor) -> Tensor:
        if t.untyped_storage().data_ptr() not in owned:
            saved[_tensor_key(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = net(x).float().logsumexp(-1).mean()
    grads = torch.autograd.grad(loss, params)
    weights = sum(p.numel() * p.element_size() for p in params)
    activations = sum(saved.values())
    out = {
        "weights": weights,
        "master": 4 * sum(p.numel() for p in params) if dtype is not None and master else 0,
        "gradients": sum(g.numel() * g.element_size() for g in grads),
        "activations": activations,
    }
    out["total"] = sum(out.values())
    return out


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _tensor_key(t: Tensor) -> tuple:
    """Identify a tensor by where its elements live, so that a tensor saved twice counts once."""
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)


def _float32(value: float) -> Tensor:
    """A product taken in double precision, rounded once to float32 (as GradScaler's kernel)."""
    return torch.tensor(value, dtype=torch.float64).float()


def _autocast(device_type: str, dtype: torch.dtype | None):
    return nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


def _copy_buffers(src: nn.Module, dst: nn.Module) -> None:
    with torch.no_grad():
        for b_src, b_dst in zip(src.buffers(), dst.buffers(), strict=True):
            b_dst.copy_(b_src)


def _on_device(loader: DataLoader, device: torch.device):
    if device.type == "cpu":
        return loader
    return [tuple(t.to(device) for t in batch) for batch in loader]


def _check_dtype(name: str, dtype: object) -> torch.dtype:
    if isinstance(dtype, str) and dtype in FORMATS:
        return FORMATS[dtype]
    if dtype not in _LAYOUT:
        raise ValueError(
            f"{name} must be one of {tuple(FORMATS)} or torch.float32/float16/bfloat16, got "
            f"{dtype!r}"
        )
    return dtype


def _check_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)
