"""The training claims (mixed-precision, half-memory, dsd, data-parallel, param-server):
published figures, rules and notes, with the experiments replaced by fixed figures so the tests
run in milliseconds (the experiments are tested in tests/experiments); half-memory also runs
for real (2 s)."""

import pytest

from effdl.claims import REGISTRY
from effdl.claims import training as training_claims
from effdl.claims.runner import run_claim, select


def test_claims_carry_the_papers_figures():
    select()
    mixed, memory = REGISTRY["mixed-precision"], REGISTRY["half-memory"]
    assert mixed.published == {"accuracy_gap": 0.12}
    assert "75.92%" in mixed.statement and "76.04%" in mixed.statement
    assert "Table 1" in mixed.source and mixed.source.startswith("Micikevicius")
    assert memory.published == {"memory_ratio": 0.5}
    assert "nearly halves" in memory.statement


def test_rules_judge_the_gap_and_the_ratio():
    mixed, memory = REGISTRY["mixed-precision"], REGISTRY["half-memory"]
    assert mixed.verdict(mixed.published, {"accuracy_gap": -0.3}).verdict == "reproduced"
    assert mixed.verdict(mixed.published, {"accuracy_gap": -0.7}).verdict == "close"
    assert mixed.verdict(mixed.published, {"accuracy_gap": -2.0}).verdict == "differs"
    assert memory.verdict(memory.published, {"memory_ratio": 0.55}).verdict == "reproduced"
    assert memory.verdict(memory.published, {"memory_ratio": 0.7}).verdict == "close"
    assert memory.verdict(memory.published, {"memory_ratio": 0.96}).verdict == "differs"


def _runs(**_):
    return [
        {"mode": m, "seed": s, "accuracy": a, "seconds": 1.0, "skipped": 0}
        for m, accs in (
            ("fp32", (82.0, 84.0)),
            ("autocast-bf16", (82.5, 83.0)),
            ("reference-bf16", (82.5, 83.0)),
        )
        for s, a in enumerate(accs)
    ]


def _speed(threads=2):
    return {
        "fp32_ms": 48.0,
        "autocast-bf16_ms": 24.0,
        "reference-bf16_ms": 26.0,
        "autocast_speedup": 2.0,
        "reference_speedup": 48 / 26,
        "matmul_bf16_speedup": 3.9,
        "matmul_fp16_slowdown": 1.0,
        "cpu_capability": "AVX512",
    }


def test_mixed_precision_row_reports_accuracy_and_speed(monkeypatch):
    monkeypatch.setattr(training_claims, "precision_runs", _runs)
    monkeypatch.setattr(training_claims, "step_speed", _speed)
    result = run_claim(REGISTRY["mixed-precision"])
    assert result.measured["accuracy_gap"] == pytest.approx(-0.25)
    assert result.verdict == "reproduced"
    assert "2.00x (the issue's target >= 1.5x: met)" in result.reason
    assert "not judged" in result.reason and "bf16 on a CPU" in result.reason


def test_half_memory_row_measures_a_real_training_step():
    result = run_claim(REGISTRY["half-memory"])
    ratio = result.measured["memory_ratio"]
    assert 0.5 <= ratio < 0.75  # the CNN's activations dominate and halve
    assert result.measured["mlp_memory_ratio"] > 0.8  # the MLP's fp32 masters dominate
    assert result.measured["activations_ratio"] == pytest.approx(0.5, abs=0.05)
    assert "fp32 masters" in result.reason


def test_dsd_claim_carries_the_papers_range_and_judges_the_paired_gain(monkeypatch):
    select()
    entry = REGISTRY["dsd"]
    assert entry.published == {"gain_points": 1.12}
    assert "31.50 to 27.19" in entry.statement and "Tables 2-4" in entry.source
    assert entry.verdict(entry.published, {"gain_points": 1.5}).verdict == "reproduced"
    assert entry.verdict(entry.published, {"gain_points": 0.8}).verdict == "close"
    assert entry.verdict(entry.published, {"gain_points": -0.3}).verdict == "differs"

    def fake_runs(dataset, seeds=(0, 1, 2), **_):
        shift = {"mnist1d": 0.5, "digits": -0.2}[dataset]
        return [
            {
                "dataset": dataset,
                "seed": s,
                "arm": arm,
                "accuracy": 90.0 + s + shift * (arm == "dsd"),
            }
            for s in (0, 1, 2)
            for arm in ("dense", "dsd")
        ]

    monkeypatch.setattr(training_claims, "dsd_vs_dense", fake_runs)
    result = run_claim(entry)
    assert result.measured["gain_points"] == pytest.approx(0.5)
    assert result.measured["gain_points_digits"] == pytest.approx(-0.2)
    assert result.verdict == "differs"  # 0.5 is more than half below 1.12
    assert "VGG-16 +4.31" in result.reason and "same schedule at sparsity 0" in result.reason
    # every seed gains the same here: no spread, so +0.5 is a gain and -0.2 a loss
    assert "+0.50 +- 0.00 points (a gain beyond twice its spread)" in result.reason
    assert "a loss beyond twice its spread" in result.reason


def test_data_parallel_row_is_not_comparable_and_prints_both_batches(monkeypatch):
    select()
    entry = REGISTRY["data-parallel"]
    assert entry.published == {"scaling_efficiency": 0.9}
    assert "8 to 256 GPUs" in entry.statement and entry.source.startswith("Goyal")

    def fake_rows(workers, batches, steps):
        assert tuple(workers) == (1, 2) and tuple(batches) == (512, 2048)
        return [
            {"workers": 1, "batch": 512, "samples_per_s": 5000.0, "step_ms": 102.4,
             "compute_ms": 100.0, "comm_ms": 0.0},
            {"workers": 1, "batch": 2048, "samples_per_s": 5000.0, "step_ms": 409.6,
             "compute_ms": 400.0, "comm_ms": 0.0},
            {"workers": 2, "batch": 512, "samples_per_s": 5500.0, "step_ms": 93.1,
             "compute_ms": 50.0, "comm_ms": 20.0},
            {"workers": 2, "batch": 2048, "samples_per_s": 8500.0, "step_ms": 240.9,
             "compute_ms": 200.0, "comm_ms": 20.0},
        ]  # fmt: skip

    monkeypatch.setattr(training_claims, "throughput_rows", fake_rows)
    result = run_claim(entry)
    assert result.verdict == "not-comparable" and "P100" in result.reason
    assert result.measured["scaling_efficiency"] == pytest.approx(0.85)
    assert result.measured["speedup_small_batch"] == pytest.approx(1.1)
    assert "1.70x, efficiency 85%; the issue's target >= 1.6x: met" in result.reason
    assert "Global batch 512: 1.10x" in result.reason


def test_param_server_row_is_not_comparable_and_reports_the_paired_runs(monkeypatch):
    select()
    entry = REGISTRY["param-server"]
    assert entry.published == {"speedup": 2.2}
    assert "81 machines" in entry.statement and entry.source.startswith("Dean")

    def fake_runs(seeds, verbose=False):
        rows = []
        for s in seeds:
            rows.append(
                {
                    "seed": s,
                    "mode": "async",
                    "accuracy": 57.0 + s,
                    "samples_per_s": 40.0,
                    "staleness_mean": 0.5,
                    "staleness_max": 2,
                }
            )
            rows.append({"seed": s, "mode": "sync", "accuracy": 59.0 + s,
                         "samples_per_s": 100.0})  # fmt: skip
        return rows

    monkeypatch.setattr(training_claims, "param_server_runs", fake_runs)
    result = run_claim(entry)
    assert result.verdict == "not-comparable" and "loopback RPC" in result.reason
    assert result.measured["speedup"] == pytest.approx(0.4)
    assert result.measured["accuracy_gap"] == pytest.approx(-2.0)
    assert "gap -2.0 points" in result.reason and "at most 2" in result.reason
