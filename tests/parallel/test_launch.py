"""`launch` starts ranks as torchrun does, returns their results, and turns a rank that raises,
dies or overruns into `RankFailed` with the other ranks stopped (no process left behind)."""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.distributed as dist

from effdl.parallel.launch import RankFailed, launch, process_group, rank_and_world

pytestmark = pytest.mark.timeout(120)


def _sum_of_ranks(offset: float) -> tuple[float, int, int, str]:
    with process_group() as (rank, world):
        t = torch.tensor([rank + offset])
        dist.all_reduce(t)
        return float(t), rank, world, os.environ["MASTER_ADDR"]


def _rank_one_raises() -> None:
    if rank_and_world()[0] == 1:
        raise ValueError("rank one gives up")
    time.sleep(60)


def _rank_one_dies() -> None:
    if rank_and_world()[0] == 1:
        os._exit(3)
    time.sleep(60)


def _sleeps() -> None:
    time.sleep(60)


def test_launch_returns_every_ranks_result_in_rank_order():
    results = launch(_sum_of_ranks, 3, (10.0,))
    assert results == [(33.0, r, 3, "127.0.0.1") for r in range(3)]


@pytest.mark.parametrize(
    ("fn", "timeout", "rank", "exitcode", "words"),
    [
        (_rank_one_raises, 60.0, 1, 1, "ValueError: rank one gives up"),
        (_rank_one_dies, 60.0, 1, 3, "exited with code 3"),
        (_sleeps, 2.0, 0, None, "still running after timeout=2 s"),
    ],
)
def test_a_failing_rank_stops_the_others_with_a_clear_error(fn, timeout, rank, exitcode, words):
    start = time.monotonic()
    with pytest.raises(RankFailed, match="stopped") as caught:
        launch(fn, 2, timeout=timeout)
    assert words in str(caught.value)
    assert (caught.value.rank, caught.value.exitcode) == (rank, exitcode)
    # The sleeping rank was stopped, not waited for.
    assert time.monotonic() - start < 40


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"world_size": 0}, "world_size"),
        ({"world_size": 2, "timeout": 0}, "timeout"),
        ({"world_size": 2, "threads": 0}, "threads"),
    ],
)
def test_launch_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        launch(_sleeps, **kwargs)


def test_process_group_outside_a_launch_says_how_to_start(monkeypatch):
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        with process_group():
            pass
    with pytest.raises(ValueError, match="backend"):
        with process_group("mpi"):
            pass
