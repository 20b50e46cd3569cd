"""The ledger's data model: a `Claim` is a published figure plus a function that re-measures it
here and a rule that compares the two. Pillar modules register claims with `@claim`; the
runner executes them. Start with `Claim` and `within`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: What a verdict rule may conclude about the claim's own protocol.
RULE_VERDICTS = ("reproduced", "close", "differs", "not-comparable")
#: Appended to a rule's verdict when the figures come from a smaller run than the claim's own
#: protocol (fewer steps or seeds, a subset): "reproduced (reduced run)" is not "reproduced".
REDUCED_RUN = " (reduced run)"
#: Every verdict a ledger row may carry: a rule's verdict, the same for a reduced run, and
#: "error", the runner's, for a measurement that crashed.
VERDICTS = (*RULE_VERDICTS, "error", *(v + REDUCED_RUN for v in RULE_VERDICTS))
#: A claim expected to finish within this many seconds (2 CPU cores, one torch thread) is quick.
#: Half a minute keeps the quick set well under its budget as the pillars add claims.
QUICK_SECONDS = 30.0
#: The whole quick set (`effdl reproduce --quick`) must fit in this many seconds.
QUICK_BUDGET_SECONDS = 300.0

Figures = Mapping[str, float]


@dataclass(frozen=True)
class Outcome:
    """A verdict and, except for a clean reproduction, the reason for it."""

    verdict: str
    reason: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def reduced_verdict(verdict: str) -> str:
    """Return the label of `verdict` for figures from a reduced run ("close" -> "close (reduced
    run)"); "error" and an already reduced verdict stay as they are."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return verdict + REDUCED_RUN if verdict in RULE_VERDICTS else verdict


VerdictRule = Callable[[Figures, Figures], Outcome]


@dataclass(frozen=True)
class Claim:
    """A published claim: where it is printed, what it says, its figures, how to re-measure
    them and what that costs.

    `measure()` returns a dict with the keys of `published` (and any extra figures, plus an
    optional "note" string that the ledger prints with the verdict). `cost_seconds` is the
    expected wall time of `measure()` on 2 CPU cores with one torch thread; `register` refuses
    a claim without it, and `--quick` runs the claims whose cost is at most `QUICK_SECONDS`.
    """

    id: str
    source: str
    statement: str
    published: Figures
    measure: Callable[[], dict]
    verdict: VerdictRule
    cost_seconds: float | None = None
    units: Mapping[str, str] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        """Whether the claim is expected to finish within `QUICK_SECONDS`."""
        return self.cost_seconds is not None and self.cost_seconds <= QUICK_SECONDS


REGISTRY: dict[str, Claim] = {}


def register(new: Claim) -> Claim:
    """Return `new` after adding it to the registry; an id may be registered once, and only
    with a declared cost."""
    cost = new.cost_seconds
    if cost is None:
        raise ValueError(
            f"claim {new.id!r} declares no cost_seconds: every claim must give its expected wall "
            "time in seconds (2 CPU cores, one torch thread) so that --quick can select by cost"
        )
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not 0 < cost < math.inf:
        raise ValueError(
            f"cost_seconds of claim {new.id!r} must be a positive number of seconds, got {cost!r}"
        )
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
    cost_seconds: float | None = None,
    units: Mapping[str, str] | None = None,
) -> Callable[[Callable[[], dict]], Callable[[], dict]]:
    """Return a decorator that registers the decorated function as the claim's measurement;
    `cost_seconds` (expected wall time, 2 CPU cores, one torch thread) is required."""

    def decorate(measure: Callable[[], dict]) -> Callable[[], dict]:
        register(
            Claim(
                id, source, statement, dict(published), measure, verdict, cost_seconds, units or {}
            )
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


def within_factor(factor: float, close: float | None = None) -> VerdictRule:
    """Return a rule for scales (a crossover length, a speed-up): reproduced if every figure is
    within a factor `factor` of the published one either way, close within `close` (default
    factor squared), else differs. Figures must be positive."""
    close = close if close is not None else factor**2
    if not 1 <= factor <= close:
        raise ValueError(f"factors must satisfy 1 <= factor <= close, got {factor} and {close}")

    def rule(published: Figures, measured: Figures) -> Outcome:
        unjudgeable = _unjudgeable(published, measured)
        if unjudgeable:
            return unjudgeable
        ratios = {}
        for key, want in published.items():
            got = float(measured[key])
            if want <= 0 or got <= 0:
                raise ValueError(
                    f"within_factor needs positive figures, got {key}: {got} vs {want}"
                )
            ratios[key] = max(got / want, want / got)
        worst = max(ratios, key=ratios.get)
        describe = (
            f"worst {worst}: {float(measured[worst]):g} vs {published[worst]:g} "
            f"({ratios[worst]:.3g}x apart)"
        )
        if all(r <= factor for r in ratios.values()):
            return Outcome("reproduced", "")
        if all(r <= close for r in ratios.values()):
            return Outcome("close", f"within {close:g}x, not {factor:g}x; {describe}")
        return Outcome("differs", f"beyond {close:g}x; {describe}")

    return rule


def within_range(low: float, high: float, close: float = 0.2) -> VerdictRule:
    """Return a rule for a published range ("2 to 4 times faster"): reproduced if every
    measured figure lies in [low, high], close if within `close` relative of the range
    (low (1 - close) .. high (1 + close)), else differs.

    The published figures name the keys to judge; their values must lie in the range (e.g. its
    middle) and are otherwise not used.
    """
    if not 0 < low <= high or close < 0:
        raise ValueError(
            f"the range must satisfy 0 < low <= high and close >= 0, got {low}, {high}, {close}"
        )
    span = f"{low:g}..{high:g}"

    def rule(published: Figures, measured: Figures) -> Outcome:
        unjudgeable = _unjudgeable(published, measured)
        if unjudgeable:
            return unjudgeable
        outside = [k for k, v in published.items() if not low <= v <= high]
        if outside:
            raise ValueError(f"within_range({span}) got published figures {outside} outside it")
        # relative distance outside the range; 0 inside
        gaps = {}
        for key in published:
            got = float(measured[key])
            gaps[key] = max(low - got, 0.0) / low + max(got - high, 0.0) / high
        worst = max(gaps, key=gaps.get)
        describe = f"worst {worst}: {float(measured[worst]):g}, range {span}"
        if all(g == 0 for g in gaps.values()):
            return Outcome("reproduced", "")
        if all(g <= close for g in gaps.values()):
            return Outcome("close", f"within {close:.0%} of the range, not in it; {describe}")
        return Outcome("differs", f"beyond {close:.0%} outside the range; {describe}")

    return rule


def not_comparable(reason: str) -> VerdictRule:
    """Return a rule that always says not-comparable, with `reason` (e.g. GPU-days vs seconds)."""
    return lambda published, measured: Outcome("not-comparable", reason)


#: The verdicts from worst to best, for rules that combine several outcomes.
SEVERITY = ("error", "differs", "not-comparable", "close", "reproduced")


def per_figure(rules: Mapping[str, VerdictRule]) -> VerdictRule:
    """Return a rule that judges each group of figures by its own rule; the worst verdict wins.

    `rules` maps a figure's key to the rule that judges it; the rule under "*" judges every
    figure not named. A figure that no rule covers is an error in the claim, not a pass.
    """

    def rule(published: Figures, measured: Figures) -> Outcome:
        unjudged = [k for k in published if k not in rules and "*" not in rules]
        if unjudged:
            raise ValueError(
                f"per_figure has no rule for the published figures {unjudged}; its rules "
                f"cover {list(rules)} (add a '*' rule for the rest)"
            )
        if not published:
            return _NOTHING_TO_JUDGE
        outcomes = []
        for name, sub_rule in rules.items():
            keys = [k for k in published if k == name or (name == "*" and k not in rules)]
            if keys:
                outcomes.append(sub_rule({k: published[k] for k in keys}, measured))
        worst = min(outcomes, key=lambda o: SEVERITY.index(o.verdict))
        reasons = "; ".join(o.reason for o in outcomes if o.reason)
        return Outcome(worst.verdict, reasons)

    return rule


def within_printed(
    rel: float, printed_unit: Mapping[str, float], *, truncated: bool = False
) -> VerdictRule:
    """Return a rule: reproduced if every figure is within `rel` relative error of what the
    paper's printed figure stands for, close within 3 times that, else differs.

    A figure printed to a unit stands for an interval: rounded, half the unit either side (so
    0.5M printed to 0.1M is anything in 0.45..0.55M); `truncated`, the unit above it (3.4M
    stands for 3.40..3.50M). `printed_unit` maps a key suffix to its unit.
    """

    def unit(key: str) -> float:
        return next((u for suffix, u in printed_unit.items() if key.endswith(suffix)), 0.0)

    def interval(key: str, want: float) -> tuple[float, float]:
        if truncated:
            return want, want + unit(key)
        return want - unit(key) / 2, want + unit(key) / 2

    def allowed(key: str, want: float) -> float:
        low, high = interval(key, want)
        return rel * abs(want) + (high - low) / 2

    def gap(key: str, got: float, want: float) -> float:
        low, high = interval(key, want)
        return abs(got - (low + high) / 2)

    def rule(published: Figures, measured: Figures) -> Outcome:
        unjudgeable = _unjudgeable(published, measured)
        if unjudgeable:
            return unjudgeable
        score = {k: gap(k, float(measured[k]), p) / allowed(k, p) for k, p in published.items()}
        worst = max(score, key=score.get)
        low, high = interval(worst, published[worst])
        stands_for = f"printed {published[worst]:g} stands for {low:g}..{high:g}"
        describe = (
            f"worst {worst}: {float(measured[worst]):g} vs {published[worst]:g} "
            f"({stands_for}, plus {rel:.0%})"
        )
        if all(s <= 1 for s in score.values()):
            return Outcome("reproduced", "")
        if all(s <= 3 for s in score.values()):
            return Outcome("close", f"within 3x the allowed gap, not 1x; {describe}")
        return Outcome("differs", f"beyond 3x the allowed gap; {describe}")

    return rule


_NOTHING_TO_JUDGE = Outcome("not-comparable", "the claim publishes no figures to compare")


def _unjudgeable(published: Figures, measured: Figures) -> Outcome | None:
    """The outcome when there is nothing to compare or a figure was not measured, else None."""
    if not published:
        return _NOTHING_TO_JUDGE
    missing = [k for k in published if k not in measured]
    if missing:
        return Outcome("differs", f"measurement lacks {missing}")
    return None


def _tolerance_rule(tol: float, close: float, *, relative: bool) -> VerdictRule:
    if tol < 0 or close < tol:
        raise ValueError(f"tolerances must satisfy 0 <= tol <= close, got {tol} and {close}")
    unit = "relative" if relative else "absolute"

    def rule(published: Figures, measured: Figures) -> Outcome:
        unjudgeable = _unjudgeable(published, measured)
        if unjudgeable:
            return unjudgeable
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
