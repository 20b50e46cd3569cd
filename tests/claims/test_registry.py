import json

import pytest

from effdl.claims import (
    REGISTRY,
    Claim,
    Outcome,
    exact,
    not_comparable,
    per_figure,
    within,
    within_points,
    within_printed,
)
from effdl.claims.registry import VERDICTS, within_factor
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


def test_within_factor_is_symmetric_in_ratio():
    rule = within_factor(2.0, close=4.0)
    assert rule({"n": 64}, {"n": 120}).verdict == "reproduced"
    assert rule({"n": 64}, {"n": 33}).verdict == "reproduced"
    assert rule({"n": 64}, {"n": 200}).verdict == "close"
    assert rule({"n": 64}, {"n": 20}).verdict == "close"
    differs = rule({"n": 64}, {"n": 1280})
    assert differs.verdict == "differs" and "1280 vs 64 (20x apart)" in differs.reason
    with pytest.raises(ValueError, match="positive figures"):
        rule({"n": 64}, {"n": 0})
    with pytest.raises(ValueError, match="1 <= factor <= close"):
        within_factor(0.5)


def test_missing_figure_is_a_difference():
    assert within(0.1)({"x": 1, "y": 2}, {"x": 1}).verdict == "differs"


def test_bad_verdict_name():
    with pytest.raises(ValueError, match="verdict must be one of"):
        Outcome("fine")


def test_verdicts_list_the_reduced_labels_and_error():
    assert "error" in VERDICTS and "reproduced" in VERDICTS
    assert "reproduced (reduced run)" in VERDICTS and "close (reduced run)" in VERDICTS
    assert "error (reduced run)" not in VERDICTS


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


def test_registered_claims_and_select_validates_ids():
    chosen = select(["separable-cost"])
    assert [c.id for c in chosen] == ["separable-cost"]
    assert {"separable-cost", "mnist1d-baselines", "attention-parallel"} <= set(REGISTRY)
    with pytest.raises(ValueError, match="unknown claim ids \\['nope'\\]"):
        select(["nope"])


def test_sources_name_authors_and_years_not_numbers():
    select()
    for entry in REGISTRY.values():
        assert not entry.source.startswith("0"), entry.id
        assert any(str(year) in entry.source for year in range(1990, 2030)), entry.id


def test_per_figure_reports_the_worst_verdict():
    rule = per_figure({"madds": within(0.01), "*": exact()})
    assert rule({"madds": 100, "params": 7}, {"madds": 100.5, "params": 7}).verdict == "reproduced"
    outcome = rule({"madds": 100, "params": 7}, {"madds": 100.5, "params": 8})
    assert outcome.verdict == "differs" and "params: 8 vs 7" in outcome.reason


def test_per_figure_with_no_published_figures_is_not_comparable():
    # Used to crash: min() of no outcomes.
    outcome = per_figure({"*": exact()})({}, {"x": 1})
    assert outcome.verdict == "not-comparable" and "no figures" in outcome.reason


@pytest.mark.parametrize(
    "rule", [within(0.02), within_points(4), exact(), within_factor(2), within_printed(0.02, {})]
)
def test_every_rule_handles_no_published_figures(rule):
    assert rule({}, {"x": 1}).verdict == "not-comparable"


def test_per_figure_refuses_a_figure_no_rule_covers():
    with pytest.raises(ValueError, match=r"no rule for the published figures \['params'\]"):
        per_figure({"madds": within(0.01)})({"madds": 100, "params": 7}, {"madds": 100})


def test_within_printed_allows_half_the_printed_unit():
    rule = within_printed(0.02, {"_M": 0.1})
    # 0.47 is 6% under 0.5, but 0.5 is printed to 0.1: allowed 0.01 + 0.05.
    assert rule({"p_M": 0.5}, {"p_M": 0.47}).verdict == "reproduced"
    assert rule({"p_M": 0.5}, {"p_M": 0.6}).verdict == "close"
    assert rule({"p_M": 0.5}, {"p_M": 0.9}).verdict == "differs"


def test_within_printed_truncated_reads_the_unit_above():
    rule = within_printed(0.0, {"_M": 0.1}, truncated=True)
    # 3.4 truncated to 0.1 stands for 3.40..3.50: 3.47 is inside, 3.36 below it.
    assert rule({"p_M": 3.4}, {"p_M": 3.47}).verdict == "reproduced"
    assert rule({"p_M": 3.4}, {"p_M": 3.36}).verdict == "close"
    rounded = within_printed(0.0, {"_M": 0.1})
    assert rounded({"p_M": 3.4}, {"p_M": 3.47}).verdict == "close"
