"""The footprint of a model: parameters, MACs, serialized size and CPU latency, and the Pareto
front of a set of models over any of those metrics.

Every figure stands on torch's own tools: `FlopCounterMode` for MACs (FLOPs / 2),
`torch.save` for size and `torch.utils.benchmark.Timer` for latency. Start with `profile`.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effdl._checks import check_positive_int

_DIRECTIONS = ("min", "max")


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Return the number of parameters (scalars) of `model`.

    Source: the usual definition, as in torchvision's `num_params` weight metadata.
    """
    _check_module(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: Sequence[int] | torch.Tensor) -> int:
    """Return the multiply-accumulate count of one forward pass on an input of `input_shape`.

    `input_shape` includes the batch dimension, e.g. (1, 3, 224, 224), or is an example tensor.
    MACs are half the FLOPs that `torch.utils.flop_counter.FlopCounterMode` counts; like
    torchvision's `_ops` metadata they cover convolutions and matrix products, not element-wise
    work (activations, normalisation, pooling). Caveat: in torch 2.14 the counter sees no FLOPs
    in the fused CPU attention kernels (`F.scaled_dot_product_attention`, and
    `nn.MultiheadAttention` in eval mode), so a model using them is undercounted; the kit's own
    attention (`effdl.models.attention`) is written from matmuls and is counted in full.

    Source: torch.utils.flop_counter; torchvision weights metadata (`_ops`, in G mult-adds).
    """
    counter = _run_counter(model, input_shape)
    flops = counter.get_total_flops()
    if flops == 0 and count_params(model) > 0:
        raise ValueError(
            f"FlopCounterMode counted no multiply-adds in {type(model).__name__}, which has "
            "parameters: its operations are not among those torch's flop counter knows "
            "(matmul, linear, convolution, attention). Count it by hand or rewrite it with those."
        )
    return flops // 2


def macs_by_module(model: nn.Module, input_shape: Sequence[int] | torch.Tensor) -> dict[str, int]:
    """Return the MACs of each leaf module with any, keyed by its `named_modules` name.

    The numbers add up to `count_macs` when all the work happens in leaf modules (layers),
    which is the case for the kit's models; a paper's per-layer-type table (MobileNet's
    Table 2) is a sum over these entries.

    Source: torch.utils.flop_counter (per-module counts of FlopCounterMode).
    """
    counter = _run_counter(model, input_shape)
    per_module = counter.get_flop_counts()
    # FlopCounterMode names a module by the model's class name and its dotted path.
    prefix = type(model).__name__
    out = {}
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            flops = sum(per_module.get(f"{prefix}.{name}", {}).values())
            if flops:
                out[name] = flops // 2
    return out


def serialized_size(model: nn.Module) -> int:
    """Return the size in bytes of `model`'s state_dict as `torch.save` writes it.

    Source: torch.save documentation.
    """
    _check_module(model)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@dataclass(frozen=True)
class Latency:
    """CPU latency of one forward pass: median and interquartile range over timing blocks, in
    milliseconds, and the total number of forward passes timed."""

    median_ms: float
    iqr_ms: float
    runs: int
    threads: int


def cpu_latency(
    model: nn.Module,
    input_shape: Sequence[int] | torch.Tensor,
    *,
    threads: int = 1,
    min_run_time: float = 0.2,
    warmup: int = 3,
) -> Latency:
    """Return the CPU latency of one forward pass of `model` in eval mode without autograd.

    Warms up `warmup` times, fixes the thread count, then lets `Timer.blocked_autorange` pick
    the number of runs within `min_run_time` seconds; reports the median over those blocks.

    Source: torch.utils.benchmark documentation ("Timer", "blocked_autorange").
    """
    _check_module(model)
    check_positive_int("threads", threads)
    if min_run_time <= 0:
        raise ValueError(f"min_run_time must be > 0 seconds, got {min_run_time}")
    x = _example_input(input_shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model(x)
            timer = _benchmark().Timer(
                stmt="model(x)",
                globals={"model": model, "x": x},
                num_threads=threads,
                setup="import torch; torch.set_grad_enabled(False)",
            )
            result = timer.blocked_autorange(min_run_time=min_run_time)
    finally:
        model.train(was_training)
    return Latency(
        median_ms=result.median * 1e3,
        iqr_ms=result.iqr * 1e3,
        runs=len(result.times) * result.number_per_run,
        threads=threads,
    )


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the `with` block on `count` torch intra-op threads and restore the caller's count
    after, so that a measurement runs on a known number of threads.

    Source: torch.set_num_threads / torch.get_num_threads documentation.
    """
    check_positive_int("count", count)
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def profile(
    model: nn.Module,
    input_shape: Sequence[int] | torch.Tensor,
    *,
    latency: bool = True,
    threads: int = 1,
) -> dict[str, float]:
    """Return a model's footprint: params, MACs, size in bytes and (optionally) latency in ms.

    `input_shape` is the whole input's shape, batch dimension included, as everywhere in this
    module; MACs and latency are per sample, so pass a batch of 1, e.g. (1, 1, 40) for
    mnist1d (`(1, *splits.sample_shape)`). A larger batch is refused rather than divided,
    since latency does not scale linearly with the batch.

    Source: the footprint metrics of Menghani 2021, "Efficient Deep Learning" (size, latency,
    compute).
    """
    x = _example_input(input_shape)
    if x.dim() < 1 or x.shape[0] != 1:
        raise ValueError(
            f"input_shape must have batch dimension 1 (profile reports per-sample figures), "
            f"got {tuple(x.shape)}"
        )
    row = {
        "params": count_params(model),
        "macs": count_macs(model, x),
        "size_bytes": serialized_size(model),
    }
    if latency:
        row["latency_ms"] = cpu_latency(model, x, threads=threads).median_ms
    return row


def sequential_steps(model: nn.Module, x: torch.Tensor, step_type: type[nn.Module]) -> int:
    """Return the longest chain of calls to `step_type` submodules in which each call takes
    the previous call's output as input: the steps that must run one after another.

    Counted with forward hooks during one forward pass: a self-attention layer is one call
    over all positions (1); a recurrent cell is called once per position, each on the last
    one's state (n).

    Source: Vaswani et al. 2017, Table 1 ("sequential operations"), measured rather than assumed.
    """
    _check_module(model)
    depth_of_output: dict[int, int] = {}
    kept: list[torch.Tensor] = []  # holding every output keeps its id() from being reused
    longest = 0

    def record(module, inputs, output):
        nonlocal longest
        tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
        depth = 1 + max((depth_of_output.get(id(t), 0) for t in tensors), default=0)
        outputs = output if isinstance(output, tuple) else (output,)
        for out in outputs:
            if isinstance(out, torch.Tensor):
                depth_of_output[id(out)] = depth
                kept.append(out)
        longest = max(longest, depth)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, step_type)]
    if not handles:
        raise ValueError(f"model has no submodule of step_type {step_type.__name__}")
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return longest


def pareto_front(points: Sequence[Mapping[str, float]], objectives: Mapping[str, str]) -> list[int]:
    """Return the indices of the points that no other point dominates, in input order.

    `objectives` maps each metric (two or three, or more) to "min" or "max". A point dominates
    another if it is at least as good in every objective and strictly better in one.

    Source: Menghani 2021, "Efficient Deep Learning" survey, section 1 (Pareto-optimality).
    """
    if not isinstance(objectives, Mapping) or len(objectives) < 1:
        raise ValueError(f"objectives must map metric names to 'min' or 'max', got {objectives!r}")
    for metric, direction in objectives.items():
        if direction not in _DIRECTIONS:
            raise ValueError(
                f"objectives[{metric!r}] must be one of {_DIRECTIONS}, got {direction!r}"
            )
    for i, point in enumerate(points):
        missing = [m for m in objectives if m not in point]
        if missing:
            raise ValueError(f"points[{i}] lacks metrics {missing}; it has {sorted(point)}")
    # Flip "max" metrics so that smaller is better everywhere.
    signs = np.array([1.0 if d == "min" else -1.0 for d in objectives.values()])
    values = np.array([[float(p[m]) for m in objectives] for p in points]).reshape(len(points), -1)
    values = values * signs
    front = []
    for i, v in enumerate(values):
        no_worse = np.all(values <= v, axis=1)
        better = np.any(values < v, axis=1)
        if not np.any(no_worse & better):
            front.append(i)
    return front


def _run_counter(model: nn.Module, input_shape: Sequence[int] | torch.Tensor) -> FlopCounterMode:
    _check_module(model)
    x = _example_input(input_shape)
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    except Exception as err:  # any failure here means the counter could not trace the model
        raise ValueError(
            f"FlopCounterMode could not trace {type(model).__name__} on input shape "
            f"{tuple(x.shape)}: {type(err).__name__}: {err}. count_macs needs a model whose "
            "forward runs on one tensor of that shape."
        ) from err
    finally:
        model.train(was_training)
    return counter


def _benchmark():
    # torch.utils.benchmark imports cpp_extension, which logs a warning when a CUDA build of
    # torch finds no CUDA runtime; on a CPU machine that is expected, so keep it quiet.
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        logger.setLevel(level)
    return benchmark


def _check_module(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _example_input(input_shape: Sequence[int] | torch.Tensor) -> torch.Tensor:
    if isinstance(input_shape, torch.Tensor):
        return input_shape
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(
            f"input_shape must be a tuple of positive ints including the batch dimension, "
            f"got {input_shape!r}"
        )
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))
