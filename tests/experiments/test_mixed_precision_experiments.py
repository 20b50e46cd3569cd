"""Lesson 06's experiments on small settings: rows, summaries and sweeps against direct
computations."""

import math

import pytest
import torch

from effdl.experiments import mixed_precision as E
from effdl.learn.mixed_precision import underflow_fraction


def test_precision_runs_pair_the_modes_of_each_seed():
    rows = E.precision_runs((0,), epochs=1, verbose=False)
    assert [(r["mode"], r["seed"]) for r in rows] == [(m, 0) for m in E.MODES]
    by_mode = {r["mode"]: r for r in rows}
    # autocast computes the reference recipe for Conv1d and Linear: the same run, bit for bit
    assert by_mode["autocast-bf16"]["accuracy"] == by_mode["reference-bf16"]["accuracy"]
    for r in rows:
        assert 0 <= r["accuracy"] <= 100 and len(r["val_curve"]) == 1 and r["skipped"] == 0
    again = E.precision_runs((0,), ("fp32",), epochs=1, verbose=False)
    assert again[0]["accuracy"] == by_mode["fp32"]["accuracy"]


def test_precision_summary_means_and_gaps():
    rows = [
        {"mode": "fp32", "seed": 0, "accuracy": 80.0, "seconds": 1.0, "skipped": 0},
        {"mode": "fp32", "seed": 1, "accuracy": 84.0, "seconds": 3.0, "skipped": 0},
        {"mode": "autocast-bf16", "seed": 0, "accuracy": 81.0, "seconds": 1.0, "skipped": 0},
        {"mode": "autocast-bf16", "seed": 1, "accuracy": 82.0, "seconds": 1.0, "skipped": 2},
    ]
    s = E.precision_summary(rows)
    assert s["fp32"]["accuracy"] == 82.0 and s["fp32"]["seconds"] == 2.0
    assert s["fp32"]["accuracy_std"] == pytest.approx(math.sqrt(8))
    assert s["gap"] == {"autocast-bf16": -0.5} and s["autocast-bf16"]["skipped"] == 1
    with pytest.raises(ValueError, match="rows"):
        E.precision_summary([])


def test_scale_sweep_matches_underflow_fraction_and_flags_overflow():
    grads = torch.tensor([1e-9, 1e-7, 1e-5, 1e-2, 0.0])
    rows = E.scale_sweep(grads, range(0, 30, 3))
    for r in rows:
        assert r["fp16_underflow"] == pytest.approx(
            100 * underflow_fraction(grads, torch.float16, scale=2.0 ** r["exponent"])
        )
        assert r["overflow"] == (1e-2 * 2.0 ** r["exponent"] > 65504)
    assert rows[0]["fp16_underflow"] == 25.0  # 1e-9 of the four non-zero values
    assert rows[0]["bf16_underflow"] == 0.0
    # 1e-9 * 2^k survives fp16 once it passes half the smallest subnormal, 2^-25 (k >= 5):
    # of the exponents tried, 3 is too small and 6 the first that works
    assert E.smallest_safe_exponent(rows) == 6
    assert E.smallest_safe_exponent(rows, percent=0.0) is None


def test_recorded_gradients_shrink_as_training_goes_on():
    early = E.record_gradients(0)
    late = E.record_gradients(E.RECORD_EPOCHS)
    assert early.shape == late.shape and early.dtype == torch.float32
    # a trained model's gradients are smaller: many more of them fall below fp16's range
    assert underflow_fraction(late, torch.float16) > 10 * underflow_fraction(early, torch.float16)
    values, counts = E.exponent_histogram(late)
    assert counts.sum() == int((late != 0).sum())
    assert values.max() <= math.floor(math.log2(float(late.abs().max())))


def test_sum_demo_closed_forms():
    sums = E.sum_demo(4096, 0.25)
    assert sums == {
        "exact": 1024.0,
        "fp32": 1024.0,
        "fp16": 512.0,
        "bf16": 64.0,
        "fp16, fp32 accumulator": 1024.0,
    }


def test_memory_rows_count_bytes_by_precision():
    rows = E.memory_rows(batch=20)
    cnn = [r for r in rows if r["model"] == "mnist1d CNN"]
    full, half = cnn
    assert half["weights"] * 2 == full["weights"] and half["master"] == full["weights"]
    assert half["activations"] < full["activations"] and full["ratio"] == 1.0
    assert half["ratio"] == pytest.approx(half["total"] / full["total"])


def test_step_speed_reports_every_timing():
    speed = E.step_speed(threads=1, repeats=1)
    for key in ("fp32_ms", "autocast-bf16_ms", "reference-bf16_ms", "matmul_fp16_ms"):
        assert speed[key] > 0
    assert speed["autocast_speedup"] == speed["fp32_ms"] / speed["autocast-bf16_ms"]


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: E.precision_runs((), epochs=1), "seeds"),
        (lambda: E.precision_runs((0,), ("fp8",), epochs=1), "modes"),
        (lambda: E.precision_runs((0,), epochs=0), "epochs"),
        (lambda: E.record_gradients(-1), "epochs"),
        (lambda: E.memory_rows(0), "batch"),
        (lambda: E.step_speed(threads=0), "threads"),
    ],
)
def test_bad_settings_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_cpu_16bit_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse2 avx512f avx512_bf16 amx_bf16 f16c\n")
    assert E.cpu_16bit_flags(str(info)) == ("amx_bf16", "avx512_bf16")
    assert E.cpu_16bit_flags(str(tmp_path / "missing")) == ()
