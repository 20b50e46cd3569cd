"""Model parallelism with a GPipe pipeline: an `nn.Sequential` is cut into K stages, one process
each; stage i receives its input from stage i-1 with `torch.distributed.recv`, sends its output
to stage i+1, and in the backward pass the gradients travel the other way. Cutting each batch
into M micro-batches lets the stages work at the same time, idle only in the "bubble"
(K-1)/(M+K-1) of Huang et al. 2019. Start with `pipeline_schedule` and `bubble_fraction` (the
schedule on paper), then `split_sequential` and `pipeline_step` (what one rank does), and
`model_parallel_step`, `measure_bubble` and `train_model_parallel` (which launch the ranks).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from effdl._checks import (
    check_in,
    check_module,
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
    check_tensor,
)
from effdl.data import load_mnist1d
from effdl.models.baselines import make_baseline
from effdl.parallel.launch import launch, process_group, rank_and_world

#: A slot of `pipeline_schedule` for one stage: ("F" or "B", micro-batch), or None when idle.
Slot = tuple[str, int] | None
#: The micro-batch counts `measure_bubble` compares by default, and its timed and untimed
#: steps per count.
BUBBLE_MICRO_BATCHES = (1, 2, 4, 8)
BUBBLE_REPEATS, BUBBLE_WARMUP = 5, 2
#: The devices a stage may live on: "cpu" (backend gloo) or "cuda" (stage i on cuda:i, nccl).
DEVICES = ("cpu", "cuda")
#: The mnist1d models `train_model_parallel` splits (effdl.models.baselines, as nn.Sequential).
PIPELINE_MODELS = ("mlp", "cnn")
#: The dtypes an activation may have on the wire, by their code in the shape header.
_WIRE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
#: The most dimensions an activation may have (the shape header has a fixed length).
_MAX_DIMS = 8


# --- the schedule on paper -------------------------------------------------------------------


def bubble_fraction(stages: int, micro_batches: int) -> float:
    """Return GPipe's bubble, the fraction of stage-time spent idle: (K-1)/(M+K-1) for K
    `stages` and M `micro_batches`, when every stage takes the same time for each micro-batch.

    The pipeline takes M+K-1 forward slots (the last micro-batch enters stage 0 at slot M-1 and
    needs K slots to cross) and as many backward slots; each stage is busy in M of each, so
    K-1 of the M+K-1 are idle. One stage (K=1) has no bubble; M >= 4K brings it under 20%.

    Source: Huang et al. 2019, "GPipe: Efficient Training of Giant Neural Networks using
    Pipeline Parallelism", NeurIPS 2019, section 2.3 and Figure 2(c).
    """
    k = check_positive_int("stages", stages)
    m = check_positive_int("micro_batches", micro_batches)
    return (k - 1) / (m + k - 1)


def pipeline_schedule(stages: int, micro_batches: int) -> list[tuple[Slot, ...]]:
    """Return GPipe's schedule simulated in unit time slots: one row per slot, each row a tuple
    with one entry per stage, ("F", m) or ("B", m) for the forward or backward of micro-batch m,
    or None when the stage is idle.

    Every stage runs its forwards F0..F(M-1), then its backwards B(M-1)..B0 (the last
    micro-batch in is the first back, as in GPipe's figure), each in one slot, as soon as what
    it needs is done: F(s, m) needs F(s-1, m) from an earlier slot, B(s, m) needs B(s+1, m).
    The idle entries are exactly `bubble_fraction(stages, micro_batches)` of all entries.

    Source: Huang et al. 2019, "GPipe", section 2.2 and Figure 2(c).
    """
    k = check_positive_int("stages", stages)
    m = check_positive_int("micro_batches", micro_batches)
    # Each stage's work in the order it does it; done[(kind, stage, mb)] = slot it finished.
    todo = [[("F", i) for i in range(m)] + [("B", i) for i in reversed(range(m))] for _ in range(k)]
    done: dict[tuple[str, int, int], int] = {}
    rows: list[tuple[Slot, ...]] = []
    while any(todo):
        slot = len(rows)
        row: list[Slot] = []
        for s in range(k):
            task = todo[s][0] if todo[s] else None
            if task is not None:
                kind, mb = task
                needs = (kind, s - 1, mb) if kind == "F" else (kind, s + 1, mb)
                outside = needs[1] < 0 or needs[1] >= k  # stage 0's input, the last's loss
                if not outside and done.get(needs, slot) >= slot:
                    task = None
            if task is not None:
                todo[s].pop(0)
            row.append(task)
        for s, task in enumerate(row):
            if task is not None:
                done[(task[0], s, task[1])] = slot
        rows.append(tuple(row))
    return rows


def idle_fraction(schedule: Sequence[Sequence[Slot]]) -> float:
    """Return the fraction of None entries (idle stage-slots) in a `pipeline_schedule`.

    Source: Huang et al. 2019, "GPipe", section 2.3 (the bubble as idle time).
    """
    cells = [cell for row in schedule for cell in row]
    if not cells:
        raise ValueError("schedule must hold at least one slot")
    return sum(cell is None for cell in cells) / len(cells)


# --- cutting the model -----------------------------------------------------------------------


def split_sequential(
    model: nn.Sequential, n_stages: int, *, boundaries: Sequence[int] | None = None
) -> list[nn.Sequential]:
    """Return `model` cut into `n_stages` consecutive `nn.Sequential` stages that keep the
    model's own layer names (so stage.named_parameters() names match the model's) and share
    its layers (no copy).

    `boundaries` are the indices of the layers that start stages 1..K-1, e.g. (3,) puts layers
    0-2 in stage 0 and the rest in stage 1. Without them the cut balances the parameter count:
    it minimises the largest stage's parameters (ties go to later cuts, so a parameter-free
    activation stays with the layer before it). Parameters are a proxy for the memory a stage
    holds, not for its time: a convolution's compute also grows with the signal's length.

    Source: Huang et al. 2019, "GPipe", section 2.2 (a sequence of L layers partitioned into K
    cells, one per accelerator).
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    n_stages = check_positive_int("n_stages", n_stages)
    n_layers = len(model)
    if n_stages > n_layers:
        raise ValueError(
            f"n_stages must be at most the model's {n_layers} layers (each stage needs one), "
            f"got {n_stages}"
        )
    if boundaries is None:
        cuts = _balanced_cuts([_param_count(layer) for layer in model], n_stages)
    else:
        cuts = _check_boundaries(boundaries, n_stages, n_layers)
    edges = [0, *cuts, n_layers]
    return [model[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


class Residual(nn.Module):
    """x + body(x): a skip connection wrapped as one layer, so that a stage holds it whole."""

    def __init__(self, *body: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def sequential_baseline(name: str, *, seed: int = 0) -> nn.Sequential:
    """Return the mnist1d baseline `name` ("mlp" or "cnn", `effdl.models.baselines`) rewritten
    as an `nn.Sequential` with the same weights (those of `make_baseline(name, seed=seed)`) and
    the same function, its layers named (hidden1, residual, output; conv1, ..., classifier).

    Source: Greydanus 2020, "Scaling down deep learning", section 2 (the baselines).
    """
    check_in("name", name, PIPELINE_MODELS)
    base = make_baseline(name, seed=seed)
    if name == "mlp":
        layers = [
            ("flatten", nn.Flatten()),
            ("hidden1", base.hidden1),
            ("relu1", nn.ReLU()),
            ("residual", Residual(base.hidden2, nn.ReLU())),
            ("output", base.output),
        ]
    else:
        convs = [m for m in base.features if isinstance(m, nn.Conv1d)]
        layers = []
        for i, conv in enumerate(convs, start=1):
            layers += [(f"conv{i}", conv), (f"relu{i}", nn.ReLU())]
        layers += [("flatten", nn.Flatten()), ("classifier", base.classifier)]
    return nn.Sequential(OrderedDict(layers))


def make_pipeline_mlp(
    in_features: int = 40,
    width: int = 256,
    depth: int = 8,
    num_classes: int = 10,
    *,
    seed: int = 0,
) -> nn.Sequential:
    """Return a plain MLP (Flatten, then `depth` Linear+ReLU layers of `width`, then a Linear
    classifier) initialised from `seed`: its hidden layers are all alike, so a cut halfway
    gives nearly equal stages, and at the default width a micro-batch of a few hundred samples
    computes for longer than gloo takes to send its activation on a CPU.

    Source: the kit's own test model for Huang et al. 2019's equal-stage assumption.
    """
    for name, value in (("in_features", in_features), ("width", width), ("depth", depth)):
        check_positive_int(name, value)
    check_positive_int("num_classes", num_classes)
    layers: list[nn.Module] = [nn.Flatten()]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(depth):
            layers += [nn.Linear(in_features if i == 0 else width, width), nn.ReLU()]
        layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


# --- what one rank does ----------------------------------------------------------------------


def pipeline_step(
    stage: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    micro_batches: int = 1,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Run one GPipe training step of this rank's `stage` inside a process group (one rank per
    stage, in order) and return {"loss", "output", "intervals"}; the gradients are left in the
    stage's parameters (accumulated over the micro-batches) for the caller's optimizer step.

    Every rank gets the same batch `x`, `y` (stage 0 reads x, the last stage y). The batch is cut
    into `micro_batches` equal micro-batches. Forward: each stage receives micro-batch m's
    activation from the stage before (stage 0 slices x), runs, and sends its output on
    (`isend`, so a stage never waits for a slower neighbour to take it); the last stage computes
    `loss_fn(out, y_m) * len(y_m) / len(y)`, so that with a mean-reduced `loss_fn` the summed
    micro-batch losses are the batch's mean loss and the accumulated gradients are the
    full-batch ones. Backward, last micro-batch first: each stage receives the gradient of its
    output, back-propagates it through its part, and sends its input's gradient back.
    "loss" (float) and "output" (the batch's outputs, detached, on the CPU) are None except on
    the last stage; "intervals" lists this stage's compute as (kind, micro_batch, start, end),
    kind "F" or "B", in seconds of `time.monotonic` (one clock for all processes of a machine),
    excluding the time spent waiting in recv or send.

    Source: Huang et al. 2019, "GPipe", section 2.2; PyTorch documentation, "Writing
    Distributed Applications with PyTorch" (point-to-point communication: send, recv, isend).
    """
    check_module("stage", stage)
    if not dist.is_initialized():
        raise RuntimeError(
            "pipeline_step runs inside a process group: start it with "
            "effdl.parallel.launch.launch (or torchrun) and `with process_group(...)`"
        )
    rank, world = dist.get_rank(), dist.get_world_size()
    check_tensor("x", x)
    check_tensor("y", y)
    _check_batch(len(x), len(y), micro_batches)
    device = torch.device(device)
    first, last = rank == 0, rank == world - 1
    size = len(x) // micro_batches
    xs, ys = x.split(size), y.split(size)
    inputs: list[Tensor] = []
    outputs: list[Tensor] = []
    losses: list[Tensor] = []
    intervals: list[tuple[str, int, float, float]] = []
    pending: list[Any] = []
    for m in range(micro_batches):
        if first:
            inp = xs[m].to(device)
        else:
            # The micro-batches have one shape: only the first message carries it. The
            # received activation is a leaf of this stage's graph, whose .grad after the
            # backward pass is what the stage before needs.
            like = inputs[0] if m else None
            inp = _recv_activation(rank - 1, device, like=like).requires_grad_(True)
        start = _now(device)
        out = stage(inp)
        if last:
            losses.append(loss_fn(out, ys[m].to(device)) * (len(ys[m]) / len(y)))
        intervals.append(("F", m, start, _now(device)))
        if not last:
            pending += _isend_activation(out.detach(), rank + 1, header=m == 0)
        inputs.append(inp)
        outputs.append(out)
    for work in pending:
        work.wait()
    pending = []
    for m in reversed(range(micro_batches)):
        if last:
            start = _now(device)
            losses[m].backward()
        else:
            grad = torch.empty_like(outputs[m])
            dist.recv(grad, src=rank + 1)
            start = _now(device)
            # A first stage without parameters (a Flatten) has nothing to back-propagate.
            if outputs[m].requires_grad:
                outputs[m].backward(grad)
        intervals.append(("B", m, start, _now(device)))
        if not first:
            pending.append(dist.isend(inputs[m].grad.contiguous(), dst=rank - 1))
    for work in pending:
        work.wait()
    result: dict[str, Any] = {"loss": None, "output": None, "intervals": intervals}
    if last:
        result["loss"] = float(sum(loss.detach() for loss in losses))
        result["output"] = torch.cat([o.detach() for o in outputs]).cpu()
    return result


def pipeline_forward(
    stage: nn.Module, x: Tensor, *, chunks: int = 1, device: str | torch.device = "cpu"
) -> Tensor | None:
    """Return the model's output for `x` (on the CPU) on the last stage, None on the others:
    the forward half of `pipeline_step` without gradients, `x` cut into `chunks` pieces (the
    last ones may be a sample shorter) that flow through the stages one after another.

    Source: Huang et al. 2019, "GPipe", section 2.2 (the forward pass of the pipeline).
    """
    check_module("stage", stage)
    if not dist.is_initialized():
        raise RuntimeError("pipeline_forward runs inside a process group, like pipeline_step")
    chunks = check_positive_int("chunks", chunks)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(device)
    outs, pending = [], []
    with torch.no_grad():
        for piece in torch.tensor_split(x, chunks):
            inp = piece.to(device) if rank == 0 else _recv_activation(rank - 1, device)
            out = stage(inp)
            if rank == world - 1:
                outs.append(out.cpu())
            else:
                pending += _isend_activation(out, rank + 1)
    for work in pending:
        work.wait()
    return torch.cat(outs) if outs else None


def measured_bubble(intervals: Sequence[Sequence[tuple[str, int, float, float]]]) -> float:
    """Return the measured bubble of one step: 1 - (sum of every stage's compute time) /
    (K * makespan), with `intervals[s]` stage s's (kind, micro_batch, start, end) and the
    makespan from the first start to the last end over all stages. It is the share of
    stage-seconds not spent computing, as `bubble_fraction` is the share of idle slots.

    Source: Huang et al. 2019, "GPipe", section 2.3 (bubble overhead as idle time).
    """
    spans = [(start, end) for stage in intervals for _, _, start, end in stage]
    if not spans:
        raise ValueError("intervals must hold at least one (kind, micro_batch, start, end)")
    makespan = max(e for _, e in spans) - min(s for s, _ in spans)
    if makespan <= 0:
        return 0.0
    busy = sum(e - s for s, e in spans)
    return 1.0 - busy / (len(intervals) * makespan)


# --- launching the ranks ---------------------------------------------------------------------


def model_parallel_step(
    model: nn.Sequential,
    x: Tensor,
    y: Tensor,
    *,
    stages: int = 2,
    micro_batches: int = 1,
    boundaries: Sequence[int] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    device: str = "cpu",
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Return one pipelined training step of `model` on `x`, `y` across `stages` processes
    (one per stage, `launch`ed as torchrun would): {"loss", "output", "grads", "intervals",
    "bubble", "formula", "boundaries"}. The model itself is left untouched.

    The ranks receive `model` pickled, so they start from the caller's weights; rank s keeps
    `split_sequential(model, stages, boundaries=...)[s]`. "grads" maps every parameter name of
    `model` to its gradient (the same names as model.named_parameters()), "output" is the
    batch's output, "loss" the batch's mean loss (with a mean-reduced `loss_fn`): all equal to
    one step of `model` in one process, up to float rounding. "intervals" lists each stage's
    compute intervals (kind, micro_batch, start, end) in seconds from the step's first start;
    "bubble" is `measured_bubble` of them and "formula" `bubble_fraction(stages,
    micro_batches)`. `device="cuda"` puts stage s on cuda:s and talks over nccl.

    Source: Huang et al. 2019, "GPipe", section 2.2; PyTorch documentation, "Writing
    Distributed Applications with PyTorch" (point-to-point communication).
    """
    cuts = _check_pipeline_args(model, x, y, stages, micro_batches, boundaries, device)
    _check_loss_fn(loss_fn)
    timeout = check_positive_number("timeout", timeout)
    results = launch(
        _step_rank,
        stages,
        (model, cuts, x, y, micro_batches, loss_fn, device),
        timeout=timeout,
    )
    grads: dict[str, Tensor] = {}
    for r in results:
        grads.update(r["grads"])
    intervals = _from_zero([r["intervals"] for r in results])
    return {
        "loss": results[-1]["loss"],
        "output": results[-1]["output"],
        "grads": {name: grads[name] for name, _ in model.named_parameters() if name in grads},
        "intervals": intervals,
        "bubble": measured_bubble(intervals),
        "formula": bubble_fraction(stages, micro_batches),
        "boundaries": cuts,
    }


def measure_bubble(
    model: nn.Sequential,
    x: Tensor,
    y: Tensor,
    *,
    stages: int = 2,
    micro_batches: Sequence[int] = BUBBLE_MICRO_BATCHES,
    boundaries: Sequence[int] | None = None,
    repeats: int = BUBBLE_REPEATS,
    warmup: int = BUBBLE_WARMUP,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    device: str = "cpu",
    timeout: float = 120.0,
) -> list[dict[str, Any]]:
    """Return one row per micro-batch count M: {"stages", "micro_batches", "formula",
    "measured", "measured_best", "stage_idle", "step_seconds", "stage_busy_seconds"}, all from
    one launch of `stages` ranks that each run `warmup` untimed and `repeats` timed
    `pipeline_step`s per M (the counts taking turns, a barrier before each step, no optimizer
    step).

    What is measured: each stage records when it computes (a micro-batch's forward, the loss
    on the last stage, a backward), not when it waits in recv or send. "measured" is the median
    over the repeats of `measured_bubble`, 1 - busy / (K * makespan), "measured_best" the
    smallest (the repeat least disturbed by other work on the machine); "stage_idle" is each
    stage's own idle share 1 - busy_s / makespan (median), "step_seconds" the median makespan.
    Why it differs from (K-1)/(M+K-1) on a CPU: sending and receiving cost time that counts as
    idle (more messages as M grows); the stages are not equal (the slowest sets the pace, the
    others wait, and a backward takes about twice a forward); a small micro-batch runs less
    efficiently than 1/M of the batch, with a fixed Python and autograd cost each; and the
    ranks share the machine's cores with each other and with everything else, so a stage that
    is descheduled while computing still counts as busy. M=1 cannot overlap at all: the
    measured bubble then is at least (K-1)/K whatever the load.

    Source: Huang et al. 2019, "GPipe", section 2.3 (bubble overhead (K-1)/(M+K-1), negligible
    for M >= 4K) and Figure 2(c).
    """
    counts = _check_micro_batch_counts(micro_batches)
    cuts = None
    for m in counts:
        cuts = _check_pipeline_args(model, x, y, stages, m, boundaries, device)
    _check_loss_fn(loss_fn)
    repeats = check_positive_int("repeats", repeats)
    warmup = check_non_negative_int("warmup", warmup)
    timeout = check_positive_number("timeout", timeout)
    results = launch(
        _bubble_rank,
        stages,
        (model, cuts, x, y, counts, repeats, warmup, loss_fn, device),
        timeout=timeout,
    )
    return _bubble_rows(results, stages, counts)


def train_model_parallel(
    model: str = "mlp",
    *,
    stages: int = 2,
    micro_batches: int = 4,
    boundaries: Sequence[int] | None = None,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 0.05,
    momentum: float = 0.9,
    seed: int = 0,
    bubble_micro_batches: Sequence[int] = BUBBLE_MICRO_BATCHES,
    bubble_batch_size: int = 800,
    device: str = "cpu",
    timeout: float = 300.0,
    verbose: bool = False,
) -> dict[str, Any]:
    """Train the mnist1d `model` ("mlp" or "cnn", `sequential_baseline(model, seed=seed)`) cut
    into `stages` pipeline stages, `micro_batches` per batch, and return {"model", "stages",
    "micro_batches", "boundaries", "loss_curve" (per step), "epoch_loss", "test_accuracy" (per
    epoch, %), "epoch_seconds", "stage_busy_seconds" (per epoch, one list per stage),
    "bubble" (`measure_bubble` rows of the trained model at `bubble_micro_batches` on the first
    `bubble_batch_size` training samples; [] if none asked), "state_dict" (the trained weights
    in the Sequential's names)}, all from one launch.

    Each rank holds one stage and its own SGD optimizer (`lr`, `momentum`): SGD updates every
    parameter on its own, so K optimizers over K stages take the step one would over the whole
    model. Epoch e visits the training set in the order
    `torch.randperm(n, generator=torch.Generator().manual_seed(seed + e))`, in batches of
    `batch_size` (a last partial batch is dropped); the test accuracy is a pipelined forward.
    mnist1d's models compute a micro-batch in well under a millisecond, so on a CPU messaging
    and waking the ranks dominate: their measured bubble stays far above the formula and
    "stage_busy_seconds" is a small part of "epoch_seconds". `measure_bubble` on
    `make_pipeline_mlp` shows the regime the formula describes.

    Source: Huang et al. 2019, "GPipe", section 2.2 (one synchronous update per mini-batch,
    gradients accumulated over micro-batches); Greydanus 2020 (mnist1d).
    """
    check_in("model", model, PIPELINE_MODELS)
    batch_size = check_positive_int("batch_size", batch_size)
    _check_batch(batch_size, batch_size, micro_batches)
    epochs = check_positive_int("epochs", epochs)
    lr = check_positive_number("lr", lr)
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) or momentum < 0:
        raise ValueError(f"momentum must be a number >= 0, got {momentum!r}")
    counts = _check_micro_batch_counts(bubble_micro_batches, allow_empty=True)
    bubble_batch_size = check_positive_int("bubble_batch_size", bubble_batch_size)
    for m in counts:
        _check_batch(bubble_batch_size, bubble_batch_size, m)
    timeout = check_positive_number("timeout", timeout)
    net = sequential_baseline(model, seed=seed)
    splits = load_mnist1d(seed=seed)
    x_train, y_train = splits.train
    if max(batch_size, bubble_batch_size) > len(x_train):
        raise ValueError(
            f"batch_size and bubble_batch_size must be at most the {len(x_train)} training "
            f"samples, got {batch_size} and {bubble_batch_size}"
        )
    cuts = _check_pipeline_args(
        net, x_train[:batch_size], y_train[:batch_size], stages, micro_batches, boundaries, device
    )
    plan = {
        "cuts": cuts, "micro_batches": micro_batches, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "momentum": float(momentum), "seed": seed,
        "bubble_micro_batches": counts, "bubble_batch_size": bubble_batch_size,
        "device": device, "verbose": verbose,
    }  # fmt: skip
    results = launch(_train_rank, stages, (net, plan, splits.train, splits.test), timeout=timeout)
    state: dict[str, Tensor] = {}
    for r in results:
        state.update(r["state_dict"])
    last = results[-1]
    return {
        "model": model,
        "stages": stages,
        "micro_batches": micro_batches,
        "boundaries": cuts,
        "loss_curve": last["loss_curve"],
        "epoch_loss": last["epoch_loss"],
        "test_accuracy": last["test_accuracy"],
        "epoch_seconds": last["epoch_seconds"],
        "stage_busy_seconds": [r["busy_seconds"] for r in results],
        "bubble": _bubble_rows([r["bubble"] for r in results], stages, counts) if counts else [],
        "state_dict": {name: state[name] for name in net.state_dict()},
    }


# --- the rank functions that `launch` runs ---------------------------------------------------


def _step_rank(model, cuts, x, y, micro_batches, loss_fn, device) -> dict[str, Any]:
    with _stage_group(device) as (rank, world, dev):
        stage = split_sequential(model, world, boundaries=cuts)[rank].to(dev)
        out = pipeline_step(stage, x, y, micro_batches=micro_batches, loss_fn=loss_fn, device=dev)
        out["grads"] = {
            name: p.grad.detach().cpu()
            for name, p in stage.named_parameters()
            if p.grad is not None
        }
        return out


def _bubble_rank(model, cuts, x, y, counts, repeats, warmup, loss_fn, device) -> dict[int, list]:
    with _stage_group(device) as (rank, world, dev):
        stage = split_sequential(model, world, boundaries=cuts)[rank].to(dev)
        return _time_steps(stage, x, y, counts, repeats, warmup, loss_fn, dev)


def _train_rank(net, plan, train, test) -> dict[str, Any]:
    with _stage_group(plan["device"]) as (rank, world, dev):
        stage = split_sequential(net, world, boundaries=plan["cuts"])[rank].to(dev)
        optimizer = torch.optim.SGD(stage.parameters(), lr=plan["lr"], momentum=plan["momentum"])
        (x, y), (x_test, y_test) = train, test
        n, b = len(x), plan["batch_size"]
        out = {"loss_curve": [], "epoch_loss": [], "test_accuracy": [], "epoch_seconds": []}
        out["busy_seconds"] = []
        epochs = range(plan["epochs"])
        for epoch in tqdm(epochs, desc="epochs", disable=not plan["verbose"] or rank != 0):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(plan["seed"] + epoch))
            dist.barrier()
            start, busy, losses = time.monotonic(), 0.0, []
            stage.train()
            for i in range(n // b):
                idx = order[i * b : (i + 1) * b]
                optimizer.zero_grad(set_to_none=True)
                step = pipeline_step(
                    stage, x[idx], y[idx], micro_batches=plan["micro_batches"], device=dev
                )
                optimizer.step()
                busy += sum(e - s for _, _, s, e in step["intervals"])
                if step["loss"] is not None:
                    losses.append(step["loss"])
            out["epoch_seconds"].append(time.monotonic() - start)
            out["busy_seconds"].append(busy)
            stage.eval()
            logits = pipeline_forward(stage, x_test, chunks=math.ceil(len(x_test) / b), device=dev)
            if logits is not None:
                out["loss_curve"] += losses
                out["epoch_loss"].append(sum(losses) / len(losses))
                out["test_accuracy"].append(
                    100.0 * float((logits.argmax(1) == y_test).float().mean())
                )
        optimizer.zero_grad(set_to_none=True)
        nb = plan["bubble_batch_size"]
        counts = plan["bubble_micro_batches"]
        out["bubble"] = _time_steps(
            stage, x[:nb], y[:nb], counts, BUBBLE_REPEATS, BUBBLE_WARMUP, F.cross_entropy, dev
        )
        out["state_dict"] = {k: v.detach().cpu().clone() for k, v in stage.state_dict().items()}
        return out


def _time_steps(stage, x, y, counts, repeats, warmup, loss_fn, device) -> dict[int, list]:
    # {M: [intervals of each timed step]}. The counts take turns within each repeat, so that a
    # burst of load elsewhere on the machine hits them all alike; gradients are discarded.
    timed: dict[int, list] = {m: [] for m in counts}
    for rep in range(warmup + repeats):
        for m in counts:
            dist.barrier()
            step = pipeline_step(stage, x, y, micro_batches=m, loss_fn=loss_fn, device=device)
            stage.zero_grad(set_to_none=True)
            if rep >= warmup:
                timed[m].append(step["intervals"])
    return timed


@contextlib.contextmanager
def _stage_group(device: str) -> Iterator[tuple[int, int, torch.device]]:
    # Join the group for `device`: "cpu" talks gloo; "cuda" puts the rank on the GPU of its
    # LOCAL_RANK (cuda:r on one machine) and talks nccl, which needs the device set first.
    if device == "cuda":
        rank, _ = rank_and_world()
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    with process_group("nccl" if device == "cuda" else "gloo") as (rank, world):
        yield rank, world, dev


# --- helpers ---------------------------------------------------------------------------------


def _bubble_rows(results: Sequence[dict], stages: int, counts: Sequence[int]) -> list[dict]:
    rows = []
    for m in counts:
        steps = [_from_zero([r[m][i] for r in results]) for i in range(len(results[0][m]))]
        measured = [measured_bubble(step) for step in steps]
        makespans = [_makespan(step) for step in steps]
        busy = [[sum(e - s for _, _, s, e in stage) for stage in step] for step in steps]
        idle = [
            _median(
                [
                    1.0 - busy[i][s] / makespans[i] if makespans[i] > 0 else 0.0
                    for i in range(len(steps))
                ]
            )
            for s in range(stages)
        ]
        rows.append(
            {
                "stages": stages,
                "micro_batches": m,
                "formula": bubble_fraction(stages, m),
                "measured": _median(measured),
                "measured_best": min(measured),
                "stage_idle": idle,
                "step_seconds": _median(makespans),
                "stage_busy_seconds": [_median([b[s] for b in busy]) for s in range(stages)],
            }
        )
    return rows


def _from_zero(intervals: Sequence[Sequence[tuple]]) -> list[list[tuple[str, int, float, float]]]:
    # Shift all stages' intervals so that the step's first compute starts at 0.
    starts = [s for stage in intervals for _, _, s, _ in stage]
    t0 = min(starts) if starts else 0.0
    return [[(k, m, s - t0, e - t0) for k, m, s, e in stage] for stage in intervals]


def _makespan(intervals: Sequence[Sequence[tuple]]) -> float:
    spans = [(s, e) for stage in intervals for _, _, s, e in stage]
    return max(e for _, e in spans) - min(s for s, _ in spans)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _now(device: torch.device) -> float:
    # A GPU runs asynchronously: wait for its queue, or the interval measures only the launch.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.monotonic()


def _isend_activation(tensor: Tensor, dst: int, *, header: bool = True) -> list[Any]:
    # A header (dtype code, number of dims, the dims) first, so that the receiver can allocate
    # the buffer; both go out without waiting. The caller keeps the works to wait on later.
    tensor = tensor.contiguous()
    if not header:
        return [dist.isend(tensor, dst=dst)]
    if tensor.dtype not in _WIRE_DTYPES or tensor.dim() > _MAX_DIMS:
        raise ValueError(
            f"a stage's output must be a float tensor of at most {_MAX_DIMS} dims, got "
            f"{tensor.dtype} with shape {tuple(tensor.shape)}"
        )
    shape = torch.zeros(2 + _MAX_DIMS, dtype=torch.int64, device=tensor.device)
    shape[0], shape[1] = _WIRE_DTYPES.index(tensor.dtype), tensor.dim()
    shape[2 : 2 + tensor.dim()] = torch.tensor(tensor.shape, dtype=torch.int64)
    return [dist.isend(shape, dst=dst), dist.isend(tensor, dst=dst)]


def _recv_activation(src: int, device: torch.device, *, like: Tensor | None = None) -> Tensor:
    # Without `like`, read the header that `_isend_activation` sent first.
    if like is not None:
        tensor = torch.empty(like.shape, dtype=like.dtype, device=device)
        dist.recv(tensor, src=src)
        return tensor
    header = torch.empty(2 + _MAX_DIMS, dtype=torch.int64, device=device)
    dist.recv(header, src=src)
    code, ndim = int(header[0]), int(header[1])
    shape = [int(d) for d in header[2 : 2 + ndim]]
    tensor = torch.empty(shape, dtype=_WIRE_DTYPES[code], device=device)
    dist.recv(tensor, src=src)
    return tensor


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _balanced_cuts(costs: Sequence[int], n_stages: int) -> list[int]:
    # Linear partition by dynamic programming: best[k][i] = the smallest possible largest stage
    # when the first i layers form k stages; ">=" prefers the later cut on ties.
    n = len(costs)
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(n_stages + 1)]
    cut = [[0] * (n + 1) for _ in range(n_stages + 1)]
    best[0][0] = 0
    for k in range(1, n_stages + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                worst = max(best[k - 1][j], prefix[i] - prefix[j])
                if worst <= best[k][i]:
                    best[k][i], cut[k][i] = worst, j
    cuts, i = [], n
    for k in range(n_stages, 1, -1):
        i = cut[k][i]
        cuts.append(i)
    return cuts[::-1]


def _check_boundaries(boundaries: object, n_stages: int, n_layers: int) -> list[int]:
    if isinstance(boundaries, str | bytes) or not isinstance(boundaries, Sequence):
        raise TypeError(f"boundaries must be a sequence of layer indices, got {boundaries!r}")
    cuts = list(boundaries)
    ok = (
        len(cuts) == n_stages - 1
        and all(isinstance(c, int) and not isinstance(c, bool) for c in cuts)
        and all(a < b for a, b in zip([0, *cuts], [*cuts, n_layers], strict=True))
    )
    if not ok:
        raise ValueError(
            f"boundaries must be {n_stages - 1} increasing layer indices in 1..{n_layers - 1} "
            f"(where stages 1..{n_stages - 1} start), got {boundaries!r}"
        )
    return cuts


def _check_batch(batch: int, labels: int, micro_batches: object) -> None:
    if batch != labels:
        raise ValueError(f"x and y must hold the same number of samples, got {batch} and {labels}")
    check_positive_int("micro_batches", micro_batches)
    if batch % micro_batches:
        raise ValueError(
            f"micro_batches must divide the batch size: got micro_batches={micro_batches} for "
            f"a batch of {batch} samples"
        )


def _check_pipeline_args(model, x, y, stages, micro_batches, boundaries, device) -> list[int]:
    # Everything that can be checked before a process starts; returns the stage boundaries.
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    check_tensor("x", x)
    check_tensor("y", y)
    stages = check_positive_int("stages", stages)
    if stages > len(model):
        raise ValueError(
            f"stages must be at most the model's {len(model)} layers (each stage needs one), "
            f"got {stages}"
        )
    _check_batch(len(x), len(y), micro_batches)
    check_in("device", device, DEVICES)
    if device == "cuda" and torch.cuda.device_count() < stages:
        raise ValueError(
            f"device 'cuda' puts each of the {stages} stages on its own GPU, but "
            f"{torch.cuda.device_count()} are present"
        )
    stage_list = split_sequential(model, stages, boundaries=boundaries)
    cuts, total = [], 0
    for stage in stage_list[:-1]:
        total += len(stage)
        cuts.append(total)
    return cuts


def _check_micro_batch_counts(counts: object, *, allow_empty: bool = False) -> list[int]:
    if isinstance(counts, int) and not isinstance(counts, bool):
        counts = (counts,)
    if not isinstance(counts, Sequence) or (not counts and not allow_empty):
        raise ValueError(
            f"micro_batches must be a non-empty sequence of positive ints, got {counts!r}"
        )
    return [check_positive_int("micro_batches", m) for m in counts]


def _check_loss_fn(loss_fn: object) -> None:
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
