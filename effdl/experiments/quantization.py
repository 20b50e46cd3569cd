"""Lesson 03's experiments: a small CNN on digits quantized after training, weights at 8 down to
2 bits (per tensor and per channel), PyTorch's int8 kernels against fp32 on a Linear-heavy MLP
and on the CNN, and the kit's own integer-only Linear against torch's int8 one. Called by
course/03_quantization.ipynb and by the ledger claims `int8-size` and `int8-speed`
(effdl/claims/compression.py). Start with `train_float_model`, then `bit_sweep`.
"""

from __future__ import annotations

import copy
import itertools
import statistics
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from effdl._checks import check_positive_int, check_positive_number
from effdl.compress.quantize import (
    IntegerLinear,
    affine_qparams,
    dequantize,
    dynamic_int8,
    fake_quantize,
    qrange,
    quantize_per_tensor,
    quantize_weights_,
    static_int8,
)
from effdl.data import Splits, load_digits
from effdl.measure import count_params, cpu_latency, serialized_size, torch_threads
from effdl.models.mobilenet import DIGITS_TABLE, mobilenet_v1
from effdl.train import evaluate, fit

#: The float model every quantization experiment starts from: lesson 01's MobileNet-style CNN
#: for 8x8 digits (a full-conv stem, three separable layers, global pooling, one Linear),
#: about 49k parameters, trained with Adam for QUANT_EPOCHS epochs (7-9 s on one thread,
#: 98% test accuracy).
QUANT_MODEL = {"table": DIGITS_TABLE, "in_channels": 1, "num_classes": 10}
QUANT_EPOCHS = 10
QUANT_LR = 3e-3
QUANT_BATCH_SIZE = 64
#: The bit widths of the weight sweep, widest first.
SWEEP_BITS = (8, 7, 6, 5, 4, 3, 2)
#: The Linear-heavy MLP of the int8 speed test (the issue's Performance section).
MLP_SIZES = (1024, 4096, 4096, 1024)


def build_quant_model(seed: int = 0) -> nn.Module:
    """Return an untrained `QUANT_MODEL` initialised from `seed` (torch's global generator is
    left alone).

    Source: Howard et al. 2017, "MobileNets", Table 1 (scaled down to 8x8 digits).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return mobilenet_v1(**QUANT_MODEL)


def train_float_model(
    seed: int = 0, *, epochs: int = QUANT_EPOCHS, verbose: bool = False
) -> tuple[nn.Module, Splits]:
    """Return (the trained float model, its digits splits): `QUANT_MODEL` trained by
    `effdl.train.fit` (Adam, lr `QUANT_LR`, batch `QUANT_BATCH_SIZE`) for `epochs` epochs on
    `load_digits(seed=seed)`, one torch thread, in eval mode.

    Source: the kit's own protocol (lesson 01's digits CNN, effdl.train.fit).
    """
    check_positive_int("epochs", epochs)
    splits = load_digits(seed=seed)
    model = build_quant_model(seed)
    train_loader, val_loader, _ = splits.loaders(batch_size=QUANT_BATCH_SIZE, seed=seed)
    with torch_threads(1):
        fit(model, train_loader, val_loader, epochs=epochs, lr=QUANT_LR, seed=seed, verbose=verbose)
    return model.eval(), splits


def accuracy_percent(model: nn.Module, splits: Splits) -> float:
    """Return `model`'s top-1 accuracy on the test split of `splits`, in percent.

    Source: the usual top-1 accuracy (effdl.train.evaluate).
    """
    _, _, test_loader = splits.loaders(batch_size=256)
    with torch_threads(1):
        return 100.0 * evaluate(model, test_loader)["accuracy"]


def ideal_size_bytes(model: nn.Module, bits: int, *, per_channel: bool = False) -> float:
    """Return the bytes `model` needs with its Linear/Conv weights stored at `bits` bits each
    and one float32 scale plus one zero point (4 + 4 bytes) per tensor or per output channel;
    every other parameter and buffer (biases, BatchNorm) stays float32. No file format overhead.

    Source: Jacob et al. 2018, section 2.1 (a quantized tensor is its integers plus a scale and
    a zero point).
    """
    qrange(bits, signed=True)  # rejects a bit width outside 2..8 or 16
    quantized, total = set(), 0.0
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            w = module.weight
            quantized.add(id(w))
            total += w.numel() * bits / 8 + 8 * (w.shape[0] if per_channel else 1)
    for tensor in (*model.parameters(), *model.buffers()):
        if id(tensor) not in quantized and tensor.is_floating_point():
            total += 4 * tensor.numel()
    return total


def bit_sweep(
    model: nn.Module,
    splits: Splits,
    bits: Sequence[int] = SWEEP_BITS,
    *,
    per_channel: Sequence[bool] = (False, True),
    verbose: bool = False,
) -> list[dict[str, float]]:
    """Return one row per (bit width, per-channel flag): the test accuracy (%) of a copy of
    `model` whose Linear/Conv weights are fake-quantized, symmetric, to that many bits.

    Each row: "bits", "per_channel", "accuracy", "float_accuracy" (the unquantized model),
    "drop" (float minus quantized, points) and "size_bytes_ideal" (`ideal_size_bytes`).
    Activations stay float: this isolates the weights' rounding error. `model` is not changed.

    Source: Krishnamoorthi 2018, "Quantizing deep convolutional networks for efficient
    inference", section 3.1 (weight-only post-training quantization, per tensor vs per channel).
    """
    bits = list(bits)
    if not bits:
        raise ValueError(f"bits must list at least one bit width in 2..8 or 16, got {bits}")
    for b in bits:
        qrange(b, signed=True)
    flags = list(per_channel)
    if not flags or not all(isinstance(f, bool) for f in flags):
        raise ValueError(f"per_channel must be a non-empty sequence of bools, got {per_channel!r}")
    float_accuracy = accuracy_percent(model, splits)
    rows = []
    points = [(b, f) for f in flags for b in bits]
    for b, flag in tqdm(points, desc="bit sweep", disable=not verbose, leave=False):
        quantized = copy.deepcopy(model).eval()
        quantize_weights_(quantized, b, per_channel=flag, symmetric=True)
        accuracy = accuracy_percent(quantized, splits)
        rows.append(
            {
                "bits": b,
                "per_channel": flag,
                "accuracy": accuracy,
                "float_accuracy": float_accuracy,
                "drop": float_accuracy - accuracy,
                "size_bytes_ideal": ideal_size_bytes(model, b, per_channel=flag),
            }
        )
    return rows


def make_mlp(layer_sizes: Sequence[int] = MLP_SIZES, seed: int = 0) -> nn.Sequential:
    """Return an MLP of Linear layers of `layer_sizes` with ReLU between them, initialised from
    `seed` (torch's global generator is left alone), in eval mode.

    Source: the kit's own benchmark model (the issue's Performance section).
    """
    sizes = list(layer_sizes)
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes must hold at least two sizes, got {layer_sizes!r}")
    for size in sizes:
        check_positive_int("layer_sizes", size)
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers).eval()


def int8_size(layer_sizes: Sequence[int] = MLP_SIZES, seed: int = 0) -> dict[str, float]:
    """Return the serialized sizes of `make_mlp(layer_sizes)` in fp32 and after `dynamic_int8`.

    Figures: "fp32_bytes", "int8_bytes" (`serialized_size`, i.e. torch.save of the state_dict),
    "size_ratio" (fp32 / int8), "weight_count", "bias_count" (biases stay float32 in torch's
    int8 Linear) and "int8_overhead_bytes" (int8 bytes beyond one per weight: the float32
    biases, the scales and zero points, the packed-weight and file headers).

    Source: PyTorch docs, "Quantization", Introduction to Quantization ("4x reduction in the
    model size").
    """
    mlp = make_mlp(layer_sizes, seed)
    return _size_figures(mlp, dynamic_int8(mlp))


def _size_figures(mlp: nn.Sequential, int8: nn.Module) -> dict[str, float]:
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    weights = sum(m.weight.numel() for m in linears)
    fp32_bytes, int8_bytes = serialized_size(mlp), serialized_size(int8)
    return {
        "fp32_bytes": fp32_bytes,
        "int8_bytes": int8_bytes,
        "size_ratio": fp32_bytes / int8_bytes,
        "weight_count": weights,
        "bias_count": sum(m.bias.numel() for m in linears),
        "int8_overhead_bytes": int8_bytes - weights,
    }


def int8_speed(
    layer_sizes: Sequence[int] = MLP_SIZES,
    batch: int = 64,
    threads: int = 2,
    *,
    layer_width: int = 4096,
    min_run_time: float = 1.5,
    rounds: int = 3,
    kit_layer: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Return fp32 vs torch's dynamic int8 on an MLP, and the kit's `IntegerLinear` vs torch's
    int8 Linear on one layer.

    The MLP (`make_mlp(layer_sizes)`) is timed by `cpu_latency` on a (batch, in) input with
    `threads` threads, as fp32 and after `dynamic_int8` (int8 weights, activations quantized per
    batch), alternately for `rounds` rounds of `min_run_time / rounds` seconds each; each
    model's time is the median over rounds: "fp32_ms", "int8_ms", "speedup" (fp32 / int8),
    the figures of `int8_size` and "output_rel_error" (relative L2 error of the int8 MLP's
    output on that input). With `kit_layer`, one `layer_width` x `layer_width` Linear:
    "kit_linear_ms" (the kit's integer-only layer, uint8 in and out, on `torch._int_mm`),
    "torch_int8_linear_ms" (the same layer through `dynamic_int8`), "kit_vs_torch" (kit /
    torch time) and "kit_max_error_steps" (the kit layer's largest deviation from the float
    layer, in output quantization steps).

    Source: PyTorch docs, "Quantization", Introduction to Quantization (dynamic quantization);
    Jacob et al. 2018, section 2 (integer-only inference).
    """
    check_positive_int("batch", batch)
    check_positive_int("threads", threads)
    check_positive_int("layer_width", layer_width)
    check_positive_number("min_run_time", min_run_time)
    check_positive_int("rounds", rounds)
    mlp = make_mlp(layer_sizes, seed)
    int8 = dynamic_int8(mlp)
    x = torch.randn(batch, mlp[0].in_features, generator=torch.Generator().manual_seed(seed))
    # Alternate the two models and keep each one's median over the rounds: on a shared machine
    # the load changes within seconds, and alternating exposes both to the same conditions.
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(rounds):
        for name, model in (("fp32", mlp), ("int8", int8)):
            latency = cpu_latency(model, x, threads=threads, min_run_time=min_run_time / rounds)
            times[name].append(latency.median_ms)
    fp32_ms, int8_ms = statistics.median(times["fp32"]), statistics.median(times["int8"])
    with torch.no_grad(), torch_threads(threads):
        reference, approx = mlp(x), int8(x)
    figures = {
        "fp32_ms": fp32_ms,
        "int8_ms": int8_ms,
        "speedup": fp32_ms / int8_ms,
        **_size_figures(mlp, int8),
        "output_rel_error": float((approx - reference).norm() / reference.norm()),
    }
    if kit_layer:
        figures.update(_kit_vs_torch_linear(layer_width, batch, threads, min_run_time, seed))
    return figures


def _kit_vs_torch_linear(
    width: int, batch: int, threads: int, min_run_time: float, seed: int
) -> dict[str, float]:
    layer = make_mlp((width, width), seed)[0]
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        y = layer(x)
    # Activations as a calibrated uint8 layer sees them: asymmetric, from the observed range.
    input_qparams = affine_qparams(float(x.min()), float(x.max()), 8)
    output_qparams = affine_qparams(float(y.min()), float(y.max()), 8)
    kit = IntegerLinear.from_float(layer, input_qparams, output_qparams)
    x_q = quantize_per_tensor(x, *input_qparams, torch.uint8)
    with torch.no_grad(), torch_threads(threads):
        y_q = kit(x_q)
    kit_error = (dequantize(y_q, *output_qparams) - y).abs().max() / output_qparams[0]
    kit_ms = cpu_latency(kit, x_q, threads=threads, min_run_time=min_run_time, warmup=1).median_ms
    torch_ms = cpu_latency(
        dynamic_int8(nn.Sequential(layer)), x, threads=threads, min_run_time=min_run_time
    ).median_ms
    return {
        "kit_linear_ms": kit_ms,
        "torch_int8_linear_ms": torch_ms,
        "kit_vs_torch": kit_ms / torch_ms,
        "kit_max_error_steps": float(kit_error),
    }


def static_int8_cnn(
    model: nn.Module | None = None,
    splits: Splits | None = None,
    *,
    batch: int = 64,
    calibration_batches: int = 4,
    threads: int = 1,
    min_run_time: float = 0.5,
    seed: int = 0,
) -> dict[str, float]:
    """Return the float CNN beside its eager static int8 copy: accuracy, size and latency.

    `model` and `splits` default to `train_float_model(seed)`. The int8 copy comes from
    `static_int8` (Conv-BN-ReLU fused, x86 qconfig) calibrated on the first
    `calibration_batches` training batches of 64. Figures: "fp32_accuracy", "int8_accuracy"
    (test, %), "accuracy_drop" (points), "fp32_bytes", "int8_bytes" (serialized state_dict),
    "size_ratio" (fp32 / int8), "fp32_ms", "int8_ms" (`cpu_latency` of a (batch, 1, 8, 8) input
    on `threads` threads), "speedup" (fp32 / int8) and "params".

    Source: PyTorch docs, "Quantization", eager mode post-training static quantization;
    Jacob et al. 2018, section 2.
    """
    check_positive_int("batch", batch)
    check_positive_int("calibration_batches", calibration_batches)
    check_positive_int("threads", threads)
    if model is None or splits is None:
        model, splits = train_float_model(seed)
    model = model.eval()
    train_loader, _, _ = splits.loaders(batch_size=QUANT_BATCH_SIZE, seed=seed)
    calibration = [inputs for inputs, _ in itertools.islice(train_loader, calibration_batches)]
    with torch_threads(threads):
        int8 = static_int8(model, calibration)
    shape = (batch, *splits.sample_shape)
    fp32_ms = cpu_latency(model, shape, threads=threads, min_run_time=min_run_time).median_ms
    int8_ms = cpu_latency(int8, shape, threads=threads, min_run_time=min_run_time).median_ms
    fp32_acc, int8_acc = accuracy_percent(model, splits), accuracy_percent(int8, splits)
    fp32_bytes, int8_bytes = serialized_size(model), serialized_size(int8)
    return {
        "fp32_accuracy": fp32_acc,
        "int8_accuracy": int8_acc,
        "accuracy_drop": fp32_acc - int8_acc,
        "fp32_bytes": fp32_bytes,
        "int8_bytes": int8_bytes,
        "size_ratio": fp32_bytes / int8_bytes,
        "fp32_ms": fp32_ms,
        "int8_ms": int8_ms,
        "speedup": fp32_ms / int8_ms,
        "params": count_params(model),
    }


def error_histogram(
    w: Tensor, bits: int = 8, per_channel: bool = False, *, bins: int = 60
) -> dict[str, object]:
    """Return the quantization error of weight tensor `w` at `bits` bits and its histogram.

    `w` is fake-quantized symmetric, signed, per tensor or per output channel (dim 0), as
    `quantize_weights_` does. Keys: "error" (w - fake_quantize(w), a tensor like w), "counts"
    and "edges" (numpy histogram of the error over `bins` bins), "rms" (root mean square
    error), "max_abs" (largest |error|), "levels" (2^bits integer levels per tensor or
    channel), "step" (the scale: the widest step over channels when per channel) and
    "bits", "per_channel".

    Source: Jacob et al. 2018, section 2.1; Krishnamoorthi 2018, section 2 (per-channel scales
    leave smaller errors when channel ranges differ).
    """
    if not isinstance(w, Tensor) or not w.is_floating_point() or w.numel() == 0:
        raise ValueError(f"w must be a non-empty float tensor, got {_describe(w)}")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an int in 2..8, got {bits!r}")
    if not isinstance(per_channel, bool):
        raise ValueError(f"per_channel must be a bool, got {per_channel!r}")
    if per_channel and w.dim() < 2:
        raise ValueError(
            f"per_channel needs a weight with at least 2 dims, got shape {tuple(w.shape)}"
        )
    check_positive_int("bins", bins)
    w = w.detach().float()
    if per_channel:
        flat = w.flatten(1)
        scale, zero_point = affine_qparams(
            flat.min(dim=1).values, flat.max(dim=1).values, bits, symmetric=True, signed=True
        )
        approx = fake_quantize(w, scale, zero_point, bits, signed=True, axis=0)
        step = float(scale.max())
    else:
        scale, zero_point = affine_qparams(
            float(w.min()), float(w.max()), bits, symmetric=True, signed=True
        )
        approx = fake_quantize(w, scale, zero_point, bits, signed=True)
        step = float(scale)
    error = w - approx
    values = error.flatten().numpy()
    counts, edges = np.histogram(values, bins=bins)
    qmin, qmax = qrange(bits, signed=True)
    return {
        "error": error,
        "counts": counts,
        "edges": edges,
        "rms": float(error.pow(2).mean().sqrt()),
        "max_abs": float(error.abs().max()),
        "levels": qmax - qmin + 1,
        "step": step,
        "bits": bits,
        "per_channel": per_channel,
    }


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"
