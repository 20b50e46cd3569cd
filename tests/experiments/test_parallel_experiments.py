"""Lesson 08's experiments: the scaling-rule runs on a short setting, and the summaries against
hand-made rows whose answers are known."""

import math

import pytest
import torch
from torch.nn import functional as F

from effdl.data import load_mnist1d
from effdl.experiments import parallel as X
from effdl.models.baselines import ConvNet1d


def test_scaling_rule_runs_train_k_workers_as_one_batch_of_k_b(monkeypatch):
    monkeypatch.setitem(X.SCALING, "epochs", 1)
    monkeypatch.setitem(X.SCALING, "warmup_epochs", 1)
    rows = X.scaling_rule_runs((1, 2), seeds=(0,), verbose=False)
    assert [(r["workers"], r["rule"]) for r in rows] == [
        (1, "fixed"), (1, "linear"), (1, "linear+warmup"),
        (2, "fixed"), (2, "linear"), (2, "linear+warmup"),
    ]  # fmt: skip
    one = rows[:3]
    assert len({r["accuracy"] for r in one}) == 1  # the rules coincide at one worker
    base = X.SCALING["base_lr"]
    assert [r["lr"] for r in rows[3:]] == [base, 2 * base, 2 * base]
    for r in rows:
        assert r["batch"] == 25 * r["workers"]
        assert r["steps"] == math.ceil(3600 / r["batch"])
        assert len(r["loss_curve"]) == 1 and 0 <= r["accuracy"] <= 100
    # warm-up changes the run, so it is not the plain linear rule
    assert rows[4]["loss_curve"] != rows[5]["loss_curve"]
    again = X.scaling_rule_runs((2,), ("linear",), seeds=(0,), verbose=False)
    assert again[0]["accuracy"] == rows[4]["accuracy"]


def test_one_scaling_run_is_the_plain_sgd_loop(monkeypatch):
    # The fixed rule at one worker is SGD with momentum at base_lr on batches of base_batch:
    # written out here in full, it reaches the same weights and so the same accuracy.
    monkeypatch.setitem(X.SCALING, "epochs", 1)
    row = X.scaling_rule_runs((1,), ("fixed",), seeds=(3,), verbose=False)[0]
    splits = load_mnist1d(seed=0)
    train, _, test = splits.loaders(batch_size=X.SCALING["base_batch"], seed=3)
    torch.manual_seed(3)
    model = ConvNet1d()
    opt = torch.optim.SGD(model.parameters(), lr=X.SCALING["base_lr"], momentum=0.9)
    for x, y in train:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in test)
    assert row["accuracy"] == pytest.approx(100 * correct / 1000)


def _rows(table):
    return [
        {"seed": s, "workers": k, "rule": rule, "accuracy": acc}
        for rule, by_k in table.items()
        for k, accs in by_k.items()
        for s, acc in enumerate(accs)
    ]


def test_scaling_summary_finds_the_first_degraded_count_and_what_holds():
    rows = _rows(
        {
            "fixed": {1: [90, 92], 2: [85, 84], 4: [80, 80], 8: [50, 60]},
            "linear": {1: [90, 92], 2: [91, 91], 4: [88, 86], 8: [70, 70]},
            "linear+warmup": {1: [90, 92], 2: [91, 91], 4: [88, 86], 8: [85, 84]},
        }
    )
    s = X.scaling_summary(rows)
    assert s["base"] == 91 and s["largest"] == 8 and s["seeds"] == 2
    assert s["accuracy"]["fixed"] == {1: 91, 2: 84.5, 4: 80, 8: 55}
    # 90% of 91 is 81.9: the fixed rate first falls below it at 4 workers
    assert s["first_fixed_worse"] == 4
    assert s["holds"] == {"fixed": False, "linear": False, "linear+warmup": True}
    assert X.scaling_summary(rows, worse=0.2)["first_fixed_worse"] == 8
    assert X.scaling_summary(rows, worse=0.5)["first_fixed_worse"] is None


def test_scaling_summary_refuses_rows_without_a_baseline():
    with pytest.raises(ValueError, match="one-worker runs"):
        X.scaling_summary(_rows({"fixed": {2: [80.0]}}))
    with pytest.raises(ValueError, match="scaling_rule_runs rows"):
        X.scaling_summary([{"seed": 0, "workers": 1, "rule": "sqrt", "accuracy": 1.0}])
    with pytest.raises(ValueError, match="worse must lie in"):
        X.scaling_summary(_rows({"fixed": {1: [80.0]}}), worse=1.5)
    with pytest.raises(ValueError, match="rules must be one of"):
        X.scaling_rule_runs((1,), ("sqrt",), verbose=False)


def _throughput(workers, batch, samples_per_s, step_ms=100.0, comm_ms=20.0):
    return {
        "workers": workers, "batch": batch, "samples_per_s": samples_per_s,
        "step_ms": step_ms, "compute_ms": step_ms - comm_ms, "comm_ms": comm_ms,
    }  # fmt: skip


def test_scaling_efficiency_is_speedup_over_workers():
    rows = [
        _throughput(1, 64, 1000.0, comm_ms=0.0),
        _throughput(1, 512, 2000.0, comm_ms=0.0),
        _throughput(2, 64, 800.0, step_ms=80.0, comm_ms=40.0),
        _throughput(2, 512, 3600.0, step_ms=200.0, comm_ms=20.0),
    ]
    big = X.scaling_efficiency(rows)
    assert big == {
        "batch": 512, "workers": 2, "speedup": 1.8, "efficiency": 0.9, "comm_share": 0.1,
    }  # fmt: skip
    small = X.scaling_efficiency(rows, 64)
    assert small["speedup"] == 0.8 and small["efficiency"] == 0.4 and small["comm_share"] == 0.5
    with pytest.raises(ValueError, match=r"batch must be one of .*\[64, 512\], got 128"):
        X.scaling_efficiency(rows, 128)
    with pytest.raises(ValueError, match="one worker and more than one"):
        X.scaling_efficiency(rows[:2])


def test_param_server_summary_pairs_async_with_sync():
    rows = [
        {"seed": 0, "mode": "async", "accuracy": 58.0, "samples_per_s": 30.0,
         "staleness_mean": 0.5, "staleness_max": 2},
        {"seed": 0, "mode": "sync", "accuracy": 60.0, "samples_per_s": 100.0},
        {"seed": 1, "mode": "async", "accuracy": 61.0, "samples_per_s": 50.0,
         "staleness_mean": 0.7, "staleness_max": 3},
        {"seed": 1, "mode": "sync", "accuracy": 60.0, "samples_per_s": 100.0},
        {"seed": 2, "mode": "sync", "accuracy": 10.0, "samples_per_s": 1.0},  # unpaired
    ]  # fmt: skip
    s = X.param_server_summary(rows)
    assert s["async"] == 59.5 and s["sync"] == 60.0 and s["gap"] == -0.5
    assert s["speedup"] == pytest.approx(0.4) and s["seeds"] == 2
    assert s["staleness_mean"] == pytest.approx(0.6) and s["staleness_max"] == 3
    with pytest.raises(ValueError, match="an async and a sync run"):
        X.param_server_summary(rows[-1:])
