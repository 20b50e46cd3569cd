"""Shared test setup: one torch thread per test process, so that two xdist workers share the
two cores of the CI machine instead of fighting over them."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
