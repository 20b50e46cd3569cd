"""Run claims and report them as a table, JSON or markdown. Start with `run`.

The JSON layout is read by scripts and CI, so its keys are stable:
`{"machine": {...}, "claims": [{"id", "source", "statement", "published", "measured",
"verdict", "reason", "seconds"}]}`.
"""

from __future__ import annotations

import json
import platform
import textwrap
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from effdl.claims.registry import (
    QUICK_SECONDS,
    REGISTRY,
    Claim,
    Outcome,
    reduced_verdict,
)


@dataclass
class Result:
    """One ledger row: the claim's published figures beside what was measured here."""

    id: str
    source: str
    statement: str
    published: dict
    measured: dict
    verdict: str
    reason: str
    seconds: float

    def _repr_markdown_(self) -> str:
        return to_markdown([self])

    def __str__(self) -> str:
        return format_table([self])


def select(ids: Sequence[str] | None = None, quick: bool = False) -> list[Claim]:
    """Return the claims to run: those named in `ids` (in that order) or all; with `quick`,
    only those whose declared cost is at most `QUICK_SECONDS` (30 s)."""
    load_pillars()
    if ids:
        unknown = [i for i in ids if i not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown claim ids {unknown}; registered: {sorted(REGISTRY)}")
        chosen = [REGISTRY[i] for i in ids]
    else:
        chosen = list(REGISTRY.values())
    return [c for c in chosen if c.quick or not quick]


def run_claim(
    claim: Claim, measure: Callable[[], dict] | None = None, *, reduced: str | None = None
) -> Result:
    """Return the `Result` of measuring one claim; a crash becomes an "error" row.

    `measure` replaces the claim's own measurement (see `judge`). `reduced` says how the run
    was smaller than the claim's protocol; the verdict then carries " (reduced run)" and the
    reason starts with it.
    """
    start = time.perf_counter()
    try:
        measured = dict((measure or claim.measure)())
        note = str(measured.pop("note", ""))
        outcome = claim.verdict(claim.published, measured)
        reduced_reason = f"reduced run: {reduced}" if reduced else ""
        reason = "; ".join(r for r in (reduced_reason, outcome.reason, note) if r)
        verdict = reduced_verdict(outcome.verdict) if reduced else outcome.verdict
        outcome = Outcome(verdict, reason)
    except Exception as err:  # the ledger reports a broken measurement rather than stopping
        measured = {}
        outcome = Outcome("error", f"{type(err).__name__}: {err}")
        traceback.print_exc()
    return Result(
        claim.id,
        claim.source,
        claim.statement,
        dict(claim.published),
        _plain(measured),
        outcome.verdict,
        outcome.reason,
        round(time.perf_counter() - start, 2),
    )


def run(
    ids: Sequence[str] | None = None, quick: bool = False, verbose: bool = True
) -> list[Result]:
    """Return the results of running the selected claims, one after another, with progress."""
    results = []
    progress = tqdm(select(ids, quick), desc="claims", disable=not verbose)
    for c in progress:
        progress.set_postfix_str(c.id)
        results.append(run_claim(c))
    return results


def show(claim_id: str) -> Result:
    """Return the ledger row of one claim, measured now; notebooks display it as a table."""
    return run_claim(select([claim_id])[0])


def judge(
    claim_id: str, measured: Mapping[str, float], note: str = "", *, reduced: str | None = None
) -> Result:
    """Return the ledger row of a claim for figures measured elsewhere (e.g. in a notebook),
    judged by the claim's own verdict rule.

    `measured` must hold every published figure of the claim (extra figures are kept). `note`
    says how they were measured. `reduced` says how the run was smaller than the claim's own
    protocol (e.g. "1,500 of the paper's 6,000 steps, one seed"); the verdict is then labelled,
    e.g. "close (reduced run)", and is never plain "reproduced".
    """
    chosen = select([claim_id])[0]
    if not isinstance(measured, Mapping):
        raise TypeError(
            f"measured must be a dict of figures with keys {list(chosen.published)}, "
            f"got {type(measured).__name__}"
        )
    missing = [k for k in chosen.published if k not in measured]
    if missing:
        raise ValueError(
            f"measured lacks the figures {missing} of claim {claim_id!r}; it expects the keys "
            f"{list(chosen.published)} (extra figures are kept), got {list(measured)}"
        )
    if reduced is not None and (not isinstance(reduced, str) or not reduced.strip()):
        raise ValueError(
            "reduced must be None (the claim's own protocol) or a description of how the run "
            f"was smaller, e.g. '1,500 of 6,000 steps', got {reduced!r}"
        )
    figures = {**measured, "note": note} if note else dict(measured)
    return run_claim(chosen, measure=lambda: figures, reduced=reduced)


def describe(quick: bool = False) -> list[dict]:
    """Return one row per registered claim (quick ones only if `quick`): its id, source,
    declared cost in seconds and whether `--quick` runs it."""
    return [
        {"id": c.id, "source": c.source, "cost_seconds": c.cost_seconds, "quick": c.quick}
        for c in select(quick=quick)
    ]


def format_costs(quick: bool = False) -> str:
    """Return a plain-text list of the claims with their declared costs and the quick set's
    total."""
    rows = describe(quick)
    width = max((len(r["id"]) for r in rows), default=5)
    lines = [f"{'claim'.ljust(width)}  cost (s)  quick", f"{'-' * width}  --------  -----"]
    lines += [
        f"{r['id'].ljust(width)}  {r['cost_seconds']:>8g}  {'yes' if r['quick'] else 'no'}"
        for r in rows
    ]
    total = sum(r["cost_seconds"] for r in rows if r["quick"])
    lines.append(f"quick set (cost <= {QUICK_SECONDS:g} s each): about {total:g} s in all")
    return "\n".join(lines)


def machine() -> dict:
    """Return a description of this machine for the JSON report."""
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def to_json(results: Iterable[Result]) -> str:
    """Return the stable JSON report of `results`."""
    return json.dumps({"machine": machine(), "claims": [asdict(r) for r in results]}, indent=2)


def format_table(results: Iterable[Result]) -> str:
    """Return a plain-text table: claim, source, published, measured here, verdict.

    The table keeps to the published figures, one per line; the reasons for each verdict and
    any extra figures follow the table as numbered notes.
    """
    results = list(results)
    header = ("claim", "source", "published", "measured here", "verdict")
    rows, notes = [], []
    for r in results:
        keys = list(r.published)
        published = [f"{k}={_num(r.published[k])}" for k in keys]
        measured = [f"{k}={_num(r.measured[k])}" if k in r.measured else f"{k}=?" for k in keys]
        extra = {k: v for k, v in r.measured.items() if k not in r.published}
        verdict = r.verdict
        if r.reason or extra:
            notes.append((len(notes) + 1, r.id, r.reason, extra))
            verdict += f" [{len(notes)}]"
        for i in range(max(1, len(keys))):
            first = i == 0
            rows.append(
                (
                    r.id if first else "",
                    _wrap(r.source, 36) if first else "",
                    published[i] if i < len(published) else "",
                    measured[i] if i < len(measured) else "",
                    verdict if first else "",
                )
            )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(row, widths) for row in rows]
    for number, claim_id, reason, extra in notes:
        text = f"[{number}] {claim_id}: {reason}" if reason else f"[{number}] {claim_id}:"
        if extra:
            text += f" (also measured: {_figures(extra)})"
        lines.append("")
        lines.append(textwrap.fill(text, width=100, subsequent_indent="    "))
    return "\n".join(lines)


def to_markdown(results: Iterable[Result]) -> str:
    """Return the same table as markdown, with statements."""
    lines = [
        "| claim | source | statement | published | measured here | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [
            r.id,
            r.source,
            r.statement,
            _figures(r.published),
            _figures(r.measured, r.published),
            _verdict(r),
        ]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def write_reports(results: list[Result], json_path: str | None, markdown_path: str | None) -> None:
    """Write the JSON and/or markdown report files."""
    if json_path:
        Path(json_path).write_text(to_json(results) + "\n")
    if markdown_path:
        Path(markdown_path).write_text(to_markdown(results) + "\n")


def load_pillars() -> None:
    """Import every pillar module so that its claims are registered."""
    from effdl.claims import (  # noqa: F401
        architectures,
        attention,
        automation,
        compression,
        distillation,
        foundations,
        training,
    )


def _figures(figures: dict, order: dict | None = None) -> str:
    keys = list(order) if order else list(figures)
    keys += [k for k in figures if k not in keys]
    return ", ".join(f"{k}={_num(figures[k])}" for k in keys if k in figures)


def _num(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() else f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _wrap(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _verdict(result: Result) -> str:
    return f"{result.verdict}: {result.reason}" if result.reason else result.verdict


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _plain(figures: dict) -> dict:
    """Numbers as JSON-friendly Python scalars (numpy and torch scalars become float/int)."""
    out = {}
    for key, value in figures.items():
        if hasattr(value, "item"):
            value = value.item()
        out[key] = value
    return out
