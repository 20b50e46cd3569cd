import json

import pytest

from effdl.claims import (
    REGISTRY,
    Claim,
    Outcome,
    exact,
    judge,
    not_comparable,
    within,
    within_points,
)
from effdl.claims.runner import format_table, run_claim, select, to_json, to_markdown


def _claim(measure, verdict=None, published=None):
    verdict = verdict or within(0.02)
    return Claim(
        "test-claim", "a source", "a statement", published or {"x": 100.0}, measure, verdict
    )


def test_within_gives_three_verdicts():
    rule = within(0.02)
    assert rule({"x": 100}, {"x": 101.9}).verdict == "reproduced"
    assert rule({"x": 100}, {"x": 105}).verdict == "close"
    differs = rule({"x": 100}, {"x": 120})
    assert differs.verdict == "differs" and "x: 120 vs 100 (20.0% off)" in differs.reason


def test_within_points_is_absolute():
    rule = within_points(4)
    assert rule({"a": 94}, {"a": 90.0}).verdict == "reproduced"
    assert rule({"a": 94}, {"a": 89.0}).verdict == "close"
    assert rule({"a": 94}, {"a": 80.0}).verdict == "differs"


def test_exact_and_not_comparable():
    assert exact()({"n": 75}, {"n": 75}).verdict == "reproduced"
    assert exact()({"n": 75}, {"n": 76}).verdict == "differs"
    assert not_comparable("GPU-days vs CPU-seconds")({}, {}) == Outcome(
        "not-comparable", "GPU-days vs CPU-seconds"
    )


def test_missing_figure_is_a_difference():
    assert within(0.1)({"x": 1, "y": 2}, {"x": 1}).verdict == "differs"


def test_bad_verdict_name():
    with pytest.raises(ValueError, match="verdict must be one of"):
        Outcome("fine")


def test_run_claim_keeps_note_and_extra_figures():
    result = run_claim(_claim(lambda: {"x": 100.5, "extra": 3, "note": "one seed"}))
    assert result.verdict == "reproduced" and result.reason == "one seed"
    assert result.measured == {"x": 100.5, "extra": 3}


def test_a_crashing_measurement_is_an_error_row():
    def broken():
        raise RuntimeError("boom")

    result = run_claim(_claim(broken))
    assert result.verdict == "error" and "RuntimeError: boom" in result.reason


def test_reports_have_stable_keys():
    result = run_claim(_claim(lambda: {"x": 100}))
    report = json.loads(to_json([result]))
    assert set(report) == {"machine", "claims"}
    assert set(report["claims"][0]) == {
        "id",
        "source",
        "statement",
        "published",
        "measured",
        "verdict",
        "reason",
        "seconds",
    }
    assert "| test-claim | a source | a statement | x=100 | x=100 | reproduced |" in to_markdown(
        [result]
    )
    assert "test-claim" in format_table([result])


def test_registered_claims_include_the_foundation_and_select_validates_ids():
    chosen = select(["fc-vs-conv"])
    assert [c.id for c in chosen] == ["fc-vs-conv"]
    assert {"fc-vs-conv", "mnist1d-baselines"} <= set(REGISTRY)
    with pytest.raises(ValueError, match="unknown claim ids \\['nope'\\]"):
        select(["nope"])


def test_fc_vs_conv_reproduces_the_source():
    result = run_claim(REGISTRY["fc-vs-conv"])
    assert result.verdict == "reproduced"
    assert (
        result.measured["fc_connections"] == 100 * 100 * 3 and result.measured["conv_params"] == 75
    )


def test_judge_applies_the_claims_own_rule_to_given_figures():
    row = judge("fc-vs-conv", {"fc_connections": 30_000, "conv_params": 76}, note="by hand")
    assert row.verdict == "differs" and "conv_params: 76 vs 75" in row.reason
    assert row.reason.endswith("by hand")


def test_per_figure_reports_the_worst_verdict():
    from effdl.claims import per_figure

    rule = per_figure({"madds": within(0.01), "*": exact()})
    assert rule({"madds": 100, "params": 7}, {"madds": 100.5, "params": 7}).verdict == "reproduced"
    outcome = rule({"madds": 100, "params": 7}, {"madds": 100.5, "params": 8})
    assert outcome.verdict == "differs" and "params: 8 vs 7" in outcome.reason


def test_within_printed_allows_half_the_printed_unit():
    from effdl.claims import within_printed

    rule = within_printed(0.02, {"_M": 0.1})
    # 0.47 is 6% under 0.5, but 0.5 is printed to 0.1: allowed 0.01 + 0.05.
    assert rule({"p_M": 0.5}, {"p_M": 0.47}).verdict == "reproduced"
    assert rule({"p_M": 0.5}, {"p_M": 0.6}).verdict == "close"
    assert rule({"p_M": 0.5}, {"p_M": 0.9}).verdict == "differs"
