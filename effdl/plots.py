"""The kit's shared matplotlib helpers. Each returns a `matplotlib.figure.Figure`, which a
notebook displays and a script can save. Start with `plot_pareto`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from effdl.measure import pareto_front


def plot_pareto(
    points: Sequence[Mapping[str, float]],
    x: str,
    y: str,
    *,
    directions: Mapping[str, str] | None = None,
    labels: Sequence[str] | None = None,
    log_x: bool = False,
    title: str | None = None,
) -> Figure:
    """Return a scatter of `points` on metrics `x` and `y` with their Pareto front drawn.

    `directions` says which way is better for each metric ("min" or "max"); by default `x` is
    minimised (a cost) and `y` maximised (a quality).

    Source: Menghani 2021, "Efficient Deep Learning" survey, section 1 (Pareto-optimality).
    """
    directions = dict(directions or {x: "min", y: "max"})
    front = pareto_front(points, directions)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    xs, ys = [p[x] for p in points], [p[y] for p in points]
    ax.scatter(xs, ys, color="0.6", label="dominated", zorder=2)
    on_front = sorted(front, key=lambda i: xs[i])
    ax.plot(
        [xs[i] for i in on_front],
        [ys[i] for i in on_front],
        "o-",
        color="tab:red",
        label="Pareto front",
        zorder=3,
    )
    for i, label in enumerate(labels or []):
        ax.annotate(label, (xs[i], ys[i]), textcoords="offset points", xytext=(5, 5))
    if log_x:
        ax.set_xscale("log")
    ax.margins(x=0.12, y=0.1)  # room for the labels of the extreme points
    ax.set_xlabel(f"{x} ({'lower' if directions[x] == 'min' else 'higher'} is better)")
    ax.set_ylabel(f"{y} ({'lower' if directions[y] == 'min' else 'higher'} is better)")
    ax.set_title(title or f"{y} vs {x}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "epoch",
    ylabel: str = "accuracy",
    title: str | None = None,
) -> Figure:
    """Return a line plot with one curve per named series (training curves, for example)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_depth_multiplier(
    measured: Sequence[Mapping[str, float]],
    published: Sequence[Mapping[str, float]] | None = None,
) -> Figure:
    """Return three panels: mult-adds and params against the width multiplier alpha (at 224)
    and mult-adds against the input resolution (at alpha 1), measured beside published.

    Rows carry "alpha", "resolution", "params_M" and "madds_M", as
    `effdl.experiments.convolutions.mobilenet_v1_costs` returns them; `published` rows (for example
    `MOBILENET_V1_PUBLISHED`) are drawn as crosses, those with "separable" 0 left out. Dashed
    lines show the alpha^2 and rho^2 laws scaled from the measured alpha = 1, 224 point.

    Source: Howard et al. 2017, "MobileNets", Tables 6 and 7 and eq. 7.
    """
    fig = Figure(figsize=(12, 3.6))
    ax_alpha, ax_params, ax_rho = fig.subplots(1, 3)
    published = [p for p in (published or []) if p.get("separable", 1)]
    alpha, rho = ("alpha", "width multiplier alpha"), ("resolution", "input resolution (pixels)")
    panels = (
        (ax_alpha, _width_sweep, alpha, ("madds_M", "mult-adds (M)")),
        (ax_params, _width_sweep, alpha, ("params_M", "params (M)")),
        (ax_rho, _resolution_sweep, rho, ("madds_M", "mult-adds (M)")),
    )
    base = next((r for r in measured if r["alpha"] == 1.0 and r["resolution"] == 224), None)
    for ax, select, (x, xlabel), (y, ylabel) in panels:
        rows = select(measured)
        xs = [r[x] for r in rows]
        ax.plot(xs, [r[y] for r in rows], "o-", color="tab:blue", label="measured here")
        if published:
            ref = select(published)
            ax.plot(
                [r[x] for r in ref],
                [r[y] for r in ref],
                "x",
                color="black",
                ms=9,
                label="Howard et al. 2017",
            )
        if base is not None and xs:
            # Eq. 7: cost grows with the square of both multipliers (the FC layer aside).
            scale = 1.0 if x == "alpha" else 224.0
            law = "alpha^2" if x == "alpha" else "rho^2"
            ax.plot(
                xs,
                [base[y] * (v / scale) ** 2 for v in xs],
                "--",
                color="0.5",
                label=f"{law} law",
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    ax_alpha.set_title("cost vs width (224x224)")
    ax_params.set_title("params vs width")
    ax_rho.set_title("cost vs resolution (alpha 1)")
    fig.tight_layout()
    return fig


def plot_attention_heatmap(
    weights,
    *,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    xlabel: str = "source position (key)",
    ylabel: str = "output step (query)",
    title: str | None = None,
) -> Figure:
    """Return a heatmap of a (queries, keys) attention matrix, one row per output step.

    `weights` is a 2-D tensor or array (e.g. `BottleneckResult.example_weights`); labels name
    the rows and columns (the source and predicted tokens, for example).

    Source: Bahdanau et al. 2015, figure 3 (alignment matrices).
    """
    matrix = _as_matrix(weights)
    rows, cols = matrix.shape
    fig = Figure(figsize=(1.2 + 0.32 * cols, 1.0 + 0.32 * rows))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Greys", vmin=0.0, vmax=max(1e-12, float(matrix.max())))
    for set_ticks, labels, count in (
        (ax.set_xticks, x_labels, cols),
        (ax.set_yticks, y_labels, rows),
    ):
        set_ticks(range(count), labels=[str(label) for label in (labels or range(count))])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "attention weights")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_length(
    lengths: Sequence[int],
    accuracies: Mapping[str, Sequence[float]],
    *,
    chance: float | None = None,
    ylabel: str = "test accuracy",
    title: str | None = None,
) -> Figure:
    """Return accuracy against sequence length, one line per named model.

    `accuracies` maps a model name to one accuracy per length (e.g.
    `BottleneckResult.token_accuracy`); `chance`, if given, is drawn as a dotted line.

    Source: Bahdanau et al. 2015, figure 2 (BLEU against sentence length).
    """
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, values in accuracies.items():
        ax.plot(list(lengths), list(values), "o-", label=name.replace("_", " "))
    if chance is not None:
        ax.axhline(chance, color="0.5", linestyle=":", label="chance")
    ax.set_xlabel("sequence length")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.set_title(title or f"{ylabel} vs sequence length")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_time_vs_length(
    lengths: Sequence[int],
    times_ms: Mapping[str, Sequence[float]],
    steps: Mapping[str, Sequence[int]] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Return forward time against sequence length on log-log axes, one line per layer, and,
    if `steps` is given, a second panel with each layer's sequential steps.

    Fed by `TimeVsLength`: times {"self-attention": attention_ms, "GRU": rnn_ms}, steps likewise.

    Source: Vaswani et al. 2017, Table 1 (complexity and sequential operations per layer).
    """
    fig = Figure(figsize=(11 if steps else 6, 4))
    axes = fig.subplots(1, 2 if steps else 1)
    ax_time = axes[0] if steps else axes
    for name, values in times_ms.items():
        ax_time.plot(list(lengths), list(values), "o-", label=name)
    ax_time.set_xscale("log", base=2)
    ax_time.set_yscale("log")
    ax_time.set_xlabel("sequence length n")
    ax_time.set_ylabel("forward time (ms)")
    ax_time.set_title(title or "one forward pass on CPU")
    ax_time.grid(True, which="both", alpha=0.3)
    ax_time.legend(loc="best")
    if steps:
        ax_steps = axes[1]
        for name, values in steps.items():
            ax_steps.plot(list(lengths), list(values), "o-", label=name)
        ax_steps.set_xscale("log", base=2)
        ax_steps.set_yscale("log", base=2)
        ax_steps.set_xlabel("sequence length n")
        ax_steps.set_ylabel("sequential steps")
        ax_steps.set_title("steps that must run one after another")
        ax_steps.grid(True, which="both", alpha=0.3)
        ax_steps.legend(loc="best")
    fig.tight_layout()
    return fig


def _width_sweep(rows: Sequence[Mapping[str, float]]) -> list[Mapping[str, float]]:
    return sorted((r for r in rows if r["resolution"] == 224), key=lambda r: r["alpha"])


def _resolution_sweep(rows: Sequence[Mapping[str, float]]) -> list[Mapping[str, float]]:
    return sorted((r for r in rows if r["alpha"] == 1.0), key=lambda r: r["resolution"])


def _as_matrix(weights) -> np.ndarray:
    matrix = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights)
    if matrix.ndim != 2:
        raise ValueError(f"weights must be a 2-D (queries, keys) matrix, got shape {matrix.shape}")
    return matrix


def plot_grouped_bars(
    values: Mapping[str, Mapping[str, float]],
    *,
    ylabel: str,
    title: str | None = None,
    log_y: bool = False,
    reference: float | None = None,
    fmt: str = "{:.2g}",
) -> Figure:
    """Return a grouped bar chart: one group per outer key of `values`, one bar per inner key.

    `values` maps a group (a metric, a layer configuration) to {series: value}; a series keeps
    its colour in every group, and each bar is labelled with its value formatted by `fmt`.
    `reference`, if given, is drawn as a dotted horizontal line (1.0 for ratios to a baseline).
    """
    groups = list(values)
    if not groups:
        raise ValueError("values must name at least one group, got an empty mapping")
    series = list(dict.fromkeys(name for group in groups for name in values[group]))
    width = 0.8 / len(series)
    fig = Figure(figsize=(min(11.0, max(6.0, 0.6 * len(groups) * len(series) + 2.5)), 4))
    ax = fig.subplots()
    positions = np.arange(len(groups))
    for i, name in enumerate(series):
        heights = [values[group].get(name, np.nan) for group in groups]
        bars = ax.bar(positions + (i - (len(series) - 1) / 2) * width, heights, width, label=name)
        ax.bar_label(bars, labels=[fmt.format(h) for h in heights], fontsize="small", padding=2)
    if reference is not None:
        ax.axhline(reference, color="0.3", linestyle=":", linewidth=1)
    ax.set_xticks(positions, labels=groups)
    if log_y:
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def plot_pipeline_schedule(
    schedule: Sequence[Sequence[tuple[str, int] | None]], *, title: str | None = None
) -> Figure:
    """Return a pipeline schedule (`effdl.parallel.model_parallel.pipeline_schedule`) as a
    grid: one row per stage, one column per time slot, forwards in blue and backwards in
    orange labelled with their micro-batch, idle slots left blank (the bubble).

    Source: Huang et al. 2019, "GPipe", Figure 2(c) (the same picture, drawn from the kit's
    simulated schedule).
    """
    rows = [tuple(slot) for slot in schedule]
    if not rows or not rows[0]:
        raise ValueError("schedule must hold at least one slot of at least one stage")
    stages = len(rows[0])
    if any(len(slot) != stages for slot in rows):
        raise ValueError(f"every slot of schedule must list {stages} stages")
    fig = Figure(figsize=(min(12.0, 1.2 + 0.42 * len(rows)), 0.5 + 0.45 * stages))
    ax = fig.subplots()
    colors = {"F": "#9ecae1", "B": "#fdae6b"}
    for t, slot in enumerate(rows):
        for s, task in enumerate(slot):
            if task is None:
                ax.add_patch(_cell(t, s, "white", edge="0.85"))
                continue
            kind, micro_batch = task
            ax.add_patch(_cell(t, s, colors[kind], edge="0.3"))
            ax.text(t + 0.5, s + 0.5, f"{kind}{micro_batch}", ha="center", va="center",
                    fontsize="x-small")  # fmt: skip
    idle = sum(task is None for slot in rows for task in slot) / (len(rows) * stages)
    ax.set_xlim(0, len(rows))
    ax.set_ylim(stages, 0)
    ax.set_yticks([s + 0.5 for s in range(stages)], labels=[f"stage {s}" for s in range(stages)])
    ax.set_xlabel(f"time slot (idle: {idle:.0%} of stage-slots)")
    ax.tick_params(axis="x", length=0)
    ax.set_xticks([])
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _cell(t: int, s: int, color: str, *, edge: str) -> Rectangle:
    return Rectangle((t, s), 1, 1, facecolor=color, edgecolor=edge, linewidth=0.8)
