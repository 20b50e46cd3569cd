"""Lesson 11's library: Hyperband's brackets against the paper's Table 1 and the formula written
out, successive halving on hand-made learning curves (survivors, ties, resource spent),
Hyperband's trials against its brackets, the median stopping rule and patience-based early
stopping on hand-made curves, and the median rule cross-checked with Optuna's MedianPruner."""

from __future__ import annotations

import math

import numpy as np
import pytest

from effdl.hpo.early_stopping import MedianStopper, median_stopping_rule, stop_epoch
from effdl.hpo.grid import GridSampler
from effdl.hpo.hyperband import brackets, hyperband, resource_spent, successive_halving
from effdl.hpo.space import Categorical, Float, sample
from effdl.hpo.study import Study, TrialState, minimize

# -- brackets -----------------------------------------------------------------------------------


def test_brackets_reproduce_table_1_of_li_et_al_2018_exactly():
    assert brackets(81, eta=3) == [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ]
    assert all(isinstance(r, int) for rungs in brackets(81) for _, r in rungs)


def test_brackets_for_r_27_and_r_9_follow_the_formula():
    # R = 27, eta = 3: s_max = 3, B = 4 * 27; n = ceil(4 * 3**s / (s + 1)), r = 27 / 3**s.
    # s=3: n = ceil(108/4) = 27, r = 1; s=2: n = ceil(36/3) = 12, r = 3;
    # s=1: n = ceil(12/2) = 6, r = 9; s=0: n = ceil(4/1) = 4, r = 27.
    assert brackets(27, eta=3) == [
        [(27, 1), (9, 3), (3, 9), (1, 27)],
        [(12, 3), (4, 9), (1, 27)],
        [(6, 9), (2, 27)],
        [(4, 27)],
    ]
    # R = 9, eta = 3: s_max = 2, B = 3 * 9; s=2: n = ceil(27/3) = 9, r = 1;
    # s=1: n = ceil(9/2) = 5, r = 3; s=0: n = 3, r = 9.
    assert brackets(9, eta=3) == [[(9, 1), (3, 3), (1, 9)], [(5, 3), (1, 9)], [(3, 9)]]
    # min_resource scales the resources only: R = 18 / 2 = 9 as above.
    assert brackets(18, eta=3, min_resource=2) == [
        [(9, 2), (3, 6), (1, 18)],
        [(5, 6), (1, 18)],
        [(3, 18)],
    ]
    # eta = 2, R = 8: s_max = 3, n = ceil(4 * 2**s / (s + 1)).
    assert brackets(8, eta=2) == [
        [(8, 1), (4, 2), (2, 4), (1, 8)],
        [(6, 2), (3, 4), (1, 8)],
        [(4, 4), (2, 8)],
        [(4, 8)],
    ]
    assert brackets(5, eta=3, min_resource=5) == [[(1, 5)]]


def test_brackets_keep_floats_when_r_is_not_a_power_of_eta():
    # R = 10, eta = 3: s_max = 2 (9 <= 10 < 27), r = 10 / 9 for s = 2.
    plan = brackets(10, eta=3)
    assert [[n for n, _ in rungs] for rungs in plan] == [[9, 3, 1], [5, 1], [3]]
    assert plan[0][0][1] == pytest.approx(10 / 9) and plan[0][-1][1] == 10.0
    assert all(isinstance(r, float) for rungs in plan for _, r in rungs)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: brackets(81, eta=1), ValueError, "eta must be an int >= 2, got 1"),
        (lambda: brackets(81, eta=2.5), ValueError, "eta must be an int >= 2, got 2.5"),
        (
            lambda: brackets(3, min_resource=9),
            ValueError,
            "max_resource must be >= min_resource, got max_resource=3, min_resource=9",
        ),
        (lambda: brackets(0), ValueError, "max_resource must be a finite number > 0, got 0"),
        (lambda: brackets("81"), TypeError, "max_resource must be a number"),
    ],
)
def test_brackets_refuse_bad_input_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- successive halving on hand-made learning curves --------------------------------------------

# Validation loss of configuration c after r epochs, for r in the rungs 1, 3, 9 (eta = 3).
CURVES = {
    0: {1: 0.90},
    1: {1: 0.50, 3: 0.25},
    2: {1: 0.30, 3: 0.35},  # best at r=1, then plateaus: crossed by 1 and 8 at r=3
    3: {1: 0.80},
    4: {1: 0.50},  # ties with 1 at r=1 for the last place: the lower id (1) goes on
    5: {1: 0.70},
    6: {1: 0.60},
    7: {1: 0.95, 3: 0.05, 9: 0.01},  # a late bloomer SHA drops at r=1: it is never run again
    8: {1: 0.40, 3: 0.20, 9: 0.10},
}
CONFIGS = {"config": Categorical(tuple(CURVES))}


class CurveLookup:
    """The objective: looks the loss up in CURVES and logs every (config, resource) call."""

    def __init__(self, curves, sign=1.0):
        self.curves, self.sign, self.calls = curves, sign, []

    def __call__(self, params, resource):
        self.calls.append((params["config"], resource))
        return self.sign * self.curves[params["config"]][resource]


def _curve_study(direction="minimize"):
    # A grid over the configurations asks them in order, so that trial i is configuration i.
    return Study(CONFIGS, direction=direction, sampler=GridSampler())


def test_successive_halving_keeps_the_expected_survivors_and_counts_resumed_resource():
    objective = CurveLookup(CURVES)
    study = successive_halving(
        objective, CONFIGS, n=9, r_min=1, r_max=9, eta=3, study=_curve_study(), verbose=False
    )
    assert [t.params["config"] for t in study.trials] == list(range(9))
    # Rung 0: all nine at r=1; rung 1: the best 3 at r=3; rung 2: the best 1 at r=9.
    assert objective.calls == [(c, 1) for c in range(9)] + [(1, 3), (2, 3), (8, 3), (8, 9)]
    reached = {t.id: sorted(t.intermediate) for t in study.trials}
    assert [i for i, steps in reached.items() if 3 in steps] == [1, 2, 8]
    assert [i for i, steps in reached.items() if 9 in steps] == [8]
    states = [t.state for t in study.trials]
    assert states == [TrialState.PRUNED] * 8 + [TrialState.COMPLETE]
    assert study.trials[8].intermediate == {1: 0.40, 3: 0.20, 9: 0.10}
    assert (study.best_trial.id, study.best_value) == (8, 0.10)
    assert study.trials[2].value == 0.35  # pruned at r=3 with its last value
    assert study.trials[4].value == 0.50 and study.trials[4].intermediate == {1: 0.50}
    # Resumed: 9 trials x 1 epoch, then 3 x (3 - 1), then 1 x (9 - 3) = 21, not 9 + 9 + 9.
    assert resource_spent(study) == 9 * 1 + 3 * 2 + 1 * 6 == 21


def test_successive_halving_maximizes_when_the_study_does():
    # The same curves negated and maximized: the same survivors, ties and all.
    objective = CurveLookup(CURVES, sign=-1.0)
    study = successive_halving(
        objective,
        CONFIGS,
        n=9,
        r_min=1,
        r_max=9,
        study=_curve_study("maximize"),
        verbose=False,
    )
    assert objective.calls[9:] == [(1, 3), (2, 3), (8, 3), (8, 9)]
    assert (study.best_trial.id, study.best_value) == (8, -0.10)


def failing_at_three(params, resource):
    if params["config"] == 8 and resource == 3:
        raise RuntimeError("diverged")
    return CURVES[params["config"]][resource]


def test_a_failed_evaluation_fails_its_trial_and_leaves_its_place_empty():
    study = successive_halving(
        failing_at_three, CONFIGS, r_min=1, r_max=9, study=_curve_study(), verbose=False
    )  # n=None: eta**2 = 9 configurations
    assert len(study.trials) == 9
    assert study.trials[8].state is TrialState.FAILED
    assert study.trials[8].error == "RuntimeError: diverged"
    # 8 failed at r=3: of the other two, 1 (0.25) beats 2 (0.35) and is the one to reach r=9,
    # where CURVES has no value for it: the lookup raises KeyError and it fails too.
    assert study.trials[1].state is TrialState.FAILED and "KeyError" in study.trials[1].error
    assert study.trials[2].state is TrialState.PRUNED
    assert resource_spent(study) == 9 + 2 + 2  # failed evaluations report nothing


def test_successive_halving_refuses_bad_input():
    with pytest.raises(ValueError, match=r"r_max must be r_min \* eta\*\*k.*r_max=10"):
        successive_halving(CurveLookup(CURVES), CONFIGS, n=9, r_min=1, r_max=10, verbose=False)
    with pytest.raises(ValueError, match=r"n must be at least eta\*\*2 = 9.*got n=8"):
        successive_halving(CurveLookup(CURVES), CONFIGS, n=8, r_min=1, r_max=9, verbose=False)
    with pytest.raises(ValueError, match="eta must be an int >= 2, got 1"):
        successive_halving(CurveLookup(CURVES), CONFIGS, r_min=1, r_max=9, eta=1, verbose=False)
    with pytest.raises(ValueError, match="r_min must be a positive int, got 0"):
        successive_halving(CurveLookup(CURVES), CONFIGS, r_min=0, r_max=9, verbose=False)
    with pytest.raises(TypeError, match="objective must be callable"):
        successive_halving("loss", CONFIGS, r_min=1, r_max=9, verbose=False)


# -- Hyperband ----------------------------------------------------------------------------------

SPACE = {"lr": Float(1e-4, 1e-1, log=True), "wd": Float(0.0, 0.1)}


def synthetic_curve(params, resource):
    """A loss that falls with the resource towards a floor set by the params."""
    floor = (math.log10(params["lr"]) + 2.5) ** 2 + params["wd"]
    return floor + 1.0 / resource


def test_hyperband_trials_and_rungs_match_the_brackets():
    study = hyperband(synthetic_curve, SPACE, max_resource=27, eta=3, seed=5, verbose=False)
    plan = brackets(27, eta=3)
    trials = study.trials
    assert len(trials) == sum(rungs[0][0] for rungs in plan) == 27 + 12 + 6 + 4
    start = 0
    for rungs in plan:
        block = trials[start : start + rungs[0][0]]
        start += rungs[0][0]
        resources = [r for _, r in rungs]
        for n_i, r_i in rungs:
            assert sum(r_i in t.intermediate for t in block) == n_i
        for t in block:  # every trial climbed a prefix of its bracket's rungs
            assert sorted(t.intermediate) == resources[: len(t.intermediate)]
            complete = t.state is TrialState.COMPLETE
            assert complete == (max(t.intermediate) == 27)
            assert t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            assert t.value == t.intermediate[max(t.intermediate)]
        # The survivors of each rung are the best of the rung before.
        for (_, r_i), (n_next, r_next) in zip(rungs, rungs[1:], strict=False):
            at_rung = [t for t in block if r_i in t.intermediate]
            ranked = sorted(at_rung, key=lambda t, r=r_i: (t.intermediate[r], t.id))
            survivors = [t for t in block if r_next in t.intermediate]
            assert {t.id for t in survivors} == {t.id for t in ranked[:n_next]}
    # Trials are drawn as the Study draws them: trial i with default_rng([seed, i]).
    assert trials[30].params == sample(SPACE, np.random.default_rng([5, 30]))
    # Per bracket: sum over rungs of n_i (r_i - r_(i-1)).
    expected = 0
    for rungs in plan:
        previous = 0
        for n_i, r_i in rungs:
            expected += n_i * (r_i - previous)
            previous = r_i
    by_hand = (27 + 9 * 2 + 3 * 6 + 18) + (12 * 3 + 4 * 6 + 18) + (6 * 9 + 2 * 18) + 4 * 27
    assert resource_spent(study) == expected == by_hand == 357


def test_the_same_seed_gives_the_same_study_and_minimize_runs_both_methods():
    runs = [
        hyperband(synthetic_curve, SPACE, max_resource=9, seed=s, verbose=False) for s in (1, 1, 2)
    ]
    summary = [[(t.params, t.state, t.intermediate) for t in s.trials] for s in runs]
    assert summary[0] == summary[1] and summary[0] != summary[2]
    via_minimize = minimize(
        synthetic_curve, SPACE, method="hyperband", max_resource=9, eta=3, seed=1, verbose=False
    )
    assert [(t.params, t.state, t.intermediate) for t in via_minimize.trials] == summary[0]
    sha = minimize(
        synthetic_curve, SPACE, method="sha", n_trials=10, max_resource=9, seed=3, verbose=False
    )
    assert len(sha.trials) == 10
    assert [sum(r in t.intermediate for t in sha.trials) for r in (1, 3, 9)] == [10, 3, 1]


def test_minimize_refuses_what_the_multi_fidelity_methods_cannot_do(tmp_path):
    with pytest.raises(ValueError, match="needs max_resource"):
        minimize(synthetic_curve, SPACE, method="hyperband", verbose=False)
    with pytest.raises(ValueError, match="n_trials=None, got n_trials=5"):
        minimize(synthetic_curve, SPACE, method="hyperband", max_resource=9, n_trials=5)
    with pytest.raises(ValueError, match="runs in this process"):
        minimize(synthetic_curve, SPACE, method="sha", max_resource=9, n_workers=2)
    with pytest.raises(ValueError, match="max_resource is for method 'sha' or 'hyperband'"):
        minimize(synthetic_curve, SPACE, method="random", max_resource=9)
    with pytest.raises(ValueError, match=r"whole-number resources.*max_resource=10"):
        minimize(synthetic_curve, SPACE, method="hyperband", max_resource=10, verbose=False)
    with pytest.raises(ValueError, match=r"\('sha', 'hyperband'\).*'tpe'"):
        minimize(synthetic_curve, SPACE, method="tpe")
    journal = tmp_path / "hb.jsonl"
    minimize(synthetic_curve, SPACE, method="sha", max_resource=3, journal=journal, verbose=False)
    assert len(Study(SPACE, journal=journal).trials) == 3
    with pytest.raises(ValueError, match="does not resume"):
        minimize(synthetic_curve, SPACE, method="sha", max_resource=3, journal=journal)


def test_progress_bar_shows_unless_silenced(capsys):
    hyperband(synthetic_curve, SPACE, max_resource=3, verbose=True)
    assert "evaluations" in capsys.readouterr().err
    hyperband(synthetic_curve, SPACE, max_resource=3, verbose=False)
    assert capsys.readouterr().err == ""


# -- the median stopping rule -------------------------------------------------------------------

# Completed curves (losses). Running averages at step 1: A 0.75, B 1.5, C 0.5, D 3.0, so the
# median at step 1 is (0.75 + 1.5) / 2 = 1.125. At step 2 only A, B and C reached it:
# A (1 + .5 + .25) / 3 = 0.58333, B (2 + 1 + 0) / 3 = 1.0, C 0.5, median 0.58333.
COMPLETED = [
    [1.0, 0.5, 0.25, 0.25],  # A
    [2.0, 1.0, 0.0],  # B: 0.0 at step 2, but its running average there is 1.0
    [0.5, 0.5, 0.5],  # C
    [3.0, 3.0],  # D
]


@pytest.mark.parametrize(
    ("curve", "step", "stops"),
    [
        ([1.3, 1.25], 1, True),  # best so far 1.25 > 1.125
        ([1.3, 1.1], 1, False),  # 1.1 < 1.125
        ([1.5, 1.125], 1, False),  # equal to the median: not strictly worse
        ([1.125, 2.0], 1, False),  # best so far (step 0) equals the median, though 2.0 is worse
        ([0.9, 0.7, 0.6], 2, True),  # 0.6 > 0.58333
        ([0.9, 0.7, 0.55], 2, False),  # 0.55 < 0.58333 (the values AT step 2 have median 0.25)
        ([9.0, 9.0, 9.0, 9.0, 9.0], 4, False),  # no completed curve reached step 4
        ([9.0, 9.0, 9.0, 9.0], 3, True),  # only A reached step 3: median = its 0.5
    ],
)
def test_median_rule_on_hand_made_curves_in_both_directions(curve, step, stops):
    assert median_stopping_rule(COMPLETED, curve, step) is stops
    negated = [[-v for v in done] for done in COMPLETED]
    flipped = median_stopping_rule(negated, [-v for v in curve], step, direction="maximize")
    assert flipped is stops


def test_median_rule_without_completed_curves_never_stops_and_refuses_bad_input():
    assert median_stopping_rule([], [5.0, 6.0], 1) is False
    with pytest.raises(ValueError, match="curve must have a value at step 2"):
        median_stopping_rule(COMPLETED, [1.0, 1.0], 2)
    with pytest.raises(ValueError, match="direction must be one of"):
        median_stopping_rule(COMPLETED, [1.0], 0, direction="down")
    with pytest.raises(ValueError, match=r"completed_curves\[1\] values must be finite"):
        median_stopping_rule([[1.0], [math.nan]], [1.0], 0)


def test_median_stopper_waits_for_its_grace_steps_and_completed_curves():
    stopper = MedianStopper(min_completed=2, grace_steps=1)
    worst = [9.0, 9.0, 9.0, 9.0]
    assert stopper.should_stop(worst, 0, COMPLETED) is False  # step 0 < grace_steps
    assert stopper.should_stop(worst, 1, COMPLETED) is True
    assert stopper.should_stop(worst, 3, COMPLETED) is False  # only A reached step 3
    assert MedianStopper().should_stop(worst, 3, COMPLETED) is True
    # In a loop: the pending trial stops at the first step the rule says so.
    pending = [1.0, 1.3, 1.2, 1.0]
    steps = [s for s in range(len(pending)) if stopper.should_stop(pending[: s + 1], s, COMPLETED)]
    assert steps == [2]  # step 1: best 1.0 < 1.125; step 2: 1.0 > 0.58333
    with pytest.raises(ValueError, match="min_completed must be a positive int, got 0"):
        MedianStopper(min_completed=0)


def test_median_rule_agrees_with_optunas_median_pruner_on_flat_completed_curves():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna's MedianPruner compares the pending trial's best value so far, as Vizier does, with
    # the median of the completed trials' values AT the step, where Vizier takes their running
    # averages. On flat completed curves the two are the same, so the decisions must agree.
    completed = [[1.0] * 4, [2.0] * 4, [4.0] * 4, [3.0] * 3]
    pending_curves = [
        [5.0, 2.6, 2.4, 2.6],
        [1.5, 2.5, 2.5, 2.5],
        [2.5, 2.5, 3.0, 1.9],
        [9.0, 3.5, 2.2, 2.1],
        [2.0, 2.0, 2.0, 2.0],
    ]
    study = optuna.create_study(
        pruner=optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0)
    )
    for curve in completed:
        study.add_trial(
            optuna.trial.create_trial(
                value=curve[-1],
                intermediate_values=dict(enumerate(curve)),
                state=optuna.trial.TrialState.COMPLETE,
            )
        )
    ours, theirs = [], []
    for curve in pending_curves:
        trial = study.ask()
        for step, value in enumerate(curve):
            trial.report(value, step)
            theirs.append(trial.should_prune())
            ours.append(median_stopping_rule(completed, curve, step))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert ours == theirs
    assert any(ours) and not all(ours)  # the curves exercise both decisions


# -- patience-based early stopping ---------------------------------------------------------------


def test_stop_epoch_tie_rules_and_patience():
    never_improves = [1.0, 1.0, 2.0, 1.5, 1.0]
    assert stop_epoch(never_improves, patience=3) == 3  # epochs 1, 2, 3 do not improve
    assert stop_epoch(never_improves, patience=5) is None
    # A gain of exactly min_delta (0.25, exact in binary) does not count; more than it does.
    assert stop_epoch([1.0, 0.75, 0.75], patience=2, min_delta=0.25) == 2
    assert stop_epoch([1.0, 0.75, 0.75], patience=2) is None  # 0.75 improves, then one tie
    assert stop_epoch([1.0, 0.7, 0.4], patience=1, min_delta=0.25) is None
    # Patience 0: stop at the first epoch that does not improve (as patience 1 does).
    assert stop_epoch([3.0, 2.0, 2.0, 1.0], patience=0) == 2
    assert stop_epoch([3.0, 2.0, 2.0, 1.0], patience=1) == 2
    # Improves late: the run of bad epochs is cut short by epoch 3, then counts from zero.
    late = [1.0, 1.1, 1.2, 0.5, 0.6, 0.7, 0.8]
    assert stop_epoch(late, patience=3) == 6
    assert stop_epoch(late, patience=2) == 2
    # A gain below min_delta does not move the best: 0.95, 0.91 and 0.89 are all measured
    # against 1.0, so 0.89 improves (against 0.91 it would not, and patience 3 would stop).
    assert stop_epoch([1.0, 0.95, 0.91, 0.89], patience=3, min_delta=0.1) is None
    assert stop_epoch([1.0, math.nan, 0.5], patience=1) == 1  # a NaN epoch does not improve
    assert stop_epoch([], patience=2) is None


def test_stop_epoch_refuses_bad_input():
    with pytest.raises(ValueError, match="patience must be a non-negative int, got -1"):
        stop_epoch([1.0], patience=-1)
    with pytest.raises(ValueError, match="min_delta must be a finite number >= 0, got -0.1"):
        stop_epoch([1.0], patience=1, min_delta=-0.1)
    with pytest.raises(TypeError, match="losses must be a sequence of numbers"):
        stop_epoch("1.0", patience=1)
