import pytest
from matplotlib.figure import Figure

from effdl.parallel.model_parallel import bubble_fraction, pipeline_schedule
from effdl.plots import plot_curves, plot_pareto, plot_pipeline_schedule


def test_pareto_plot_draws_exactly_the_front():
    points = [
        {"macs": 10, "acc": 0.5},
        {"macs": 20, "acc": 0.4},  # dominated by the first
        {"macs": 40, "acc": 0.9},
    ]
    fig = plot_pareto(points, "macs", "acc", labels=["a", "b", "c"], log_x=True)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    (front_line,) = [line for line in ax.get_lines() if line.get_label() == "Pareto front"]
    assert list(front_line.get_xdata()) == [10, 40] and list(front_line.get_ydata()) == [0.5, 0.9]
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]
    assert ax.get_xscale() == "log"


def test_pareto_plot_respects_directions():
    points = [{"err": 0.1, "size": 5}, {"err": 0.2, "size": 1}, {"err": 0.3, "size": 6}]
    fig = plot_pareto(points, "size", "err", directions={"size": "min", "err": "min"})
    (front_line,) = [line for line in fig.axes[0].get_lines() if line.get_label() == "Pareto front"]
    assert sorted(front_line.get_xdata()) == [1, 5]
    assert "lower is better" in fig.axes[0].get_ylabel()


def test_curves_one_line_per_series():
    fig = plot_curves({"train": [0.1, 0.5, 0.7], "val": [0.1, 0.4]}, ylabel="acc")
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["train", "val"]
    assert list(lines[1].get_xdata()) == [1, 2]


def test_grouped_bars_one_bar_per_series_and_group():
    from effdl.plots import plot_grouped_bars

    fig = plot_grouped_bars(
        {"params": {"standard": 1.0, "separable": 0.13}, "MACs": {"standard": 1.0}},
        ylabel="ratio",
        reference=1.0,
    )
    ax = fig.axes[0]
    heights = sorted(
        round(p.get_height(), 2) for p in ax.patches if p.get_height() == p.get_height()
    )
    assert heights == [0.13, 1.0, 1.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["params", "MACs"]


def test_pipeline_schedule_plot_draws_every_slot_and_reports_the_idle_share():
    schedule = pipeline_schedule(3, 4)
    ax = plot_pipeline_schedule(schedule, title="K=3, M=4").axes[0]
    assert len(ax.patches) == 3 * len(schedule)
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == sorted(f"{k}{m}" for k in "FB" for m in range(4) for _ in range(3))
    assert f"idle: {bubble_fraction(3, 4):.0%}" in ax.get_xlabel()
    with pytest.raises(ValueError, match="every slot of schedule must list 2 stages"):
        plot_pipeline_schedule([(None, None), (None,)])
