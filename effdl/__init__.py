"""effdl: a teaching and reproduction kit for efficient deep learning.

The names a notebook reaches for most are here; each technique lives in its own module
(`effdl.data`, `effdl.models`, `effdl.claims`, ...).
"""

from effdl.measure import count_macs, count_params, cpu_latency, pareto_front, profile
from effdl.train import evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "count_macs",
    "count_params",
    "cpu_latency",
    "evaluate",
    "fit",
    "pareto_front",
    "profile",
]
