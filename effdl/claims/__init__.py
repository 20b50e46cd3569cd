"""The reproduction ledger: published claims re-measured on this machine.

`effdl.claims.show("id")` measures one claim and returns its row; `effdl reproduce` runs many.
"""

from effdl.claims.registry import (
    QUICK_SECONDS,
    REGISTRY,
    VERDICTS,
    Claim,
    Outcome,
    claim,
    exact,
    not_comparable,
    per_figure,
    register,
    within,
    within_factor,
    within_points,
    within_printed,
    within_range,
)
from effdl.claims.runner import Result, judge, run, show

__all__ = [
    "QUICK_SECONDS",
    "REGISTRY",
    "VERDICTS",
    "Claim",
    "Outcome",
    "Result",
    "claim",
    "exact",
    "judge",
    "not_comparable",
    "per_figure",
    "register",
    "run",
    "show",
    "within",
    "within_factor",
    "within_points",
    "within_printed",
    "within_range",
]
