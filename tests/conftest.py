"""Shared test setup: one torch thread per test process, so that two xdist workers share the
two cores of the CI machine instead of fighting over them; and `no_orphans`, which the folders
whose tests start processes (tests/parallel, tests/hpo) turn on for every test."""

import os
import time
from multiprocessing import resource_tracker

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import psutil  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def _descendants() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture(scope="session")
def resource_tracker_running():
    """Start multiprocessing's resource tracker before `no_orphans` counts children: the first
    "spawn" start would start it, and it lives as long as pytest by design."""
    resource_tracker.ensure_running()


@pytest.fixture
def no_orphans(resource_tracker_running):
    """Fail the test if a process it started outlives it (after a grace period of 10 s)."""
    before = _descendants()
    yield
    deadline = time.monotonic() + 10.0
    while True:
        left = set()
        for pid in _descendants() - before:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    left.add(pid)
            except psutil.NoSuchProcess:
                pass
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"processes left behind: {sorted(left)}"
