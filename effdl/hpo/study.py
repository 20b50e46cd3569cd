"""A study: the trials of one hyper-parameter search, asked and told one at a time (a sampler
proposes, the caller evaluates), optionally kept in an append-only JSON-lines journal so that a
killed search resumes where it stopped. `minimize` runs a whole search on any
`concurrent.futures.Executor` (a process pool here, a Dask cluster across machines). Start with
`Study.ask` and `Study.tell`, then `minimize`.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import enum
import json
import math
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from effdl._checks import check_in, check_non_negative_int, check_positive_int
from effdl.hpo.bo import BOSampler
from effdl.hpo.grid import GridSampler
from effdl.hpo.random_search import RandomSampler
from effdl.hpo.space import Categorical, Float, Int, Space, check_params, check_space

#: The first line of every journal names this format and the version below.
JOURNAL_FORMAT = "effdl-hpo-journal"
#: The journal layout this module writes and reads; bump it when the layout changes.
JOURNAL_VERSION = 1
#: The directions a study optimises in.
DIRECTIONS = ("minimize", "maximize")
#: The search methods `minimize` knows by name (any object with `.suggest` works too): those
#: that ask a sampler for each trial, objective(params), and the multi-fidelity ones of
#: `effdl.hpo.hyperband`, objective(params, resource).
SAMPLER_METHODS = ("grid", "random", "bo")
MULTI_FIDELITY_METHODS = ("sha", "hyperband")
METHODS = SAMPLER_METHODS + MULTI_FIDELITY_METHODS
#: The start of the error of a trial asked but never told; `GridSampler` asks such a point again.
INTERRUPTED = "interrupted"


class TrialState(enum.StrEnum):
    """The state of a trial: running until told, then complete, pruned or failed (a `str`, so
    `str(TrialState.FAILED) == "failed"`, as a journal and the samplers read it).

    Source: Golovin et al. 2017, "Google Vizier: A Service for Black-Box Optimization", KDD,
    section 2 (trials and their states).
    """

    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"


@dataclass
class Trial:
    """One evaluation of the objective: its id (0, 1, 2, ... in the order asked), its params,
    its state, its final value (None until complete, or when failed), the intermediate values
    reported per step, the error of a failed trial and the wall time of the evaluation in
    seconds when known. The study hands out copies: change the study with `report` and `tell`.

    Source: Golovin et al. 2017, "Google Vizier", section 2 (a trial: parameters, status,
    final and intermediate measurements).
    """

    id: int
    params: dict[str, Any]
    state: TrialState
    value: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float | None = None


class Study:
    """Holds the trials of one search over `space`: `ask` returns a new trial whose params the
    sampler suggests (define-by-run: the caller evaluates them however it likes), `report`
    records intermediate values, `tell` finishes it; `best_trial` is the best complete one.

    Parameters
    ----------
    space : {name: Float | Int | Categorical}, the search space.
    direction : "minimize" or "maximize".
    sampler : any object with `suggest(space, trials, rng) -> dict | None`; RandomSampler() if
        None. Trial `i` gets the generator `np.random.default_rng([seed, i])`, so its params do
        not depend on the order in which parallel trials finish, and a resumed study draws as
        an uninterrupted one would.
    seed : int >= 0.
    journal : None (trials kept in memory) or a path. A new file gets a header line, then one
        line per ask, report and tell, each flushed and fsync'ed; an existing journal is
        replayed (its direction and space must match), and a trial asked but never told is
        marked failed with an error that starts with "interrupted". One process writes a
        journal at a time: opening a journal that a live study still writes marks its running
        trials interrupted.

    Source: Akiba et al. 2019, "Optuna: A Next-generation Hyperparameter Optimization
    Framework", KDD, section 2 (define-by-run, the ask-and-tell interface); Golovin et al. 2017,
    "Google Vizier", section 2 (studies, trials, persistent state).
    """

    def __init__(
        self,
        space: Space,
        *,
        direction: str = "minimize",
        sampler: Any = None,
        seed: int = 0,
        journal: str | os.PathLike | None = None,
    ) -> None:
        self._space = check_space(space)
        self._direction = check_in("direction", direction, DIRECTIONS)
        self._sampler = RandomSampler() if sampler is None else sampler
        if not callable(getattr(self._sampler, "suggest", None)):
            raise TypeError(
                "sampler must have a suggest(space, trials, rng) method, "
                f"got {type(self._sampler).__name__}"
            )
        self._seed = check_non_negative_int("seed", seed)
        self._trials: list[Trial] = []
        self._asked_at: dict[int, float] = {}
        self._journal: Path | None = None
        if journal is not None:
            if not isinstance(journal, str | os.PathLike):
                raise TypeError(f"journal must be None or a path, got {type(journal).__name__}")
            self._journal = Path(journal)
            self._open_journal()

    # -- the ask-and-tell interface ------------------------------------------------------------

    def ask(self, params: Mapping[str, Any] | None = None) -> Trial | None:
        """Return a new RUNNING trial with the given `params` (checked against the space) or,
        with None, with the params the sampler suggests; return None if the sampler has
        nothing left to try.

        Source: Akiba et al. 2019, "Optuna", section 2 (ask-and-tell).
        """
        trial_id = len(self._trials)
        if params is None:
            rng = np.random.default_rng([self._seed, trial_id])
            params = self._sampler.suggest(self._space, self.trials, rng)
            if params is None:
                return None
        params = check_params(self._space, params)
        # Journal first: a trial exists in memory only once it is on disk.
        self._log({"event": "ask", "id": trial_id, "params": _encode_params(self._space, params)})
        trial = Trial(trial_id, params, TrialState.RUNNING)
        self._trials.append(trial)
        self._asked_at[trial_id] = time.perf_counter()
        return _copy(trial)

    def report(self, trial_or_id: Trial | int, step: int, value: float) -> None:
        """Return None once `value` is recorded as the intermediate value of a RUNNING trial at
        `step` (an epoch, a budget). A step may be reported once; the value must be finite.

        Source: Golovin et al. 2017, "Google Vizier", section 2 (intermediate measurements,
        which early stopping reads).
        """
        trial = self._trial(trial_or_id)
        if trial.state is not TrialState.RUNNING:
            raise ValueError(
                f"report needs a running trial; trial {trial.id} was already told "
                f"({trial.state.value})"
            )
        step = check_non_negative_int("step", step)
        number = _as_float("value", value)
        if number is None or not math.isfinite(number):
            raise ValueError(
                f"value must be a finite number, got {value!r}; tell the trial failed instead"
            )
        if step in trial.intermediate:
            raise ValueError(f"trial {trial.id} already has a value at step {step}")
        self._log({"event": "report", "id": trial.id, "step": step, "value": number})
        trial.intermediate[step] = number

    def tell(
        self,
        trial_or_id: Trial | int | Mapping[str, Any],
        value: float | None = None,
        *,
        state: TrialState | str = TrialState.COMPLETE,
        error: str | None = None,
        seconds: float | None = None,
    ) -> Trial:
        """Return the trial `trial_or_id` finished with `value` and `state`.

        A params dict in place of a trial records a trial evaluated outside the study (asked
        and told at once). A value that is NaN or infinite, or an `error` string, makes the
        trial FAILED and keeps the error; COMPLETE needs a finite value; a PRUNED trial without
        a value keeps its last intermediate value. `seconds` is the evaluation's wall time
        (by default the time since `ask` in this process). A trial is told once.

        Source: Akiba et al. 2019, "Optuna", section 2 (ask-and-tell); Golovin et al. 2017,
        "Google Vizier", section 2 (trial states).
        """
        if isinstance(trial_or_id, Mapping):
            # Check everything before the trial is asked, so bad input records nothing.
            check_params(self._space, trial_or_id)
            _outcome("a new trial", {}, value, state, error)
            trial_or_id = self.ask(trial_or_id)
            self._asked_at.pop(trial_or_id.id)  # evaluated elsewhere: its time is unknown
        trial = self._trial(trial_or_id)
        if trial.state is not TrialState.RUNNING:
            raise ValueError(f"trial {trial.id} was already told ({trial.state.value})")
        state, number, error = _outcome(
            f"trial {trial.id}", trial.intermediate, value, state, error
        )
        if seconds is None and trial.id in self._asked_at:
            seconds = time.perf_counter() - self._asked_at[trial.id]
        seconds = None if seconds is None else _as_float("seconds", seconds)
        self._log(
            {
                "event": "tell",
                "id": trial.id,
                "state": state.value,
                "value": number,
                "error": error,
                "seconds": seconds,
            }
        )
        trial.state, trial.value, trial.error, trial.seconds = state, number, error, seconds
        self._asked_at.pop(trial.id, None)
        return _copy(trial)

    # -- what a caller reads ------------------------------------------------------------------

    @property
    def trials(self) -> list[Trial]:
        """Return copies of all trials in id order."""
        return [_copy(trial) for trial in self._trials]

    @property
    def best_trial(self) -> Trial:
        """Return the complete trial with the best value (the lowest id among ties); raise
        ValueError if no trial is complete."""
        complete = [t for t in self._trials if t.state is TrialState.COMPLETE]
        if not complete:
            counts = {s.value: 0 for s in TrialState}
            for t in self._trials:
                counts[t.state.value] += 1
            held = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"
            raise ValueError(f"best_trial needs at least one complete trial; the study has {held}")
        pick = min if self._direction == "minimize" else max
        return _copy(pick(complete, key=lambda t: t.value))

    @property
    def best_value(self) -> float:
        """Return the value of `best_trial`."""
        return self.best_trial.value

    @property
    def best_params(self) -> dict[str, Any]:
        """Return the params of `best_trial`."""
        return self.best_trial.params

    @property
    def direction(self) -> str:
        """Return "minimize" or "maximize"."""
        return self._direction

    @property
    def space(self) -> dict:
        """Return (a copy of) the search space."""
        return dict(self._space)

    @property
    def seed(self) -> int:
        """Return the seed of the per-trial generators."""
        return self._seed

    @property
    def journal(self) -> Path | None:
        """Return the journal's path, or None for a study kept in memory."""
        return self._journal

    def __repr__(self) -> str:
        told = sum(t.state is not TrialState.RUNNING for t in self._trials)
        return (
            f"Study(direction={self._direction!r}, trials={len(self._trials)}, told={told}, "
            f"sampler={self._sampler!r}, journal={self._journal})"
        )

    # -- helpers ------------------------------------------------------------------------------

    def _trial(self, trial_or_id: Any) -> Trial:
        trial_id = trial_or_id.id if isinstance(trial_or_id, Trial) else trial_or_id
        if isinstance(trial_id, bool) or not isinstance(trial_id, int | np.integer):
            raise TypeError(
                f"trial_or_id must be a Trial, a trial id or a params dict, got {trial_or_id!r}"
            )
        if not 0 <= trial_id < len(self._trials):
            last = len(self._trials) - 1
            raise ValueError(f"trial_or_id {trial_id} names no trial; the study has ids 0..{last}")
        return self._trials[int(trial_id)]

    def _log(self, record: dict) -> None:
        if self._journal is not None:
            _append(self._journal, record)

    def _open_journal(self) -> None:
        path = self._journal
        header = {
            "format": JOURNAL_FORMAT,
            "version": JOURNAL_VERSION,
            "direction": self._direction,
            "space": _describe_space(self._space),
        }
        records = _read_journal(path)
        if not records:
            _append(path, header)
            return
        _check_header(path, records[0][1], header)
        for line, record in records[1:]:
            try:
                self._replay(record)
            except (KeyError, TypeError, ValueError, IndexError) as error:
                raise ValueError(
                    f"journal {path} line {line} is damaged ({type(error).__name__}: {error}); "
                    "start a new journal (a new path) or re-run the study"
                ) from None
        for trial in self._trials:
            if trial.state is TrialState.RUNNING:
                self.tell(
                    trial.id,
                    state=TrialState.FAILED,
                    error=f"{INTERRUPTED}: asked but never told (the process running the "
                    "study stopped before the trial finished)",
                )

    def _replay(self, record: dict) -> None:
        event = record["event"]
        if event == "ask":
            if record["id"] != len(self._trials):
                raise ValueError(f"ask of trial {record['id']} after {len(self._trials)} trials")
            params = _decode_params(self._space, record["params"])
            self._trials.append(Trial(len(self._trials), params, TrialState.RUNNING))
        elif event == "report":
            trial = self._trials[record["id"]]
            trial.intermediate[int(record["step"])] = float(record["value"])
        elif event == "tell":
            trial = self._trials[record["id"]]
            # A second tell can only come from a live study that kept writing after another
            # process opened the journal and marked its trial interrupted: the first one stands.
            if trial.state is TrialState.RUNNING:
                trial.state = TrialState(record["state"])
                trial.value = None if record["value"] is None else float(record["value"])
                trial.error = record["error"]
                trial.seconds = None if record["seconds"] is None else float(record["seconds"])
        else:
            raise ValueError(f"unknown event {event!r}")


def minimize(
    objective: Callable[..., float],
    space: Space,
    *,
    method: str | Any = "random",
    n_trials: int | None = None,
    seed: int = 0,
    direction: str = "minimize",
    executor: cf.Executor | None = None,
    n_workers: int = 1,
    journal: str | os.PathLike | None = None,
    verbose: bool = True,
    max_resource: int | None = None,
    min_resource: int = 1,
    eta: int = 3,
) -> Study:
    """Return the study of a search for the best `objective(params)` over `space`.

    The study runs until it holds `n_trials` finished trials (complete, pruned or failed,
    interrupted ones not counted) or the method has nothing left to try. With a `journal` that
    already holds trials it resumes: no finished trial is lost or run again.

    Parameters
    ----------
    objective : params -> float, a module-level function (it pickles for worker processes).
        One that raises, returns NaN or something that is not a number makes its trial FAILED
        with the error kept; the study goes on. For "sha" and "hyperband" it is
        (params, resource) -> float instead: the value after `resource` units (epochs).
    method : "grid" (GridSampler()), "random" (RandomSampler()), "bo" (BOSampler(direction=
        direction): Bayesian optimisation) or any object with `suggest`; or "sha"
        (`successive_halving` with n = n_trials, r_min = min_resource, r_max = max_resource)
        or "hyperband" (`hyperband`; the brackets set the number of trials, so n_trials must
        be None). These two run in this process (no executor, n_workers=1) and start a new
        study (a journal that already holds trials is refused: they do not resume).
    n_trials : the number of finished trials; None: 20, or eta**k for "sha".
    seed, direction, journal : as in `Study`.
    executor, n_workers : with neither, trials run one after another in this process. With
        `n_workers > 1` and no executor, the study runs them on its own process pool
        (spawned), replaces the pool if a worker dies, and runs the trials that were in flight
        again, one at a time, so that the one that kills a worker is found and marked FAILED.
        With an `executor` (any `concurrent.futures.Executor`, e.g. a Dask
        `Client(...).get_executor()`), it keeps `n_workers` trials in flight on it; a future
        that raises (a Dask worker lost) fails its trial, and a broken caller's pool fails the
        trials in flight on it and raises RuntimeError.
    verbose : a `tqdm.auto` progress bar over finished trials.
    max_resource, min_resource, eta : for "sha" and "hyperband" only, as in
        `effdl.hpo.hyperband`.

    Source: Akiba et al. 2019, "Optuna", section 2 (a study run by ask and tell); Python docs,
    "concurrent.futures: Launching parallel tasks" (Executor, wait, BrokenProcessPool); Dask
    documentation, "distributed: Futures", `Client.get_executor` (a concurrent.futures
    Executor on a cluster); Snoek et al. 2012 (method="bo"); Li et al. 2018, "Hyperband",
    JMLR (method="sha" and "hyperband").
    """
    if not callable(objective):
        raise TypeError(f"objective must be callable, got {type(objective).__name__}")
    if isinstance(method, str) and method in MULTI_FIDELITY_METHODS:
        # Here, not at the top: effdl.hpo.hyperband builds on this module.
        from effdl.hpo.hyperband import _minimize_multi_fidelity

        return _minimize_multi_fidelity(
            objective,
            space,
            method=method,
            n_trials=n_trials,
            seed=seed,
            direction=direction,
            executor=executor,
            n_workers=n_workers,
            journal=journal,
            verbose=verbose,
            max_resource=max_resource,
            min_resource=min_resource,
            eta=eta,
        )
    sampler = _sampler_for(method, direction)
    if max_resource is not None:
        raise ValueError(
            f"max_resource is for method 'sha' or 'hyperband', got max_resource={max_resource!r} "
            f"with method={method!r}"
        )
    n_trials = check_positive_int("n_trials", 20 if n_trials is None else n_trials)
    n_workers = check_positive_int("n_workers", n_workers)
    if executor is not None and not isinstance(executor, cf.Executor):
        raise TypeError(
            f"executor must be None or a concurrent.futures.Executor, got {type(executor).__name__}"
        )
    if not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True or False, got {verbose!r}")
    in_process = executor is None and n_workers == 1
    if (executor is None and not in_process) or isinstance(executor, cf.ProcessPoolExecutor):
        _check_pickles(objective)
    study = Study(space, direction=direction, sampler=sampler, seed=seed, journal=journal)
    finished = _n_finished(study)
    if finished >= n_trials:
        return study
    with tqdm(
        total=n_trials, initial=finished, desc="trials", unit="trial", disable=not verbose
    ) as progress:
        if in_process:
            _run_in_process(study, objective, n_trials, progress)
        else:
            _run_on_executor(study, objective, n_trials, executor, n_workers, progress)
    return study


# -- running trials ---------------------------------------------------------------------------


def _evaluate(
    objective: Callable[[dict[str, Any]], float], params: dict[str, Any], trial_id: int
) -> tuple[float | None, str | None, float]:
    # Runs where the trial runs (this process or a worker) and returns plain values, so that an
    # objective's own exception never reaches the executor: only a dead worker does.
    # `trial_id` is unused here; it makes every trial a distinct task for Dask, which names a
    # task after its function and arguments and would share one result between equal calls.
    start = time.perf_counter()
    try:
        result = objective(params)
    except Exception as error:
        return None, f"{type(error).__name__}: {error}", time.perf_counter() - start
    seconds = time.perf_counter() - start
    try:
        value = _as_float("value", result)
    except TypeError:
        return None, f"objective returned {result!r}, not a number", seconds
    if value is None or not math.isfinite(value):
        return None, f"objective returned {value}, not a finite number", seconds
    return value, None, seconds


def _run_in_process(study: Study, objective: Callable, n_trials: int, progress: tqdm) -> None:
    while _n_finished(study) < n_trials:
        trial = study.ask()
        if trial is None:
            return
        try:
            value, error, seconds = _evaluate(objective, trial.params, trial.id)
        except BaseException as stop:  # KeyboardInterrupt: leave no trial running
            study.tell(trial.id, state=TrialState.FAILED, error=_interrupted_by(stop))
            raise
        study.tell(trial.id, value, error=error, seconds=seconds)
        _advance(progress, study)


def _run_on_executor(
    study: Study,
    objective: Callable,
    n_trials: int,
    executor: cf.Executor | None,
    n_workers: int,
    progress: tqdm,
) -> None:
    owns_pool = executor is None
    pool = _spawn_pool(n_workers) if owns_pool else executor
    running: dict[cf.Future, Trial] = {}
    # Trials in flight when our pool broke: a pool's death fails every future on it, so these
    # run again one at a time; the one that breaks the pool while alone is the culprit.
    suspects: list[Trial] = []
    exhausted = False
    clean_exit = False
    try:
        while True:
            if suspects:
                if not running:
                    trial = suspects.pop(0)
                    running[_submit(study, pool, objective, trial)] = trial
            else:
                while (
                    not exhausted
                    and len(running) < n_workers
                    and _n_finished(study) + len(running) < n_trials
                ):
                    trial = study.ask()
                    if trial is None:
                        exhausted = True
                        break
                    running[_submit(study, pool, objective, trial)] = trial
            if not running:
                break
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            broken = _collect(study, running, done, progress)
            if broken and running:
                # The pool fails the other futures too, an instant later: collect them all.
                cf.wait(running, timeout=60)
                broken += _collect(study, running, list(running), progress)
            if not broken:
                continue
            reason = f"worker died: {type(broken[0][1]).__name__}: {broken[0][1]}"
            if not owns_pool:
                for trial, _error in broken:
                    study.tell(trial.id, state=TrialState.FAILED, error=reason)
                    _advance(progress, study)
                raise RuntimeError(
                    f"the executor broke ({reason}); trials {[t.id for t, _ in broken]} were "
                    "marked failed. minimize replaces a broken pool only when it owns it "
                    "(executor=None, n_workers > 1); to go on, pass a new executor and the same "
                    "journal"
                ) from broken[0][1]
            pool.shutdown(wait=True)
            pool = _spawn_pool(n_workers)
            if len(broken) == 1:
                study.tell(broken[0][0].id, state=TrialState.FAILED, error=reason)
                _advance(progress, study)
            else:
                suspects.extend(sorted((t for t, _ in broken), key=lambda t: t.id))
        clean_exit = True
    except BaseException as stop:
        for trial in [*running.values(), *suspects]:
            study.tell(trial.id, state=TrialState.FAILED, error=_interrupted_by(stop))
        raise
    finally:
        if owns_pool:
            pool.shutdown(wait=clean_exit, cancel_futures=True)


def _collect(
    study: Study, running: dict[cf.Future, Trial], done: Any, progress: tqdm
) -> list[tuple[Trial, BaseException]]:
    # Tells the trials of the finished futures in `done`; returns those whose pool broke.
    broken = []
    for future in done:
        if not future.done():
            broken.append((running.pop(future), cf.BrokenExecutor("no answer after the break")))
            continue
        trial = running.pop(future)
        try:
            value, error, seconds = future.result()
        except cf.BrokenExecutor as dead:
            broken.append((trial, dead))
            continue
        except Exception as lost:  # a Dask worker lost, a task cancelled, an unpicklable result
            value, error, seconds = None, f"{type(lost).__name__}: {lost}", None
        study.tell(trial.id, value, error=error, seconds=seconds)
        _advance(progress, study)
    return broken


def _submit(study: Study, pool: cf.Executor, objective: Callable, trial: Trial) -> cf.Future:
    try:
        return pool.submit(_evaluate, objective, trial.params, trial.id)
    except cf.BrokenExecutor as dead:  # broke while idle: handled as if the trial broke it
        future: cf.Future = cf.Future()
        future.set_exception(dead)
        return future
    except BaseException as refused:  # a shut-down executor: the trial never ran
        error = f"{INTERRUPTED}: the executor refused it ({type(refused).__name__}: {refused})"
        study.tell(trial.id, state=TrialState.FAILED, error=error)
        raise


def _spawn_pool(n_workers: int) -> cf.ProcessPoolExecutor:
    # "spawn": a fresh interpreter per worker, safe with torch's threads (fork is not).
    return cf.ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"))


def _advance(progress: tqdm, study: Study) -> None:
    progress.update(1)
    if any(t.state is TrialState.COMPLETE for t in study._trials):
        progress.set_postfix(best=f"{study.best_value:.4g}", refresh=False)


def _n_finished(study: Study) -> int:
    return sum(
        t.state is not TrialState.RUNNING and not (t.error or "").startswith(INTERRUPTED)
        for t in study._trials
    )


def _interrupted_by(stop: BaseException) -> str:
    return f"{INTERRUPTED}: {type(stop).__name__} stopped the study while the trial ran"


def _sampler_for(method: Any, direction: str) -> Any:
    # A method named by a string gets a new sampler; "bo" models the objective, so it learns
    # the study's direction (an unknown direction is refused by BOSampler as by Study).
    if isinstance(method, str):
        if method == "grid":
            return GridSampler()
        if method == "random":
            return RandomSampler()
        if method == "bo":
            return BOSampler(direction=direction)
    elif callable(getattr(method, "suggest", None)):
        return method
    raise ValueError(
        f"method must be one of {SAMPLER_METHODS} (objective(params)) or "
        f"{MULTI_FIDELITY_METHODS} (objective(params, resource)), or an object with a "
        f"suggest(space, trials, rng) method, got {method!r}"
    )


def _outcome(
    label: str, intermediate: dict[int, float], value: Any, state: Any, error: Any
) -> tuple[TrialState, float | None, str | None]:
    # The (state, value, error) that `tell` records; raises on input it cannot record.
    try:
        state = TrialState(state)
    except ValueError:
        allowed = [s.value for s in TrialState if s is not TrialState.RUNNING]
        raise ValueError(f"state must be one of {allowed}, got {state!r}") from None
    if state is TrialState.RUNNING:
        raise ValueError("state must be complete, pruned or failed, got running")
    if error is not None and not isinstance(error, str):
        raise TypeError(f"error must be None or a str, got {type(error).__name__}")
    number = _as_float("value", value)
    finite = number is not None and math.isfinite(number)
    if error or state is TrialState.FAILED:
        return TrialState.FAILED, number if finite else None, error
    if number is None and state is TrialState.COMPLETE:
        raise ValueError(
            f"tell needs a finite value to mark {label} complete, got None; "
            "pass state='failed' or an error for a trial that produced no value"
        )
    if number is None:  # pruned without a value: its last intermediate value, as in Optuna
        return state, intermediate[max(intermediate)] if intermediate else None, None
    if not finite:
        return TrialState.FAILED, None, f"value is {number}, not a finite number"
    return state, number, None


def _check_pickles(objective: Callable) -> None:
    try:
        pickle.dumps(objective)
    except Exception as error:
        raise TypeError(
            "objective must pickle to run in worker processes (a function defined at the top "
            f"level of a module, not a lambda or a nested function), got {objective!r}: {error}"
        ) from None


def _as_float(name: str, value: Any) -> float | None:
    # numbers, numpy scalars and one-element tensors become floats; None stays None.
    if value is None:
        return None
    if isinstance(value, bool | str | bytes):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None


def _copy(trial: Trial) -> Trial:
    return dataclasses.replace(
        trial, params=dict(trial.params), intermediate=dict(trial.intermediate)
    )


# -- the journal ------------------------------------------------------------------------------


def _append(path: Path, record: dict) -> None:
    # One write per line, flushed and fsync'ed, so a kill loses at most the line being written.
    line = json.dumps(record, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as file:
        file.write(line)
        file.flush()
        os.fsync(file.fileno())


def _read_journal(path: Path) -> list[tuple[int, dict]]:
    # Returns [(line number, record)], the header first, or [] for a missing or empty file.
    # A last line without its newline was cut by a kill: it is dropped from the file, so the
    # next line starts clean (unless it is whole, when only its newline was lost).
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()
    prefix = f'{{"format": "{JOURNAL_FORMAT}"'.encode()
    if not lines and (prefix.startswith(tail) or tail.startswith(prefix)) and not _parses(tail):
        path.write_bytes(b"")  # only a cut header was written: start again
        return []
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError as error:
            if number == 1:
                raise ValueError(_not_a_journal(path)) from None
            raise ValueError(
                f"journal {path} line {number} is not valid JSON ({error}); the file is damaged: "
                "start a new journal (a new path) or re-run the study"
            ) from None
        if number == 1 and not _is_header(record):
            raise ValueError(_not_a_journal(path))
        records.append((number, record))
    if tail:
        if not records and not _is_header(_parses(tail)):
            raise ValueError(_not_a_journal(path))
        if _parses(tail):
            records.append((len(lines) + 1, json.loads(tail)))
            with open(path, "ab") as file:
                file.write(b"\n")
        else:
            os.truncate(path, len(data) - len(tail))
    return records


def _parses(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _is_header(record: Any) -> bool:
    return isinstance(record, dict) and record.get("format") == JOURNAL_FORMAT


def _not_a_journal(path: Path) -> str:
    return (
        f"{path} is not an effdl HPO journal (its first line is not a header with format "
        f"{JOURNAL_FORMAT!r}); pass a new path to start a journal"
    )


def _check_header(path: Path, found: dict, expected: dict) -> None:
    from effdl import __version__

    if found.get("version") != JOURNAL_VERSION:
        raise ValueError(
            f"journal {path} is format version {found.get('version')}; effdl {__version__} reads "
            f"version {JOURNAL_VERSION}: start a new journal (a new path) or re-run the study"
        )
    if found.get("direction") != expected["direction"]:
        raise ValueError(
            f"journal {path} holds a study with direction={found.get('direction')!r}, not "
            f"{expected['direction']!r}: open it with the same direction, or use a new path"
        )
    theirs, ours = found.get("space"), json.loads(json.dumps(expected["space"]))
    if not isinstance(theirs, dict) or list(theirs.items()) != list(ours.items()):
        theirs = theirs if isinstance(theirs, dict) else {}
        if list(theirs) != list(ours):
            what = f"dimensions {list(theirs)} there and {list(ours)} here"
        else:
            name = next(n for n in ours if theirs[n] != ours[n])
            what = f"dimension {name!r} is {theirs[name]} there and {ours[name]} here"
        raise ValueError(
            f"journal {path} holds a study over another space ({what}): open it with the same "
            "space, or use a new path"
        )


def _describe_space(space: dict) -> dict[str, dict]:
    described = {}
    for name, dim in space.items():
        if isinstance(dim, Categorical):
            for choice in dim.choices:
                if not _json_exact(choice):
                    raise TypeError(
                        f"a journal stores space[{name!r}]'s choices as JSON, and {choice!r} "
                        "is not a JSON str, int, float, bool or None"
                    )
            described[name] = {"type": "categorical", "choices": list(dim.choices)}
        else:
            kind = "float" if isinstance(dim, Float) else "int"
            described[name] = {"type": kind, "low": dim.low, "high": dim.high, "log": dim.log}
    return described


def _json_exact(value: Any) -> bool:
    # A value survives a JSON round trip with its type: str, int, finite float, bool, None.
    if type(value) is float:
        return math.isfinite(value)
    return type(value) in (type(None), str, bool, int)


def _encode_params(space: dict, params: dict) -> dict:
    encoded = {}
    for name, dim in space.items():
        value = params[name]
        if isinstance(dim, Float):
            value = float(value)
        elif isinstance(dim, Int):
            value = int(value)
        encoded[name] = value
    return encoded


def _decode_params(space: dict, stored: dict) -> dict:
    # JSON gives back ints and floats as such; a Categorical value becomes its own choice
    # object again (the one whose type and value match).
    decoded = {}
    for name, value in stored.items():
        dim = space.get(name)
        if isinstance(dim, Float):
            value = float(value)
        elif isinstance(dim, Categorical):
            value = dim.choices[dim.index(value)]
        decoded[name] = value
    return check_params(space, decoded)
