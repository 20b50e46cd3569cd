"""Studies: ask/report/tell, best trials, failures kept, the append-only journal and its resume
(after a real SIGKILL), and `minimize` on real executors: a spawned process pool (with a worker
that dies), a caller's pool, and a Dask LocalCluster."""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from effdl.hpo.grid import GridSampler
from effdl.hpo.space import Categorical, Float, Int, sample
from effdl.hpo.study import Study, Trial, TrialState, minimize

SPACE = {
    "lr": Float(1e-4, 1e-1, log=True),
    "width": Int(8, 64),
    "act": Categorical(("relu", "tanh")),
}
# The source's grid example: learning rate {0.01, 0.05} by decay {0.1, 0.2}, 4 trials.
GRID_SPACE = {"lr": Categorical((0.01, 0.05)), "decay": Categorical((0.1, 0.2))}
DIGITS = {"x": Categorical((0, 1, 2, 3))}


# Objectives live at module level so that spawned workers and Dask workers can import them.
def bowl(params):
    penalty = 0.1 if params["act"] == "tanh" else 0.0
    return (math.log10(params["lr"]) + 2) ** 2 + (params["width"] - 32) ** 2 / 1000 + penalty


def grid_loss(params):
    return params["lr"] * 10 + params["decay"]


def raises_or_nan(params):
    if params["x"] == 1:
        raise ValueError("diverged at x=1")
    if params["x"] == 3:
        return float("nan")
    return float(params["x"])


def exits_at_two(params):
    if params["x"] == 2:
        os._exit(1)  # the worker process dies, as it would on a segfault or an OOM kill
    if params["x"] == 3:
        time.sleep(0.3)  # still in flight when x=2 kills its worker
    return float(params["x"])


def interrupts(params):
    raise KeyboardInterrupt


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- ask, report, tell ------------------------------------------------------------------------


def test_ask_report_tell_round_trip_with_ids_states_and_per_trial_generators():
    study = Study(SPACE, seed=7)
    first = study.ask()
    assert (first.id, first.state, first.value) == (0, TrialState.RUNNING, None)
    # Trial i draws with its own generator np.random.default_rng([seed, i]).
    assert first.params == sample(SPACE, np.random.default_rng([7, 0]))
    study.report(first, 0, 0.9)
    study.report(first.id, 1, 0.4)
    done = study.tell(first, 0.35)
    assert done.state is TrialState.COMPLETE and done.value == 0.35
    assert done.intermediate == {0: 0.9, 1: 0.4}
    assert done.seconds is not None and done.seconds >= 0

    mine = {"lr": 0.01, "width": 32, "act": "relu"}
    second = study.ask(mine)
    assert second.id == 1 and second.params == mine
    study.report(second, 0, 2.0)
    pruned = study.tell(second, state="pruned")
    assert pruned.state is TrialState.PRUNED and pruned.value == 2.0  # its last report

    outside = study.tell({"lr": 0.001, "width": 8, "act": "tanh"}, 1.5)
    assert (outside.id, outside.state, outside.seconds) == (2, TrialState.COMPLETE, None)
    assert [t.id for t in study.trials] == [0, 1, 2]
    assert [t.state.value for t in study.trials] == ["complete", "pruned", "complete"]
    assert str(TrialState.FAILED) == "failed"  # what GridSampler and the journal read
    # Trials handed out are copies: changing one does not change the study.
    study.trials[0].params["lr"] = 1.0
    assert study.trials[0].params == first.params


def test_best_trial_follows_the_direction_over_complete_trials_only():
    values = [3.0, 1.0, 2.0]
    points = [{"lr": 0.001 * (i + 1), "width": 8 + i, "act": "relu"} for i in range(3)]
    low, high = Study(SPACE), Study(SPACE, direction="maximize")
    for study in (low, high):
        with pytest.raises(ValueError, match="at least one complete trial"):
            _ = study.best_trial
        for params, value in zip(points, values, strict=True):
            study.tell(params, value)
        study.tell(points[0], error="RuntimeError: out of memory")  # failed: never best
        study.tell(points[0], -100.0, state="pruned")  # pruned: never best
    assert (low.best_value, low.best_params, low.best_trial.id) == (1.0, points[1], 1)
    assert (high.best_value, high.best_params, high.best_trial.id) == (3.0, points[0], 0)
    assert low.trials[3].state is TrialState.FAILED
    assert low.trials[3].error == "RuntimeError: out of memory"
    assert (low.direction, high.direction) == ("minimize", "maximize")
    assert low.space == SPACE


def test_bad_input_is_refused_with_the_argument_named():
    study = Study(SPACE)
    with pytest.raises(ValueError, match=r"unknown names \['bogus'\]"):
        study.tell({"lr": 0.01, "width": 16, "act": "relu", "bogus": 1}, 0.5)
    assert study.trials == []  # nothing was asked
    with pytest.raises(ValueError, match="unknown names"):
        study.ask({"lr": 0.01, "width": 16, "act": "relu", "depth": 2})
    trial = study.ask()
    study.tell(trial, 0.5)
    with pytest.raises(ValueError, match=r"trial 0 was already told \(complete\)"):
        study.tell(trial, 0.4)
    with pytest.raises(ValueError, match="already told"):
        study.report(trial, 2, 0.1)
    running = study.ask()
    with pytest.raises(ValueError, match="finite value to mark trial 1 complete"):
        study.tell(running)
    with pytest.raises(ValueError, match="state must be one of"):
        study.tell(running, 0.1, state="done")
    with pytest.raises(ValueError, match="trial_or_id 9 names no trial"):
        study.tell(9, 0.1)
    with pytest.raises(ValueError, match="direction must be one of"):
        Study(SPACE, direction="max")
    with pytest.raises(ValueError, match="direction must be one of"):
        minimize(bowl, SPACE, direction="down", verbose=False)
    with pytest.raises(
        ValueError, match=r"method must be one of \('grid', 'random', 'bo'\).*'tpe'"
    ):
        minimize(bowl, SPACE, method="tpe", verbose=False)
    with pytest.raises(ValueError, match="n_trials must be a positive int, got 0"):
        minimize(bowl, SPACE, n_trials=0, verbose=False)
    with pytest.raises(ValueError, match="n_workers must be a positive int"):
        minimize(bowl, SPACE, n_workers=0, verbose=False)
    with pytest.raises(TypeError, match="objective must pickle"):
        minimize(lambda p: 0.0, SPACE, n_workers=2, verbose=False)
    with pytest.raises(TypeError, match="sampler must have a suggest"):
        Study(SPACE, sampler="random")


def test_nan_and_infinite_values_fail_the_trial_and_keep_why():
    study = Study(SPACE)
    nan = study.tell(study.ask(), float("nan"))
    inf = study.tell(study.ask(), np.float64("inf"))
    assert nan.state is inf.state is TrialState.FAILED
    assert nan.value is None and "nan" in nan.error and "inf" in inf.error


# -- minimize in this process -----------------------------------------------------------------


def test_an_objective_that_raises_or_returns_nan_fails_its_trial_and_the_study_goes_on():
    study = minimize(raises_or_nan, DIGITS, method="grid", n_trials=4, verbose=False)
    states = [t.state for t in study.trials]
    assert states == ["complete", "failed", "complete", "failed"]
    assert study.trials[1].error == "ValueError: diverged at x=1"
    assert "nan" in study.trials[3].error and study.trials[3].value is None
    assert study.best_params == {"x": 0}


def test_grid_runs_the_2x2_example_in_cartesian_order_then_stops():
    study = minimize(grid_loss, GRID_SPACE, method="grid", n_trials=10, verbose=False)
    assert [t.params for t in study.trials] == [
        {"lr": 0.01, "decay": 0.1},
        {"lr": 0.01, "decay": 0.2},
        {"lr": 0.05, "decay": 0.1},
        {"lr": 0.05, "decay": 0.2},
    ]
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    assert study.best_params == {"lr": 0.01, "decay": 0.1}
    assert study.best_value == pytest.approx(0.2)


def test_random_search_is_reproducible_by_seed():
    runs = [minimize(bowl, SPACE, n_trials=6, seed=s, verbose=False) for s in (4, 4, 5)]
    params = [[t.params for t in study.trials] for study in runs]
    assert params[0] == params[1] and params[0] != params[2]
    assert [t.value for t in runs[0].trials] == [t.value for t in runs[1].trials]
    assert params[0] == [sample(SPACE, np.random.default_rng([4, i])) for i in range(6)]


def test_progress_bar_shows_unless_silenced(capsys):
    minimize(bowl, SPACE, n_trials=2, verbose=True)
    assert "trials" in capsys.readouterr().err
    minimize(bowl, SPACE, n_trials=2, verbose=False)
    assert capsys.readouterr().err == ""


def test_an_interrupt_leaves_no_trial_running(tmp_path):
    path = tmp_path / "j.jsonl"
    with pytest.raises(KeyboardInterrupt):
        minimize(interrupts, DIGITS, method="grid", n_trials=4, journal=path, verbose=False)
    (trial,) = Study(DIGITS, journal=path).trials
    assert trial.state is TrialState.FAILED and trial.error.startswith("interrupted")


# -- the journal ------------------------------------------------------------------------------


def test_a_journal_reopened_holds_the_same_trials_and_resumes(tmp_path):
    path = tmp_path / "study.jsonl"
    study = minimize(bowl, SPACE, n_trials=5, seed=2, journal=path, verbose=False)
    extra = Study(SPACE, journal=path)
    trial = extra.ask()
    extra.report(trial, 0, 0.25)
    extra.tell(trial, 0.125)
    lines = _lines(path)
    assert lines[0] == {
        "format": "effdl-hpo-journal",
        "version": 1,
        "direction": "minimize",
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "width": {"type": "int", "low": 8, "high": 64, "log": False},
            "act": {"type": "categorical", "choices": ["relu", "tanh"]},
        },
    }
    assert [line["event"] for line in lines[1:4]] == ["ask", "tell", "ask"]

    reopened = Study(SPACE, journal=path)
    assert reopened.trials[:5] == study.trials  # values, params, seconds: all the same
    assert reopened.trials[5].intermediate == {0: 0.25}
    assert reopened.trials[5].value == 0.125
    # Resuming asks only what is missing: 6 finished, 8 wanted, 2 more, same generators.
    resumed = minimize(bowl, SPACE, n_trials=8, seed=2, journal=path, verbose=False)
    assert resumed.trials[:6] == reopened.trials
    assert len(resumed.trials) == 8
    assert resumed.trials[7].params == sample(SPACE, np.random.default_rng([2, 7]))
    assert minimize(bowl, SPACE, n_trials=8, seed=2, journal=path, verbose=False).trials == (
        resumed.trials
    )


def test_a_journal_refuses_another_direction_space_format_or_version(tmp_path):
    path = tmp_path / "study.jsonl"
    Study(SPACE, journal=path).tell({"lr": 0.01, "width": 16, "act": "relu"}, 1.0)
    with pytest.raises(ValueError, match="direction='minimize', not 'maximize'"):
        Study(SPACE, direction="maximize", journal=path)
    other = {**SPACE, "width": Int(8, 128)}
    with pytest.raises(ValueError, match="another space.*dimension 'width'"):
        Study(other, journal=path)

    old = tmp_path / "old.jsonl"
    header = {"format": "effdl-hpo-journal", "version": 0, "direction": "minimize", "space": {}}
    old.write_text(json.dumps(header) + "\n")
    with pytest.raises(ValueError) as refused:
        Study(SPACE, journal=old)
    message = str(refused.value)
    assert "format version 0" in message and "reads version 1" in message
    assert "start a new journal (a new path) or re-run the study" in message

    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\nnot a journal")
    with pytest.raises(ValueError, match="is not an effdl HPO journal"):
        Study(SPACE, journal=notes)
    assert notes.read_text() == "my notes\nnot a journal"  # left untouched


def test_a_truncated_last_line_is_ignored_and_its_trial_counts_as_interrupted(tmp_path):
    path = tmp_path / "study.jsonl"
    study = minimize(bowl, SPACE, n_trials=3, journal=path, verbose=False)
    study.ask()  # trial 3 asked; the process is "killed" while writing its tell
    with open(path, "a") as file:
        file.write('{"event": "tell", "id": 3, "state": "compl')
    reopened = Study(SPACE, journal=path)
    assert reopened.trials[:3] == study.trials[:3]
    assert reopened.trials[3].state is TrialState.FAILED
    assert reopened.trials[3].error.startswith("interrupted")
    # The cut line is gone and the interrupted tell follows clean: every line parses.
    assert _lines(path)[-1]["error"].startswith("interrupted")
    assert Study(SPACE, journal=path).trials == reopened.trials


def test_a_resumed_grid_asks_the_interrupted_point_again(tmp_path):
    path = tmp_path / "grid.jsonl"
    study = Study(GRID_SPACE, sampler=GridSampler(), journal=path)
    study.tell(study.ask(), 0.3)
    study.ask()  # never told
    resumed = minimize(grid_loss, GRID_SPACE, method="grid", journal=path, verbose=False)
    trials = resumed.trials
    assert trials[1].error.startswith("interrupted")
    assert trials[2].params == trials[1].params and trials[2].state is TrialState.COMPLETE
    finished = [t for t in trials if not (t.error or "").startswith("interrupted")]
    assert len(finished) == 4 and trials[0].value == 0.3  # told before, not re-run


@pytest.mark.timeout(60)
def test_a_killed_study_resumes_without_losing_or_rerunning_trials(tmp_path, monkeypatch):
    (tmp_path / "kill_helpers.py").write_text(
        textwrap.dedent(
            """
            import json, os, time
            from effdl.hpo.space import Float, Int

            SPACE = {"x": Float(-1.0, 1.0), "n": Int(1, 9)}

            def slow_objective(params):
                with open(os.environ["EFFDL_TEST_CALLS"], "a") as calls:
                    calls.write(json.dumps(params) + "\\n")
                time.sleep(0.2)
                return params["x"] ** 2 + params["n"]
            """
        )
    )
    journal, calls = tmp_path / "study.jsonl", tmp_path / "calls.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "EFFDL_TEST_CALLS": str(calls),
    }
    script = (
        "import sys; from kill_helpers import SPACE, slow_objective; "
        "from effdl.hpo.study import minimize; "
        "minimize(slow_objective, SPACE, n_trials=50, seed=5, journal=sys.argv[1], verbose=False)"
    )
    worker = subprocess.Popen([sys.executable, "-c", script, str(journal)], env=env)
    try:
        deadline = time.monotonic() + 40
        complete = []
        while len(complete) < 3:
            assert worker.poll() is None, "the study process ended before it was killed"
            assert time.monotonic() < deadline, "no 3 complete trials in 40 s"
            time.sleep(0.05)
            if journal.exists():
                text = journal.read_text()
                complete = [
                    json.loads(line)
                    for line in text.splitlines()
                    if '"state": "complete"' in line and line.endswith("}")
                ]
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait(timeout=10)
    assert worker.returncode == -signal.SIGKILL
    before = {record["id"]: record["value"] for record in _lines_upto_cut(journal)}
    n_trials = len(before) + 4  # the resumed study has trials left to run, however late the kill

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("EFFDL_TEST_CALLS", str(calls))
    import kill_helpers

    study = minimize(
        kill_helpers.slow_objective,
        kill_helpers.SPACE,
        n_trials=n_trials,
        seed=5,
        journal=journal,
        verbose=False,
    )
    trials = study.trials
    for trial_id, value in before.items():
        assert trials[trial_id].state is TrialState.COMPLETE and trials[trial_id].value == value
    interrupted = [t for t in trials if t.error and t.error.startswith("interrupted")]
    assert len(interrupted) <= 1  # at most the trial in flight when the kill came
    assert len(trials) - len(interrupted) == n_trials
    assert all(t.state is TrialState.COMPLETE for t in trials if t not in interrupted)
    # Every evaluation, before and after the kill, was of a new point: nothing ran twice.
    evaluated = calls.read_text().splitlines()
    assert len(evaluated) == len(set(evaluated)) <= n_trials + len(interrupted)
    for trial in trials:
        if trial not in interrupted:
            assert json.dumps(trial.params) in evaluated
    assert [t.params for t in trials] == [
        sample(kill_helpers.SPACE, np.random.default_rng([5, i])) for i in range(len(trials))
    ]


def _lines_upto_cut(path):
    # The complete tells of a journal whose last line a kill may have cut.
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "tell" and record["state"] == "complete":
            records.append(record)
    return records


# -- executors ----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_process_pool_gives_the_same_trials_as_running_one_after_another():
    sequential = minimize(bowl, SPACE, n_trials=6, seed=11, verbose=False)
    parallel = minimize(bowl, SPACE, n_trials=6, seed=11, n_workers=2, verbose=False)
    assert [t.params for t in parallel.trials] == [t.params for t in sequential.trials]
    assert [t.value for t in parallel.trials] == [t.value for t in sequential.trials]
    assert all(t.state is TrialState.COMPLETE and t.seconds >= 0 for t in parallel.trials)


@pytest.mark.timeout(90)
def test_a_worker_that_dies_fails_only_its_trial_on_the_studys_own_pool():
    study = minimize(exits_at_two, DIGITS, method="grid", n_trials=4, n_workers=2, verbose=False)
    trials = study.trials
    assert [t.params["x"] for t in trials] == [0, 1, 2, 3]  # re-run trials kept their ids
    assert [t.state.value for t in trials] == ["complete", "complete", "failed", "complete"]
    assert "worker died" in trials[2].error and "BrokenProcessPool" in trials[2].error
    assert [trials[i].value for i in (0, 1, 3)] == [0.0, 1.0, 3.0]


@pytest.mark.timeout(60)
def test_a_callers_pool_that_breaks_fails_the_trials_in_flight_and_raises(tmp_path):
    path = tmp_path / "study.jsonl"
    pool = cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    try:
        with pytest.raises(RuntimeError, match="the executor broke.*pass a new executor"):
            minimize(
                exits_at_two,
                DIGITS,
                method="grid",
                executor=pool,
                n_workers=2,
                journal=path,
                verbose=False,
            )
    finally:
        pool.shutdown(wait=True)
    trials = Study(DIGITS, journal=path).trials
    assert trials[2].state is TrialState.FAILED and "worker died" in trials[2].error
    # x=2 was asked once x=0 or x=1 had finished; whatever else was in flight failed with it.
    assert any(t.state is TrialState.COMPLETE for t in trials[:2])
    for trial in trials:
        assert trial.state is TrialState.COMPLETE or "worker died" in trial.error


@pytest.mark.timeout(120)
def test_a_random_study_runs_on_a_dask_local_cluster_and_survives_a_lost_worker():
    distributed = pytest.importorskip("distributed")
    import dask

    sequential = minimize(bowl, SPACE, n_trials=6, seed=3, verbose=False)
    # No retries: a task whose worker dies fails at once with KilledWorker (Dask's default
    # retries it on three more workers first, each one killed in turn).
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        executor = client.get_executor()
        study = minimize(
            bowl, SPACE, n_trials=6, seed=3, executor=executor, n_workers=2, verbose=False
        )
        lost = minimize(
            exits_at_two, DIGITS, method="grid", executor=executor, n_workers=2, verbose=False
        )
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    assert [t.params for t in study.trials] == [t.params for t in sequential.trials]
    assert [t.value for t in study.trials] == [t.value for t in sequential.trials]
    assert isinstance(study.best_trial, Trial)
    # The trial whose worker died fails with Dask's error; the others complete.
    assert [t.state.value for t in lost.trials] == ["complete", "complete", "failed", "complete"]
    assert lost.trials[2].error.startswith("KilledWorker")
