"""Every HPO test runs under `no_orphans` (tests/conftest.py): the worker processes, Dask
workers and subprocesses a study test starts must all be gone when it ends, whether it passed,
raised or timed out."""

import pytest


@pytest.fixture(autouse=True)
def _every_test_leaves_no_orphans(no_orphans):
    yield
