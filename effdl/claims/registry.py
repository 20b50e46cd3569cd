"""The ledger's data model: a `Claim` is a published figure plus a function that re-measures it
here and a rule that compares the two. Pillar modules register claims with `@claim`; the
runner executes them. Start with `Claim` and `within`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: The verdicts a rule may give; "error" is the runner's, for a measurement that crashed.
VERDICTS = ("reproduced", "close", "differs", "not-comparable", "error")

Figures = Mapping[str, float]


@dataclass(frozen=True)
class Outcome:
    """A verdict and, except for a clean reproduction, the reason for it."""

    verdict: str
    reason: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


VerdictRule = Callable[[Figures, Figures], Outcome]


@dataclass(frozen=True)
class Claim:
    """A published claim: where it is printed, what it says, its figures and how to re-measure.

    `measure()` returns a dict with the keys of `published` (and any extra figures, plus an
    optional "note" string that the ledger prints with the verdict).
    """

    id: str
    source: str
    statement: str
    published: Figures
    measure: Callable[[], dict]
    verdict: VerdictRule
    quick: bool = True
    units: Mapping[str, str] = field(default_factory=dict)


REGISTRY: dict[str, Claim] = {}


def register(new: Claim) -> Claim:
    """Return `new` after adding it to the registry; an id may be registered once."""
    if new.id in REGISTRY:
        raise ValueError(
            f"claim id {new.id!r} is already registered (by {REGISTRY[new.id].source})"
        )
    REGISTRY[new.id] = new
    return new


def claim(
    id: str,
    *,
    source: str,
    statement: str,
    published: Figures,
    verdict: VerdictRule,
    quick: bool = True,
    units: Mapping[str, str] | None = None,
) -> Callable[[Callable[[], dict]], Callable[[], dict]]:
    """Return a decorator that registers the decorated function as the claim's measurement."""

    def decorate(measure: Callable[[], dict]) -> Callable[[], dict]:
        register(
            Claim(id, source, statement, dict(published), measure, verdict, quick, units or {})
        )
        return measure

    return decorate


def within(rel: float, close: float | None = None) -> VerdictRule:
    """Return a rule: reproduced if every figure is within `rel` relative error of the
    published one, close if within `close` (default 3 x rel), else differs."""
    return _tolerance_rule(rel, close if close is not None else 3 * rel, relative=True)


def within_points(points: float, close: float | None = None) -> VerdictRule:
    """Return a rule for percentages: reproduced if every figure is within `points` percentage
    points of the published one, close if within `close` (default 2 x points), else differs."""
    return _tolerance_rule(points, close if close is not None else 2 * points, relative=False)


def exact() -> VerdictRule:
    """Return a rule: reproduced only if every figure equals the published one."""
    return _tolerance_rule(0.0, 0.0, relative=False)


def not_comparable(reason: str) -> VerdictRule:
    """Return a rule that always says not-comparable, with `reason` (e.g. GPU-days vs seconds)."""
    return lambda published, measured: Outcome("not-comparable", reason)


#: The verdicts from worst to best, for rules that combine several outcomes.
SEVERITY = ("error", "differs", "not-comparable", "close", "reproduced")


def per_figure(rules: Mapping[str, VerdictRule]) -> VerdictRule:
    """Return a rule that judges each group of figures by its own rule; the worst verdict wins.

    `rules` maps a figure's key to the rule that judges it; the rule under "*" judges every
    figure not named.
    """

    def rule(published: Figures, measured: Figures) -> Outcome:
        outcomes = []
        for name, sub_rule in rules.items():
            keys = [k for k in published if k == name or (name == "*" and k not in rules)]
            if keys:
                outcomes.append(sub_rule({k: published[k] for k in keys}, measured))
        worst = min(outcomes, key=lambda o: SEVERITY.index(o.verdict))
        reasons = "; ".join(o.reason for o in outcomes if o.reason)
        return Outcome(worst.verdict, reasons)

    return rule


def within_printed(rel: float, printed_unit: Mapping[str, float]) -> VerdictRule:
    """Return a rule: reproduced if every figure is within `rel` relative error plus half the
    unit the paper prints it to (so a figure rounded to 0.1M is not held to 2% of 0.5M), close
    within 3 times that, else differs. `printed_unit` maps a key suffix to its unit."""

    def allowed(key: str, want: float) -> float:
        unit = next((u for suffix, u in printed_unit.items() if key.endswith(suffix)), 0.0)
        return rel * abs(want) + unit / 2

    def rule(published: Figures, measured: Figures) -> Outcome:
        missing = [k for k in published if k not in measured]
        if missing:
            return Outcome("differs", f"measurement lacks {missing}")
        score = {k: abs(float(measured[k]) - p) / allowed(k, p) for k, p in published.items()}
        worst = max(score, key=score.get)
        describe = (
            f"worst {worst}: {float(measured[worst]):g} vs {published[worst]:g} "
            f"(allowed +-{allowed(worst, published[worst]):.3g})"
        )
        if all(s <= 1 for s in score.values()):
            return Outcome("reproduced", "")
        if all(s <= 3 for s in score.values()):
            return Outcome("close", f"within 3x the allowed gap, not 1x; {describe}")
        return Outcome("differs", f"beyond 3x the allowed gap; {describe}")

    return rule


def _tolerance_rule(tol: float, close: float, *, relative: bool) -> VerdictRule:
    if tol < 0 or close < tol:
        raise ValueError(f"tolerances must satisfy 0 <= tol <= close, got {tol} and {close}")
    unit = "relative" if relative else "absolute"

    def rule(published: Figures, measured: Figures) -> Outcome:
        missing = [k for k in published if k not in measured]
        if missing:
            return Outcome("differs", f"measurement lacks {missing}")
        gaps = {}
        for key, want in published.items():
            got = float(measured[key])
            gap = abs(got - want)
            gaps[key] = gap / abs(want) if relative and want != 0 else gap
        worst = max(gaps, key=gaps.get)
        describe = (
            f"{worst}: {measured[worst]:g} vs {published[worst]:g} ({gaps[worst]:.1%} off)"
            if relative
            else f"{worst}: {measured[worst]:g} vs {published[worst]:g} ({gaps[worst]:.2g} off)"
        )
        if all(g <= tol or math.isclose(g, tol) for g in gaps.values()):
            return Outcome("reproduced", "")
        if all(g <= close for g in gaps.values()):
            return Outcome("close", f"within {close:g} {unit}, not {tol:g}; worst {describe}")
        return Outcome("differs", f"beyond {close:g} {unit}; worst {describe}")

    return rule
