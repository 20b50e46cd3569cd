"""The distillation claims (distill, deit-token): their published figures, their rules and
their notes, with the experiments replaced by fixed figures so that the tests run in
milliseconds (the experiments themselves are tested in tests/experiments)."""

import pytest

from effdl.claims import REGISTRY
from effdl.claims import distillation as distillation_claims
from effdl.claims.runner import run_claim, select


def test_claims_are_registered_with_the_papers_figures():
    select()
    distill, deit = REGISTRY["distill"], REGISTRY["deit-token"]
    assert distill.published == {"error_ratio": round(74 / 146, 3)}
    assert "146" in distill.statement and "74" in distill.statement
    assert distill.source.startswith("Hinton, Vinyals, Dean 2015")
    assert deit.published == {"gain_points": 2.3}
    assert "72.2%" in deit.statement and "74.5%" in deit.statement
    assert "Tables 3 and 5" in deit.source


def test_rules_judge_the_ratio_and_the_gain():
    distill, deit = REGISTRY["distill"], REGISTRY["deit-token"]
    assert distill.verdict(distill.published, {"error_ratio": 0.55}).verdict == "reproduced"
    assert distill.verdict(distill.published, {"error_ratio": 0.70}).verdict == "close"
    assert distill.verdict(distill.published, {"error_ratio": 0.84}).verdict == "differs"
    assert deit.verdict(deit.published, {"gain_points": 2.0}).verdict == "reproduced"
    assert deit.verdict(deit.published, {"gain_points": 0.5}).verdict == "close"
    assert deit.verdict(deit.published, {"gain_points": -0.5}).verdict == "differs"


def _sweep(**_):
    rows = [
        {
            "T": T,
            "seed": s,
            "accuracy": acc,
            "train_accuracy": acc + 30,
            "errors": round(1000 * (1 - acc / 100)),
        }
        for T, accs in ((None, (60.0, 62.0)), (4, (66.0, 68.0)), (8, (65.0, 65.0)))
        for s, acc in enumerate(accs)
    ]
    return {"rows": rows, "teacher_accuracy": 86.0, "teacher_train_accuracy": 95.0}


def _transfer(**_):
    row = {"seed": 0, "omitted": 3, "test_size": 1000, "omitted_test": 106}
    row.update(label_errors=480, label_omitted_errors=106, errors=400, omitted_errors=80)
    row.update(bias_shift=7.5, corrected_errors=360, corrected_omitted_errors=30)
    return [row]


def test_distill_row_reports_the_sweep_and_the_transfer_set(monkeypatch):
    monkeypatch.setattr(distillation_claims, "train_teacher", lambda seed: (None, None))
    monkeypatch.setattr(distillation_claims, "student_vs_distilled", _sweep)
    monkeypatch.setattr(distillation_claims, "missing_class_transfer", _transfer)
    result = run_claim(REGISTRY["distill"])
    measured = result.measured
    assert measured["best_T"] == 4 and measured["accuracy_distilled"] == 67.0
    assert measured["error_ratio"] == pytest.approx(330 / 390)
    assert measured["accuracy_T8"] == 65.0
    assert result.verdict == "differs"
    assert "80 of 106 test 3s wrong" in result.reason and "leaves 30 wrong" in result.reason
    assert "not MNIST" in result.reason and "over 2 seeds" in result.reason
    assert measured["train_accuracy_alone"] == 91.0
    assert "91.0% alone, 97.0% distilled, teacher 95.0%" in result.reason


def test_deit_row_reports_the_spread_and_the_size_of_one_image(monkeypatch):
    rows = [
        {"arm": arm, "seed": s, "accuracy": acc}
        for arm, accs in (("none", (96.0, 97.0)), ("token", (97.5, 98.5)))
        for s, acc in enumerate(accs)
    ]
    fake = {"rows": rows, "teacher_accuracy": 98.0, "params": {"none": 10, "token": 12},
            "test_size": 359}  # fmt: skip
    monkeypatch.setattr(distillation_claims, "deit_token_experiment", lambda **k: fake)
    result = run_claim(REGISTRY["deit-token"])
    assert result.measured["gain_points"] == pytest.approx(1.5)
    assert result.verdict == "reproduced"
    assert "one image is 0.28 points" in result.reason and "over 2 seeds" in result.reason
