"""Pipeline model parallelism (effdl.parallel.model_parallel): the GPipe schedule on paper against
its bubble formula, and real gloo ranks passing activations and gradients whose loss, outputs,
gradients and trained weights equal the single-process model's."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from effdl.data import load_mnist1d
from effdl.models.baselines import make_baseline
from effdl.parallel.model_parallel import (
    bubble_fraction,
    idle_fraction,
    make_pipeline_mlp,
    measure_bubble,
    measured_bubble,
    model_parallel_step,
    pipeline_schedule,
    pipeline_step,
    sequential_baseline,
    split_sequential,
    train_model_parallel,
)

pytestmark = pytest.mark.timeout(180)


SHAPES = [(1, 1), (1, 5), (2, 1), (2, 4), (3, 2), (3, 8), (4, 4), (4, 16), (6, 3)]


def _batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 40, generator=g), torch.randint(0, 10, (n,), generator=g)


# --- the schedule on paper ---------------------------------------------------------------------


@pytest.mark.parametrize(("stages", "micro_batches"), SHAPES)
def test_simulated_schedule_idles_exactly_the_formula(stages, micro_batches):
    schedule = pipeline_schedule(stages, micro_batches)
    assert len(schedule) == 2 * (micro_batches + stages - 1)
    assert all(len(row) == stages for row in schedule)
    idle = sum(cell is None for row in schedule for cell in row)
    assert idle / (len(schedule) * stages) == pytest.approx(bubble_fraction(stages, micro_batches))
    assert idle_fraction(schedule) == pytest.approx(bubble_fraction(stages, micro_batches))
    when = {
        (cell[0], s, cell[1]): t
        for t, row in enumerate(schedule)
        for s, cell in enumerate(row)
        if cell is not None
    }
    # Every stage runs every forward and every backward once, after what it depends on.
    assert len(when) == 2 * stages * micro_batches
    for s in range(stages):
        for m in range(micro_batches):
            if s > 0:
                assert when[("F", s, m)] > when[("F", s - 1, m)]
            if s < stages - 1:
                assert when[("B", s, m)] > when[("B", s + 1, m)]
            assert when[("B", s, m)] > when[("F", s, micro_batches - 1)]
    # Read as unit-time intervals, the schedule's measured bubble is the formula too.
    intervals = [
        [(c[0], c[1], t, t + 1) for t, row in enumerate(schedule) if (c := row[s]) is not None]
        for s in range(stages)
    ]
    assert measured_bubble(intervals) == pytest.approx(bubble_fraction(stages, micro_batches))


def test_bubble_fraction_values():
    assert bubble_fraction(1, 8) == 0.0
    assert bubble_fraction(2, 1) == 0.5
    assert bubble_fraction(4, 12) == pytest.approx(3 / 15)
    # GPipe: negligible (here under 20%) once M >= 4K.
    assert all(bubble_fraction(k, 4 * k) < 0.2 for k in range(1, 9))


# --- cutting the model -----------------------------------------------------------------------


def test_split_sequential_balances_parameters_and_keeps_names():
    model = make_pipeline_mlp(width=32, depth=4)  # Flatten, 4 x (Linear, ReLU), Linear
    for n in (1, 2, 3, len(model)):
        stages = split_sequential(model, n)
        assert len(stages) == n and all(len(s) >= 1 for s in stages)
        assert [m for s in stages for m in s] == list(model)
        names = [name for s in stages for name, _ in s.named_parameters()]
        assert names == [name for name, _ in model.named_parameters()]
    # Parameters 1312, 1056, 1056, 1056, 330: two stages of 2368 and 2442; the tie between
    # cutting before the ReLU (layer 4) or after it goes to the later cut.
    assert [len(s) for s in split_sequential(model, 2)] == [5, 5]
    assert [len(s) for s in split_sequential(model, 3, boundaries=(1, 8))] == [1, 7, 2]
    x, _ = _batch(4)
    out = x
    for stage in split_sequential(model, 3):
        out = stage(out)
    torch.testing.assert_close(out, model(x))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_sequential_baseline_is_the_baseline(name):
    x, _ = _batch(8)
    torch.testing.assert_close(sequential_baseline(name, seed=3)(x), make_baseline(name, seed=3)(x))


# --- bad input ---------------------------------------------------------------------------------


def test_bad_inputs_are_refused_before_any_process_starts():
    model = make_pipeline_mlp(width=8, depth=1)  # 4 layers
    x, y = _batch(10)
    with pytest.raises(ValueError, match=r"micro_batches.*micro_batches=3.*10 samples"):
        model_parallel_step(model, x, y, micro_batches=3)
    with pytest.raises(ValueError, match="micro_batches must be a positive int, got 0"):
        model_parallel_step(model, x, y, micro_batches=0)
    with pytest.raises(ValueError, match="stages must be a positive int, got 0"):
        model_parallel_step(model, x, y, stages=0)
    with pytest.raises(ValueError, match=r"stages must be at most the model's 4 layers.*got 5"):
        model_parallel_step(model, x, y, stages=5)
    with pytest.raises(ValueError, match=r"n_stages must be at most the model's 4 layers.*got 9"):
        split_sequential(model, 9)
    with pytest.raises(ValueError, match="n_stages must be a positive int, got -1"):
        split_sequential(model, -1)
    with pytest.raises(ValueError, match=r"boundaries must be 1 increasing.*got \(4,\)"):
        split_sequential(model, 2, boundaries=(4,))
    with pytest.raises(ValueError, match=r"boundaries must be 2 increasing.*got \(2, 2\)"):
        split_sequential(model, 3, boundaries=(2, 2))
    with pytest.raises(TypeError, match="model must be an nn.Sequential, got MLP"):
        model_parallel_step(make_baseline("mlp"), x, y)
    with pytest.raises(ValueError, match="x and y must hold the same number of samples"):
        model_parallel_step(model, x, y[:5])
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'cuda'\)"):
        model_parallel_step(model, x, y, device="tpu")
    with pytest.raises(ValueError, match=r"micro_batches.*micro_batches=4.*10 samples"):
        measure_bubble(model, x, y, micro_batches=(1, 2, 4))
    with pytest.raises(ValueError, match="stages must be a positive int, got 0"):
        pipeline_schedule(0, 4)
    with pytest.raises(ValueError, match="micro_batches must be a positive int, got 0"):
        bubble_fraction(2, 0)
    with pytest.raises(ValueError, match="model must be one of"):
        train_model_parallel("gru")
    with pytest.raises(ValueError, match=r"micro_batches.*micro_batches=7.*100 samples"):
        train_model_parallel("mlp", micro_batches=7)
    with pytest.raises(RuntimeError, match="inside a process group"):
        pipeline_step(model, x, y)


# --- real ranks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_name", "stages", "micro_batches", "boundaries"),
    [("pipeline-mlp", 2, 1, None), ("cnn", 2, 4, None), ("mlp", 3, 4, (1, 4))],
)
def test_pipelined_step_equals_single_process(model_name, stages, micro_batches, boundaries):
    # mlp with boundaries (1, 4): stage 0 is the Flatten alone, with no parameter; stage 1 holds
    # the residual block, whose skip connection must stay inside one stage.
    if model_name == "pipeline-mlp":
        model = make_pipeline_mlp(width=64, depth=3, seed=1)
    else:
        model = sequential_baseline(model_name, seed=1)
    x, y = _batch(16)
    out = model(x)
    loss = F.cross_entropy(out, y)
    loss.backward()

    got = model_parallel_step(
        model, x, y, stages=stages, micro_batches=micro_batches, boundaries=boundaries
    )

    torch.testing.assert_close(got["output"], out.detach())
    assert got["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert list(got["grads"]) == [name for name, _ in model.named_parameters()]
    for name, p in model.named_parameters():
        torch.testing.assert_close(got["grads"][name], p.grad, msg=name)
    # The ranks had copies: the caller's model took no step.
    assert torch.equal(model(x), out)
    assert len(got["intervals"]) == stages
    for stage in got["intervals"]:
        kinds = [(kind, m) for kind, m, _, _ in stage]
        assert kinds == [("F", m) for m in range(micro_batches)] + [
            ("B", m) for m in reversed(range(micro_batches))
        ]
        assert all(0.0 <= start <= end for _, _, start, end in stage)
    assert got["formula"] == bubble_fraction(stages, micro_batches)
    if micro_batches == 1:
        # One micro-batch cannot overlap: every stage waits for the others' whole work.
        assert got["bubble"] >= (stages - 1) / stages - 1e-6


def test_measured_bubble_falls_as_micro_batches_grow():
    # Wide layers, so that a micro-batch's compute outweighs a send/recv; the counts take turns
    # in one launch and the best repeat of each is compared, so load elsewhere hits both alike.
    model = make_pipeline_mlp(width=512, depth=8)
    x, y = _batch(2048)
    rows = measure_bubble(model, x, y, micro_batches=(1, 4), repeats=3, warmup=1)
    one, four = rows
    assert (one["micro_batches"], four["micro_batches"]) == (1, 4)
    assert (one["formula"], four["formula"]) == (0.5, 0.2)
    # With M=1 the stages take turns, so at least half of the stage-time is idle by construction.
    assert one["measured_best"] >= 0.5 - 1e-6
    assert one["measured"] >= one["measured_best"]
    assert four["measured_best"] < one["measured_best"]
    for row in rows:
        assert len(row["stage_idle"]) == len(row["stage_busy_seconds"]) == 2
        assert row["step_seconds"] > 0


def test_training_pipeline_equals_single_process_training():
    result = train_model_parallel(
        "mlp", epochs=1, micro_batches=4, bubble_micro_batches=(1, 2), bubble_batch_size=200
    )
    # The same SGD steps in one process, over the batches the docstring promises.
    model = sequential_baseline("mlp", seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = load_mnist1d(seed=0).train
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    losses = []
    for i in range(len(x) // 100):
        idx = order[i * 100 : (i + 1) * 100]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    torch.testing.assert_close(result["state_dict"], model.state_dict(), atol=1e-5, rtol=1e-4)
    assert result["loss_curve"] == pytest.approx(losses, rel=1e-4, abs=1e-5)
    assert result["boundaries"] == [3]
    assert len(result["test_accuracy"]) == len(result["epoch_loss"]) == 1
    assert 10.0 < result["test_accuracy"][0] <= 100.0
    assert [len(b) for b in result["stage_busy_seconds"]] == [1, 1]
    assert [row["micro_batches"] for row in result["bubble"]] == [1, 2]
