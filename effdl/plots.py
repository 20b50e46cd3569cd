"""The kit's shared matplotlib helpers. Each returns a `matplotlib.figure.Figure`, which a
notebook displays and a script can save. Start with `plot_pareto`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

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
