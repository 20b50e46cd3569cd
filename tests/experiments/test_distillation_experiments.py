"""Lesson 05's experiments on small settings: the structure of their rows, the invariants of
the bias correction and the summaries against direct computations."""

import statistics

import pytest
import torch
from torch import nn

from effdl.experiments import distillation as E


@pytest.fixture(scope="module")
def teacher_and_splits():
    return E.train_teacher(0, epochs=3)


def test_builders_are_seeded_and_leave_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b, c = E.build_student(0), E.build_student(0), E.build_student(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.hidden1.weight, b.hidden1.weight)
    assert not torch.equal(a.hidden1.weight, c.hidden1.weight)
    assert E.build_student(0).hidden1.out_features == E.STUDENT_HIDDEN
    assert E.build_teacher(0).classifier.in_features == E.TEACHER_CHANNELS * 5


def test_sweep_compares_each_seed_with_itself(teacher_and_splits):
    teacher, splits = teacher_and_splits
    sweep = E.student_vs_distilled((1, 4), (0, 1), epochs=2, teacher=teacher, splits=splits,
                                   verbose=False)  # fmt: skip
    rows = sweep["rows"]
    assert [(r["T"], r["seed"]) for r in rows] == [
        (None, 0), (None, 1), (1, 0), (1, 1), (4, 0), (4, 1)
    ]  # fmt: skip
    for row in rows:
        assert row["errors"] == round(row["test_size"] * (1 - row["accuracy"] / 100))
        assert len(row["val_curve"]) == 2
        assert 0 <= row["train_accuracy"] <= 100
    # The same seed and T give the same student: the runs are reproducible.
    again = E.student_vs_distilled((4,), (1,), epochs=2, teacher=teacher, splits=splits,
                                   verbose=False)  # fmt: skip
    assert again["rows"][-1]["accuracy"] == rows[-1]["accuracy"]
    assert sweep["teacher_params"] > sweep["student_params"] > 0
    summary = E.sweep_summary(sweep)
    assert summary["alone_train"] == pytest.approx(
        statistics.fmean(r["train_accuracy"] for r in rows[:2])
    )
    assert set(summary["distilled_train"]) == {1, 4}
    assert summary["teacher_train_accuracy"] == sweep["teacher_train_accuracy"]


def test_sweep_summary_means_spreads_and_error_ratio():
    rows = [
        {"T": None, "seed": 0, "accuracy": 60.0, "errors": 400},
        {"T": None, "seed": 1, "accuracy": 62.0, "errors": 380},
        {"T": 2, "seed": 0, "accuracy": 66.0, "errors": 340},
        {"T": 2, "seed": 1, "accuracy": 70.0, "errors": 300},
        {"T": 8, "seed": 0, "accuracy": 61.0, "errors": 390},
        {"T": 8, "seed": 1, "accuracy": 63.0, "errors": 370},
    ]
    summary = E.sweep_summary({"rows": rows, "teacher_accuracy": 90.0})
    assert summary["alone"] == 61.0 and summary["distilled"] == {2: 68.0, 8: 62.0}
    assert summary["alone_std"] == pytest.approx(statistics.stdev([60.0, 62.0]))
    assert summary["best_T"] == 2 and summary["gain"] == 7.0
    assert summary["error_ratio"] == pytest.approx(320 / 390)
    assert E.sweep_seed_rows({"rows": rows})[0] == {"T": None, "seed": 0, "accuracy": 60.0}
    assert "alone_train" not in summary  # rows without training accuracies
    with pytest.raises(ValueError, match="alone"):
        E.sweep_summary({"rows": rows[2:]})
    with pytest.raises(ValueError, match="sweep"):
        E.sweep_summary(rows)


def test_bias_correction_can_only_help_on_the_omitted_class(teacher_and_splits):
    teacher, splits = teacher_and_splits
    rows = E.missing_class_transfer(3, (0,), epochs=2, teacher=teacher, splits=splits,
                                    verbose=False)  # fmt: skip
    (row,) = rows
    assert row["omitted_test"] == int((splits.test[1] == 3).sum())
    assert row["bias_shift"] in E.BIAS_SHIFTS
    # Raising one class's logit can only turn predictions into that class.
    assert row["corrected_omitted_errors"] <= row["omitted_errors"] <= row["omitted_test"]
    assert row["label_omitted_errors"] <= row["omitted_test"]
    with pytest.raises(ValueError, match="omit"):
        E.missing_class_transfer(10, (0,), epochs=1, teacher=teacher, splits=splits)


def test_best_bias_shift_minimises_errors_on_the_given_split():
    class Fixed(nn.Module):
        def forward(self, x):
            return x

    # Class 1's logit is 2 below class 0's on its own samples: a shift of 2.25 fixes them and
    # does not yet take the class-0 samples, whose gap is 3.
    x = torch.tensor([[2.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    y = torch.tensor([1, 1, 0])
    assert E._best_bias_shift(Fixed(), (x, y), 1) == 2.25


def test_hints_lower_the_hint_loss(teacher_and_splits):
    teacher, splits = teacher_and_splits
    (row,) = E.hints_then_distill((0,), hint_epochs=2, epochs=1, teacher=teacher, splits=splits,
                                  verbose=False)  # fmt: skip
    assert row["hint_loss_end"] < row["hint_loss_start"]
    # with no hint stage the longer control is the plain distilled student itself
    (none,) = E.hints_then_distill((0,), hint_epochs=0, epochs=1, teacher=teacher, splits=splits,
                                   verbose=False)  # fmt: skip
    assert none["longer_accuracy"] == none["accuracy"] == row["accuracy"]
    # the rows depend on the seed alone, not on what drew from the global generator before
    torch.randn(100)
    (again,) = E.hints_then_distill((0,), hint_epochs=2, epochs=1, teacher=teacher,
                                    splits=splits, verbose=False)  # fmt: skip
    assert again == row
    assert 0 <= row["accuracy"] <= 100 and 0 <= row["hinted_accuracy"] <= 100


def test_deit_experiment_trains_both_arms_from_the_same_seed():
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    from effdl.data import load_digits

    splits = load_digits(seed=0)
    result = E.deit_token_experiment((0,), epochs=1, teacher=teacher, splits=splits, verbose=False)
    assert [(r["arm"], r["seed"]) for r in result["rows"]] == [("none", 0), ("token", 0)]
    # The token adds one embedding and one head.
    extra = result["params"]["token"] - result["params"]["none"]
    assert extra == 32 + 32 * 10 + 10 + 32  # token, head weight, head bias, one more position
    summary = E.deit_summary(result)
    assert summary["gain"] == pytest.approx(summary["token"] - summary["none"])
    with pytest.raises(ValueError, match="both arms"):
        E.deit_summary({"rows": result["rows"][:1]})


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: E.student_vs_distilled((), (0,)), "temperatures"),
        (lambda: E.student_vs_distilled((1,), ()), "seeds"),
        (lambda: E.student_vs_distilled((1,), (-1,)), "seeds"),
        (lambda: E.student_vs_distilled((1,), (0,), epochs=0), "epochs"),
        (lambda: E.build_student(0, hidden=0), "hidden"),
        (lambda: E.hints_then_distill((0,), hint_epochs=-1), "hint_epochs"),
    ],
)
def test_bad_settings_name_the_argument(call, name):
    with pytest.raises((ValueError, TypeError), match=name):
        call()
