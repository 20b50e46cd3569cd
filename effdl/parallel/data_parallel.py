"""Synchronous data parallelism: every worker holds the whole model, takes its own shard of each
batch, and the workers average their gradients before each identical optimizer step, so k
workers at batch b train exactly like one worker at batch k*b. Start with `data_parallel_step`
(the idea in one process: shards, gradients averaged by shard size), then `average_gradients`
(the same across processes with one all-reduce per tensor, which DistributedDataParallel does in
buckets while the backward pass runs) and `train_data_parallel`, the one training function that
runs under `torchrun --nproc-per-node 2 -m effdl.parallel.data_parallel` from a shell and under
`run_data_parallel` (which calls `effdl.parallel.launch.launch`) from a notebook. Larger batches
need a larger learning rate: `linear_scaled_lr` and `warmup_lr` are Goyal et al. 2017's rule.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from effdl._checks import (
    check_in,
    check_module,
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
)
from effdl.data import load_mnist1d
from effdl.models.baselines import ConvNet1d
from effdl.parallel.launch import launch, process_group
from effdl.train import evaluate

#: The Linear-heavy MLP whose step is long enough to amortise gloo's all-reduce (4.3M weights).
THROUGHPUT_SIZES = (40, 2048, 2048, 10)
#: How DDP-style training averages gradients: torch's DistributedDataParallel, or the kit's
#: `average_gradients` after the backward pass.
SYNC_MODES = ("ddp", "manual")


def data_parallel_step(model: nn.Module, x: Tensor, y: Tensor, workers: int, lr: float) -> float:
    """Take one SGD step of `model` as `workers` data-parallel workers would, in one process:
    split the batch into `workers` shards (the first ones one sample larger when it does not
    divide), compute each shard's mean-loss gradient, average them weighted by shard size, and
    step. Return the full batch's mean loss before the step. The result equals one full-batch
    step: the weighted average of shard means is the mean over the batch.

    Source: Goyal et al. 2017, "Accurate, Large Minibatch SGD", section 2 (k workers at batch n
    equal one worker at batch kn).
    """
    check_module("model", model)
    workers = check_positive_int("workers", workers)
    lr = check_positive_number("lr", lr)
    if len(x) < workers:
        raise ValueError(f"workers must be at most the batch size {len(x)}, got {workers}")
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    loss_sum = 0.0
    for xs, ys in zip(torch.tensor_split(x, workers), torch.tensor_split(y, workers), strict=True):
        loss = F.cross_entropy(model(xs), ys)
        grads = torch.autograd.grad(loss, params)
        weight = len(ys) / len(y)
        for acc, g in zip(total, grads, strict=True):
            acc.add_(g, alpha=weight)
        loss_sum += float(loss.detach()) * weight
    with torch.no_grad():
        for p, g in zip(params, total, strict=True):
            p.sub_(g, alpha=lr)
    return loss_sum


def average_gradients(model: nn.Module) -> None:
    """Replace every parameter's gradient by its mean over the ranks of the default process
    group: one all-reduce (sum) per gradient, divided by the world size. Call it after
    `backward()` and before `optimizer.step()`; every rank then takes the same step.

    Source: PyTorch documentation, "Writing Distributed Applications with PyTorch"
    (distributed synchronous SGD); Goyal et al. 2017, section 4 (gradient aggregation).
    """
    check_module("model", model)
    world = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def linear_scaled_lr(base_lr: float, base_batch: int, batch: int) -> float:
    """Return the learning rate for `batch` by the linear scaling rule: when the minibatch is
    multiplied by k, multiply the learning rate by k.

    Source: Goyal et al. 2017, section 2.1 ("Linear Scaling Rule").
    """
    base_lr = check_positive_number("base_lr", base_lr)
    base_batch = check_positive_int("base_batch", base_batch)
    batch = check_positive_int("batch", batch)
    return base_lr * batch / base_batch


def warmup_lr(step: int, *, target_lr: float, warmup_steps: int, start_lr: float) -> float:
    """Return the learning rate at `step` (counted from 0) under gradual warm-up: from
    `start_lr` rising linearly to `target_lr` over `warmup_steps` steps, then `target_lr`.

    Source: Goyal et al. 2017, section 2.2 ("gradual warmup": from eta to k*eta over 5 epochs).
    """
    step = check_non_negative_int("step", step)
    target_lr = check_positive_number("target_lr", target_lr)
    warmup_steps = check_non_negative_int("warmup_steps", warmup_steps)
    start_lr = check_positive_number("start_lr", start_lr)
    if step >= warmup_steps:
        return target_lr
    return start_lr + (target_lr - start_lr) * step / warmup_steps


def make_mlp(sizes: Sequence[int] = THROUGHPUT_SIZES, seed: int = 0) -> nn.Sequential:
    """Return an MLP with ReLU between the Linear layers `sizes[0] -> ... -> sizes[-1]`,
    initialised from `seed` without touching the global generator.

    Source: the kit's own helper.
    """
    sizes = [check_positive_int("sizes", s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least an input and an output size, got {sizes}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(*layers)


@dataclass(frozen=True)
class DataParallelConfig:
    """What `train_data_parallel` trains: the mnist1d CNN, `epochs` epochs of SGD with momentum
    at global batch `global_batch` (each of the world's ranks takes global_batch / world), at
    `lr` after `warmup_epochs` of Goyal's gradual warm-up from `lr / world`. `sync` picks
    DistributedDataParallel ("ddp") or the kit's `average_gradients` ("manual")."""

    epochs: int = 3
    global_batch: int = 100
    lr: float = 0.05
    momentum: float = 0.9
    warmup_epochs: int = 0
    seed: int = 0
    sync: str = "ddp"
    backend: str = "gloo"

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("global_batch", self.global_batch)
        check_positive_number("lr", self.lr)
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        check_non_negative_int("warmup_epochs", self.warmup_epochs)
        check_in("sync", self.sync, SYNC_MODES)
        check_in("backend", self.backend, ("gloo", "nccl"))


def train_data_parallel(config: DataParallelConfig = DataParallelConfig()) -> dict:
    """Train the mnist1d CNN data-parallel on this rank and return its figures: "rank",
    "world_size", "samples" (training samples this rank saw), "loss_curve" (mean training loss
    per epoch over all ranks), "accuracy" (test %, the same on every rank), "seconds",
    "samples_per_s" (all ranks together) and a checksum of the final weights.

    Runs inside a process started by torchrun or `launch`: it reads RANK and WORLD_SIZE from the
    environment. Each rank reads its own part of every epoch through `DistributedSampler`; the
    model starts from the same seed everywhere (DDP also broadcasts rank 0's weights). With
    backend "nccl" each rank trains on CUDA device LOCAL_RANK.

    Source: PyTorch documentation, DistributedDataParallel and DistributedSampler; Goyal et al.
    2017, section 2 (linear scaling and warm-up).
    """
    with process_group(config.backend) as (rank, world):
        if config.global_batch % world:
            raise ValueError(
                f"global_batch must be divisible by the world size {world}, "
                f"got {config.global_batch}"
            )
        device = _device(config.backend)
        splits = load_mnist1d(seed=config.seed)
        train_set = TensorDataset(*splits.train)
        sampler = DistributedSampler(
            train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed, drop_last=True
        )
        loader = DataLoader(train_set, batch_size=config.global_batch // world, sampler=sampler)
        torch.manual_seed(config.seed)
        model = ConvNet1d().to(device)
        net = DistributedDataParallel(model) if config.sync == "ddp" else model
        optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
        warmup_steps = config.warmup_epochs * len(loader)
        losses, samples, step = [], 0, 0
        start = time.perf_counter()
        for epoch in range(config.epochs):
            sampler.set_epoch(epoch)
            total = torch.zeros(2, device=device)
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                lr = warmup_lr(
                    step, target_lr=config.lr, warmup_steps=warmup_steps, start_lr=config.lr / world
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad()
                loss = F.cross_entropy(net(x), y)
                loss.backward()
                if config.sync == "manual":
                    average_gradients(model)
                optimizer.step()
                total[0] += loss.detach() * len(y)
                total[1] += len(y)
                samples += len(y)
                step += 1
            dist.all_reduce(total)
            losses.append(float(total[0] / total[1]))
        seconds = time.perf_counter() - start
        seen = torch.tensor(float(samples), device=device)
        dist.all_reduce(seen)
        model.cpu()
        _, _, test = splits.loaders(batch_size=500)
        return {
            "rank": rank,
            "world_size": world,
            "samples": samples,
            "loss_curve": losses,
            "accuracy": 100 * evaluate(model, test)["accuracy"],
            "seconds": seconds,
            "samples_per_s": float(seen) / seconds,
            "checksum": float(sum(p.detach().double().sum() for p in model.parameters())),
        }


def run_data_parallel(
    config: DataParallelConfig = DataParallelConfig(),
    world_size: int = 2,
    *,
    timeout: float = 300.0,
) -> list[dict]:
    """Return `train_data_parallel(config)`'s figures of every rank, run on `world_size` local
    processes started as torchrun starts them (one torch thread each).

    Source: the kit's `launch`; PyTorch documentation, torchrun.
    """
    world_size = check_positive_int("world_size", world_size)
    if config.global_batch % world_size:
        raise ValueError(
            f"config.global_batch must be divisible by world_size {world_size}, "
            f"got {config.global_batch}"
        )
    return launch(train_data_parallel, world_size, (config,), timeout=timeout)


def ddp_gradients(model: nn.Module, x: Tensor, y: Tensor) -> dict:
    """On this rank, take this rank's contiguous shard of (x, y), run one forward and backward
    pass through DistributedDataParallel and, on a copy, through the kit's `average_gradients`;
    return {"ddp": {name: gradient}, "manual": {name: gradient}}. With equal shards both equal
    the single-process gradient of the mean loss over the whole batch. Call it inside
    `launch` (see tests/parallel/test_data_parallel.py).

    Source: PyTorch documentation, DistributedDataParallel (gradients are averaged across ranks).
    """
    with process_group("gloo") as (rank, world):
        xs, ys = torch.tensor_split(x, world)[rank], torch.tensor_split(y, world)[rank]
        manual = copy.deepcopy(model)
        ddp = DistributedDataParallel(model)
        F.cross_entropy(ddp(xs), ys).backward()
        F.cross_entropy(manual(xs), ys).backward()
        average_gradients(manual)
        return {
            "ddp": {n: p.grad.clone() for n, p in model.named_parameters()},
            "manual": {n: p.grad.clone() for n, p in manual.named_parameters()},
        }


def step_timing(
    global_batch: int, sizes: Sequence[int] = THROUGHPUT_SIZES, steps: int = 5, seed: int = 0
) -> dict:
    """On this rank, time training steps of the MLP `sizes` at `global_batch` split over the
    world, and return the row the throughput explorer draws: "workers", "batch",
    "samples_per_s", "step_ms" (a DDP step, median), "compute_ms" (forward and backward
    without synchronising, median) and "comm_ms" (one all-reduce of every gradient, median; 0
    for one worker). Call it inside `launch`; the inputs are random (speed does not depend on
    the data).

    Source: PyTorch documentation, DistributedDataParallel (`no_sync` skips the all-reduce).
    """
    return step_timings((global_batch,), sizes, steps, seed)[0]


def step_timings(
    batches: Sequence[int], sizes: Sequence[int] = THROUGHPUT_SIZES, steps: int = 5, seed: int = 0
) -> list[dict]:
    """On this rank, return one `step_timing` row per global batch in `batches`, all timed in
    one process group (so a sweep pays for starting the processes once).

    Source: PyTorch documentation, DistributedDataParallel.
    """
    batches = [check_positive_int("batches", b) for b in batches]
    with process_group("gloo") as (rank, world):
        for batch in batches:
            if batch % world:
                raise ValueError(
                    f"global_batch must be divisible by the world size {world}, got {batch}"
                )
        return [_time_steps(batch, sizes, steps, seed, rank, world) for batch in batches]


def _time_steps(
    global_batch: int, sizes: Sequence[int], steps: int, seed: int, rank: int, world: int
) -> dict:
    generator = torch.Generator().manual_seed(seed + rank)
    x = torch.randn(global_batch // world, sizes[0], generator=generator)
    y = torch.randint(0, sizes[-1], (global_batch // world,), generator=generator)
    model = make_mlp(sizes, seed)
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-3)

    def train_step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        optimizer.step()

    def compute() -> None:
        with ddp.no_sync():
            optimizer.zero_grad()
            F.cross_entropy(ddp(x), y).backward()

    def communicate() -> None:
        for p in model.parameters():
            dist.all_reduce(p.grad)

    step_ms = _median_ms(train_step, steps)
    compute_ms = _median_ms(compute, steps)
    comm_ms = _median_ms(communicate, steps) if world > 1 else 0.0
    return {
        "workers": world,
        "batch": global_batch,
        "samples_per_s": 1000 * global_batch / step_ms,
        "step_ms": step_ms,
        "compute_ms": compute_ms,
        "comm_ms": comm_ms,
    }


def measure_throughput(
    workers: Sequence[int] = (1, 2),
    batches: Sequence[int] = (32, 128, 512),
    sizes: Sequence[int] = THROUGHPUT_SIZES,
    *,
    steps: int = 5,
    timeout: float = 300.0,
) -> list[dict]:
    """Return one `step_timing` row (rank 0's) per (workers, global batch), measured on
    `workers` fresh local processes with one torch thread each (one launch per worker count).

    Source: Goyal et al. 2017, section 5.5 (scaling efficiency: throughput against workers).
    """
    rows = []
    for k in workers:
        k = check_positive_int("workers", k)
        rows += launch(step_timings, k, (tuple(batches), tuple(sizes), steps), timeout=timeout)[0]
    return rows


def _median_ms(fn, steps: int) -> float:
    fn()  # warm-up: allocations and, for DDP, bucket building
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return sorted(times)[len(times) // 2]


def _device(backend: str) -> torch.device:
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def main(argv: Sequence[str] | None = None) -> None:
    """Train from the command line; meant for torchrun:
    `torchrun --standalone --nproc-per-node 2 -m effdl.parallel.data_parallel --epochs 3`.
    Rank 0 prints its figures as JSON (and writes them to --json when given).

    Source: PyTorch documentation, torchrun.
    """
    parser = argparse.ArgumentParser(prog="python -m effdl.parallel.data_parallel")
    for field in dataclasses.fields(DataParallelConfig):
        parser.add_argument(
            "--" + field.name.replace("_", "-"), type=type(field.default), default=field.default
        )
    parser.add_argument("--json", default=None, help="file for rank 0's figures")
    args = vars(parser.parse_args(argv))
    out = args.pop("json")
    torch.set_num_threads(1)
    result = train_data_parallel(DataParallelConfig(**args))
    if result["rank"] == 0:
        text = json.dumps(result)
        print(text)
        if out:
            with open(out, "w") as f:
                f.write(text)


if __name__ == "__main__":
    main()
