"""Every HPO test runs under `no_orphans`: the worker processes, Dask workers and subprocesses a
study test starts must all be gone when it ends, whether it passed, raised or timed out."""

from __future__ import annotations

import time
from multiprocessing import resource_tracker

import psutil
import pytest


def _descendants() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture(scope="session", autouse=True)
def resource_tracker_running():
    """Start multiprocessing's resource tracker before `no_orphans` counts children: the first
    "spawn" start would start it, and it lives as long as pytest by design."""
    resource_tracker.ensure_running()


@pytest.fixture(autouse=True)
def no_orphans(resource_tracker_running):
    """Fail the test if a process it started outlives it (after a short grace period)."""
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
