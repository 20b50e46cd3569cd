"""Data parallelism: averaged shard gradients equal the full-batch gradient (in one process, under
DistributedDataParallel and under the kit's all-reduce), 2 ranks train exactly like 1 rank at the
same global batch, torchrun runs the same function, and Goyal et al.'s rules have their closed
forms."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from effdl.parallel.data_parallel import (
    DataParallelConfig,
    data_parallel_step,
    ddp_gradients,
    linear_scaled_lr,
    make_mlp,
    measure_throughput,
    run_data_parallel,
    step_timing,
    warmup_lr,
)
from effdl.parallel.launch import launch

pytestmark = pytest.mark.timeout(240)


def _batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 40, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_data_parallel_step_with_uneven_shards_equals_one_full_batch_step():
    x, y = _batch(10)
    model = make_mlp((40, 16, 10), seed=1)
    reference = copy.deepcopy(model)
    loss = data_parallel_step(model, x, y, workers=3, lr=0.1)

    full = F.cross_entropy(reference(x), y)
    full.backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.1 * p.grad
    assert loss == pytest.approx(float(full), rel=1e-6)
    for got, want in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, want)


def test_unweighted_shard_means_would_not_equal_the_full_batch_step():
    # The weighting matters: averaging the three shard means equally (4, 3, 3 samples) is a
    # different step, so the test above can fail.
    x, y = _batch(10)
    model = make_mlp((40, 16, 10), seed=1)
    params = list(model.parameters())
    shards = zip(torch.tensor_split(x, 3), torch.tensor_split(y, 3), strict=True)
    equal = [torch.autograd.grad(F.cross_entropy(model(a), b), params) for a, b in shards]
    unweighted = [sum(g[i] for g in equal) / 3 for i in range(len(params))]
    full = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    assert not torch.allclose(unweighted[0], full[0])


def test_two_ranks_averaged_gradients_equal_the_full_batch_gradient():
    x, y = _batch(64)
    model = make_mlp((40, 32, 32, 10), seed=2)
    reference = copy.deepcopy(model)
    F.cross_entropy(reference(x), y).backward()
    want = {n: p.grad for n, p in reference.named_parameters()}

    results = launch(ddp_gradients, 2, (model, x, y))
    for rank, result in enumerate(results):
        for how in ("ddp", "manual"):
            for name, grad in result[how].items():
                torch.testing.assert_close(grad, want[name], msg=f"rank {rank} {how} {name}")
    # A single rank's own shard gradient is not the full-batch one: averaging did the work.
    local = copy.deepcopy(model)
    F.cross_entropy(local(x[:32]), y[:32]).backward()
    assert not torch.allclose(next(local.parameters()).grad, want["1.weight"])


def test_two_ranks_train_like_one_rank_at_the_same_global_batch():
    config = DataParallelConfig(epochs=1, global_batch=100, lr=0.05, seed=3)
    one = run_data_parallel(config, world_size=1)[0]
    two = run_data_parallel(config, world_size=2)
    manual = run_data_parallel(DataParallelConfig(**{**vars(config), "sync": "manual"}), 2)
    # Each rank read half of every global batch; together they saw what one rank saw.
    assert [r["samples"] for r in two] == [one["samples"] // 2] * 2
    assert two[0]["checksum"] == two[1]["checksum"]
    for result in (two[0], manual[0]):
        assert result["loss_curve"] == pytest.approx(one["loss_curve"], rel=1e-4)
        assert result["checksum"] == pytest.approx(one["checksum"], rel=1e-4)
        assert result["accuracy"] == pytest.approx(one["accuracy"], abs=0.5)


def test_torchrun_runs_the_same_training_function(tmp_path):
    out = tmp_path / "rank0.json"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "effdl.parallel.data_parallel", "--epochs", "1", "--seed", "3", "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["world_size"] == 2
    launched = run_data_parallel(DataParallelConfig(epochs=1, seed=3), world_size=2)[0]
    assert result["loss_curve"] == pytest.approx(launched["loss_curve"], rel=1e-5)


def test_step_timing_gives_the_explorers_row():
    row = launch(step_timing, 2, (64, (40, 64, 10), 2))[0]
    assert set(row) == {"workers", "batch", "samples_per_s", "step_ms", "compute_ms", "comm_ms"}
    assert (row["workers"], row["batch"]) == (2, 64)
    assert row["samples_per_s"] == pytest.approx(1000 * 64 / row["step_ms"])
    assert row["comm_ms"] > 0 and row["compute_ms"] > 0


def test_measure_throughput_sweeps_every_batch_in_one_launch_per_worker_count():
    rows = measure_throughput((1, 2), (32, 64), (40, 64, 10), steps=1)
    assert [(r["workers"], r["batch"]) for r in rows] == [(1, 32), (1, 64), (2, 32), (2, 64)]
    assert [r["comm_ms"] == 0 for r in rows] == [True, True, False, False]


def test_linear_scaling_and_gradual_warmup_have_goyals_closed_forms():
    assert linear_scaled_lr(0.1, 256, 8192) == pytest.approx(3.2)  # Goyal: 0.1 x k, k = 32
    ramp = [warmup_lr(s, target_lr=0.8, warmup_steps=4, start_lr=0.1) for s in range(6)]
    assert ramp == pytest.approx([0.1, 0.275, 0.45, 0.625, 0.8, 0.8])
    assert warmup_lr(0, target_lr=0.8, warmup_steps=0, start_lr=0.1) == 0.8


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: run_data_parallel(DataParallelConfig(), world_size=0), "world_size"),
        (lambda: run_data_parallel(DataParallelConfig(global_batch=101), 2), "global_batch"),
        (lambda: DataParallelConfig(sync="async"), "sync"),
        (lambda: DataParallelConfig(lr=0), "lr"),
        (lambda: DataParallelConfig(momentum=1.0), "momentum"),
        (lambda: data_parallel_step(make_mlp((40, 10)), *_batch(2), workers=3, lr=0.1), "workers"),
        (lambda: linear_scaled_lr(0.1, 0, 64), "base_batch"),
        (lambda: warmup_lr(-1, target_lr=0.1, warmup_steps=2, start_lr=0.1), "step"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
