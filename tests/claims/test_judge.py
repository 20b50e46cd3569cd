import pytest

from effdl.claims import REGISTRY, Claim, judge, within
from effdl.claims.registry import VERDICTS
from effdl.claims.runner import run_claim

GOOD = {"logreg": 32.0, "mlp": 68.0, "cnn": 94.0, "gru": 91.0}


def test_judge_names_the_missing_figures_and_the_expected_keys():
    # Used to give a quiet "differs: measurement lacks ['gru']".
    with pytest.raises(ValueError, match=r"lacks the figures \['gru'\]") as raised:
        judge("mnist1d-baselines", {"logreg": 32.0, "mlp": 68.0, "cnn": 94.0})
    assert "['logreg', 'mlp', 'cnn', 'gru']" in str(raised.value)


def test_judge_refuses_figures_that_are_not_a_mapping():
    with pytest.raises(TypeError, match="measured must be a dict of figures"):
        judge("mnist1d-baselines", [32.0, 68.0, 94.0, 91.0])


def test_judge_keeps_extra_figures_and_the_claims_own_verdict():
    row = judge("mnist1d-baselines", {**GOOD, "gru_std": 1.2}, note="three seeds")
    assert row.verdict == "reproduced" and row.reason == "three seeds"
    assert row.measured["gru_std"] == 1.2


def test_a_reduced_run_is_never_plain_reproduced():
    row = judge("mnist1d-baselines", GOOD, reduced="1,500 of the paper's 6,000 steps, one seed")
    assert row.verdict == "reproduced (reduced run)" and row.verdict in VERDICTS
    assert row.reason.startswith("reduced run: 1,500 of the paper's 6,000 steps, one seed")


def test_a_reduced_run_keeps_the_rules_verdict_and_reason():
    row = judge(
        "mnist1d-baselines", {**GOOD, "gru": 80.0}, note="lesson run", reduced="1,500 steps"
    )
    assert row.verdict == "differs (reduced run)"
    assert "gru: 80 vs 91" in row.reason and row.reason.endswith("lesson run")
    close = judge("mnist1d-baselines", {**GOOD, "gru": 86.0}, reduced="1,500 steps")
    assert close.verdict == "close (reduced run)"


@pytest.mark.parametrize("reduced", ["", "   ", 1500])
def test_reduced_must_describe_the_run(reduced):
    with pytest.raises(ValueError, match="reduced must be None"):
        judge("mnist1d-baselines", GOOD, reduced=reduced)


def test_a_crash_stays_an_error_in_a_reduced_run():
    def broken():
        raise RuntimeError("boom")

    entry = Claim("t", "A 2020", "s", {"x": 1.0}, broken, within(0.1), cost_seconds=1.0)
    assert run_claim(entry, reduced="half the steps").verdict == "error"


def test_judge_validates_the_claim_id():
    with pytest.raises(ValueError, match="unknown claim ids"):
        judge("no-such-claim", GOOD)
    assert "mnist1d-baselines" in REGISTRY
