"""Interactive explorers for the lessons, built with ipywidgets over the kit's own functions.

Each explorer comes in two parts: a pure `..._figure(...)` function that returns a matplotlib
Figure (and a short text) for one state of the controls, and an `..._explorer(...)` function
that returns a widget whose controls re-draw that figure in an `Output`. A lesson calls the
explorer for the interactive view and the figure function for the static default view, which
nbval, HTML renderings and repository viewers can show.

- lesson 00: `pareto_explorer` / `pareto_figure`: pick the metrics, watch the Pareto front;
- lesson 01: `mobilenet_explorer` / `mobilenet_figure`: MobileNet v1's width and resolution
  multipliers against the paper's Tables 6 and 7;
- lesson 02: `attention_explorer` / `attention_figure`: pick an input, a layer and a head,
  see that head's attention map;
- lesson 03: `quantization_explorer` / `quantization_figure`: a bit-width slider and a
  per-channel toggle over the histogram of a weight tensor's quantization error;
- lesson 04: `pruning_explorer` / `pruning_figure`: a sparsity slider over accuracy (pruned and
  fine-tuned) and over the latency of a layer stored dense and as CSR;
- lesson 05: `temperature_explorer` / `temperature_figure`: a temperature slider over one
  example's soft targets, in bars and on a log scale, with their entropy;
- lesson 06: `float_format_explorer` / `float_format_figure`: pick fp32, fp16 or bf16 and a
  value, see its bits, the rounding error, the spacing there and each format's range;
- lesson 07: `dsd_explorer` / `dsd_figure`: a sparsity slider over the validation curve through
  the dense, sparse and re-dense phases, against the dense control, and over the test accuracy.
- lesson 08: `throughput_explorer` / `throughput_figure`: the number of workers and the global
  batch over measured data-parallel throughput, split into compute and all-reduce.
- lesson 09: `search_explorer` / `search_figure`: the number of trials, how much a second
  dimension matters and the seed, over a grid and random search of the same size on the square.
- lesson 10: `bo_explorer` / `bo_figure`: a step slider over Bayesian optimisation of a
  one-dimensional function, showing the GP's posterior and the expected improvement.
- lesson 11: `hyperband_explorer` / `hyperband_figure`: R, eta and the bracket over Hyperband's
  rungs and the learning curves it stops, on the shipped table of mnist1d curves.

The explorers write their output by setting `Output.outputs` (a PNG and the text), so the same
code runs in a kernel, in a browser and in a test without one.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import numbers
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from torch import nn

from effdl._checks import check_in
from effdl.experiments.early_stopping import table_objective, table_space
from effdl.experiments.pruning import break_even_sparsity, max_sparsity_within
from effdl.experiments.quantization import error_histogram
from effdl.experiments.search import grid_space, low_effective_dimension, search_space
from effdl.hpo.bo import GaussianProcess, expected_improvement
from effdl.hpo.grid import grid
from effdl.hpo.hyperband import brackets, resource_spent, successive_halving
from effdl.hpo.random_search import random_search
from effdl.learn.distill import soft_targets
from effdl.learn.dsd import DSD_SPARSITY, PHASES
from effdl.learn.mixed_precision import FORMATS, FloatFormat, float_bits, float_format, spacing
from effdl.measure import count_macs, count_params, pareto_front
from effdl.models.attention import MultiHeadAttention
from effdl.models.mobilenet import mobilenet_v1

#: Metrics where higher is better; every other numeric metric of a row is a cost to minimise.
QUALITY_METRICS = ("accuracy",)

#: The resolutions of MobileNet v1's Table 7, the only ones the explorer offers.
MOBILENET_RESOLUTIONS = (128, 160, 192, 224)

#: Howard et al. 2017, Table 6 (alpha at 224x224) and Table 7 (resolution at alpha 1):
#: {(alpha, resolution): (params in M, mult-adds in M)}, rounded as the paper prints them.
MOBILENET_V1_PAPER: dict[tuple[float, int], tuple[float, float]] = {
    (1.0, 224): (4.2, 569),
    (0.75, 224): (2.6, 325),
    (0.5, 224): (1.3, 149),
    (0.25, 224): (0.5, 41),
    (1.0, 192): (4.2, 418),
    (1.0, 160): (4.2, 290),
    (1.0, 128): (4.2, 186),
}


class Explorer(widgets.VBox):
    """A box of controls above an `Output`, with the state and figure of the last redraw.

    `controls` maps each state name to its widget; changing a control's `value` redraws.
    `figure` and `text` are what the output shows now; `state` is the keyword arguments the
    figure function got.
    """

    def __init__(self, controls: Mapping[str, widgets.ValueWidget], draw, **kwargs):
        self.controls = dict(controls)
        self.output = widgets.Output()
        self.figure: Figure | None = None
        self.text = ""
        self.state: dict[str, Any] = {}
        self._draw = draw
        super().__init__(
            [widgets.HBox(list(self.controls.values())), self.output],
            **kwargs,
        )
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.redraw()

    def redraw(self) -> None:
        """Re-draw the output from the controls' current values."""
        self.state = {name: control.value for name, control in self.controls.items()}
        self.figure, self.text = self._draw(**self.state)
        self.output.outputs = (
            {
                "output_type": "display_data",
                "data": {"image/png": _png(self.figure), "text/plain": repr(self.figure)},
                "metadata": {},
            },
            {"output_type": "stream", "name": "stdout", "text": self.text + "\n"},
        )

    def _on_change(self, change) -> None:
        self.redraw()


# --------------------------------------------------------------------------- lesson 00


def pareto_figure(
    rows: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = ("accuracy", "macs"),
    label: str = "model",
    log_x: bool = True,
) -> Figure:
    """Return a scatter of `rows` with their Pareto front over `metrics` marked and labelled.

    `metrics` lists the objectives: "accuracy" is maximised, every other metric (params, macs,
    size_bytes, latency_ms, ...) minimised. The plot puts the first cost metric on the x axis
    and the first quality metric on the y axis; models on the front (over all the metrics, so
    possibly more than the 2-D plot suggests) are red and labelled.

    Source: Menghani 2021, "Efficient Deep Learning" survey, section 1 (Pareto-optimality).
    """
    metrics = _check_metrics(rows, metrics, label)
    objectives = {m: "max" if m in QUALITY_METRICS else "min" for m in metrics}
    front = pareto_front(rows, objectives)
    names = [str(r.get(label, i)) for i, r in enumerate(rows)]
    costs = [m for m in metrics if objectives[m] == "min"]
    qualities = [m for m in metrics if objectives[m] == "max"]
    x = costs[0] if costs else metrics[0]
    y = qualities[0] if qualities else metrics[-1]
    xs = np.array([float(r[x]) for r in rows])
    ys = np.array([float(r[y]) for r in rows])
    on = np.zeros(len(rows), dtype=bool)
    on[front] = True

    fig = Figure(figsize=(6.4, 4))
    ax = fig.subplots()
    ax.scatter(xs[~on], ys[~on], color="0.6", label="dominated", zorder=2)
    ax.scatter(xs[on], ys[on], color="tab:red", s=60, label="on the front", zorder=3)
    if len(metrics) == 2 and x != y:
        # With two objectives the front is a staircase; draw it to show what it rules out.
        order = sorted(front, key=lambda i: xs[i])
        ax.plot(xs[order], ys[order], "-", color="tab:red", zorder=1)
    for i, name in enumerate(names):
        ax.annotate(name, (xs[i], ys[i]), textcoords="offset points", xytext=(5, 5))
    if log_x and np.all(xs > 0):
        ax.set_xscale("log")
    ax.margins(x=0.15, y=0.12)
    ax.set_xlabel(f"{x} ({'higher' if objectives[x] == 'max' else 'lower'} is better)")
    ax.set_ylabel(f"{y} ({'higher' if objectives[y] == 'max' else 'lower'} is better)")
    ax.set_title("front over " + " + ".join(metrics), fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def pareto_explorer(
    rows: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = ("accuracy", "macs"),
    label: str = "model",
    log_x: bool = True,
) -> Explorer:
    """Return a widget to pick the metrics of a Pareto front over measured `rows` and see it.

    `rows` are dicts with a `label` key (the model name) and numeric metrics, as lesson 00
    measures them (accuracy, params, macs, size_bytes, latency_ms). A dropdown picks the cost
    on the x axis, checkboxes add more costs to minimise and a toggle keeps accuracy (maximised)
    in; the output shows `pareto_figure` for that choice and prints the models on the front.
    `metrics` is the starting choice; a metric that is not in every row raises ValueError.

    Source: Menghani 2021, "Efficient Deep Learning" survey, section 1 (Pareto-optimality).
    """
    metrics = _check_metrics(rows, metrics, label)
    allowed = _numeric_metrics(rows, label)
    qualities = [m for m in allowed if m in QUALITY_METRICS]
    costs = [m for m in allowed if m not in QUALITY_METRICS]
    if not costs:
        raise ValueError(f"rows must have at least one cost metric besides {qualities}")
    chosen_costs = [m for m in metrics if m in costs] or costs[:1]
    controls: dict[str, widgets.ValueWidget] = {
        "x": widgets.Dropdown(options=costs, value=chosen_costs[0], description="cost (x)")
    }
    for m in costs:
        controls[m] = widgets.Checkbox(
            value=m in chosen_costs[1:], description=f"also minimise {m}", indent=False
        )
    for m in qualities:
        controls[m] = widgets.Checkbox(
            value=m in metrics, description=f"maximise {m}", indent=False
        )

    def draw(x: str, **flags: bool) -> tuple[Figure, str]:
        picked = [m for m in qualities if flags[m]] + [x]
        picked += [m for m in costs if flags[m] and m != x]
        fig = pareto_figure(rows, metrics=picked, label=label, log_x=log_x)
        return fig, pareto_summary(rows, metrics=picked, label=label)

    return Explorer(controls, draw)


def pareto_summary(
    rows: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = ("accuracy", "macs"),
    label: str = "model",
) -> str:
    """Return two lines: the objectives (accuracy maximised, the rest minimised) and the names
    of the models on their Pareto front, in the order of `rows`.

    Source: Menghani 2021, "Efficient Deep Learning" survey, section 1 (Pareto-optimality).
    """
    metrics = _check_metrics(rows, metrics, label)
    objectives = {m: "max" if m in QUALITY_METRICS else "min" for m in metrics}
    front = pareto_front(rows, objectives)
    listed = ", ".join(f"{m} ({d})" for m, d in objectives.items())
    names = ", ".join(str(rows[i].get(label, i)) for i in front)
    return f"objectives: {listed}\non the front: {names}"


def _numeric_metrics(rows: Sequence[Mapping[str, Any]], label: str) -> list[str]:
    if not rows:
        raise ValueError("rows must hold at least one measured model, got none")
    keys = [k for k in rows[0] if k != label]
    return [
        k
        for k in keys
        if all(
            k in r and isinstance(r[k], int | float | np.number) and not isinstance(r[k], bool)
            for r in rows
        )
    ]


def _check_metrics(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], label: str):
    allowed = _numeric_metrics(rows, label)
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics must be a non-empty sequence of {allowed}, got {metrics!r}")
    for metric in metrics:
        if metric not in allowed:
            raise ValueError(
                f"metrics names an unknown metric {metric!r}; allowed metrics (numeric in "
                f"every row): {allowed}"
            )
    return list(dict.fromkeys(metrics))


# --------------------------------------------------------------------------- lesson 01


@lru_cache(maxsize=64)
def mobilenet_costs(alpha: float, resolution: int) -> tuple[int, int]:
    """Return (params, mult-adds) of `mobilenet_v1(alpha=alpha)` on one resolution x resolution
    RGB image, cached: `count_params` and `count_macs` of a freshly built model.

    Source: Howard et al. 2017, "MobileNets", section 3.3 and Tables 6-7.
    """
    model = mobilenet_v1(alpha=alpha)
    return count_params(model), count_macs(model, (1, 3, resolution, resolution))


def mobilenet_figure(alpha: float = 1.0, resolution: int = 224) -> Figure:
    """Return a plot of MobileNet v1's mult-adds against params at (`alpha`, `resolution`)
    among the paper's published points.

    Crosses are the paper's Tables 6 and 7, circles the kit's own count at the same settings,
    the star the current choice.

    Source: Howard et al. 2017, "MobileNets", Tables 6 (width multiplier) and 7 (resolution).
    """
    alpha, resolution = _check_mobilenet(alpha, resolution)
    params, madds = mobilenet_costs(alpha, resolution)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    paper = MOBILENET_V1_PAPER
    ours = {key: mobilenet_costs(*key) for key in paper}
    ax.plot(
        [p for p, _ in paper.values()],
        [m for _, m in paper.values()],
        "x",
        color="black",
        ms=9,
        label="Howard et al. 2017 (Tables 6-7)",
    )
    ax.plot(
        [p / 1e6 for p, _ in ours.values()],
        [m / 1e6 for _, m in ours.values()],
        "o",
        mfc="none",
        color="tab:blue",
        label="counted here, same settings",
    )
    for (a, r), (p, m) in paper.items():
        ax.annotate(f"{a:g}, {r}", (p, m), textcoords="offset points", xytext=(6, -4), fontsize=8)
    ax.plot(
        params / 1e6,
        madds / 1e6,
        "*",
        color="tab:red",
        ms=16,
        label=f"alpha {alpha:g}, {resolution}",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel("mult-adds (M)")
    ax.set_title("MobileNet v1: width multiplier alpha, resolution rho", fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def mobilenet_summary(alpha: float = 1.0, resolution: int = 224) -> str:
    """Return MobileNet v1's counted params and mult-adds at (`alpha`, `resolution`) and, on a
    second line, the paper's figures for that pair (or that the paper has none).

    Source: Howard et al. 2017, "MobileNets", Tables 6 (width multiplier) and 7 (resolution).
    """
    alpha, resolution = _check_mobilenet(alpha, resolution)
    params, madds = mobilenet_costs(alpha, resolution)
    text = f"alpha {alpha:g}, {resolution}x{resolution}: params {params:,d}, mult-adds {madds:,d}"
    if (alpha, resolution) in MOBILENET_V1_PAPER:
        p, m = MOBILENET_V1_PAPER[(alpha, resolution)]
        text += f"\npaper: params {p}M, mult-adds {m:g}M"
    else:
        text += "\npaper: no figure for this pair (Table 6 varies alpha at 224, Table 7 rho at 1)"
    return text


def mobilenet_explorer(alpha: float = 1.0, resolution: int = 224) -> Explorer:
    """Return a widget with sliders for MobileNet v1's width multiplier alpha (0.25 to 1.0)
    and input resolution (128 to 224), showing `mobilenet_figure` for the chosen pair.

    Source: Howard et al. 2017, "MobileNets", section 3.3 and Tables 6-7.
    """
    alpha, resolution = _check_mobilenet(alpha, resolution)
    controls = {
        "alpha": widgets.FloatSlider(
            value=alpha,
            min=0.25,
            max=1.0,
            step=0.05,
            description="alpha",
            continuous_update=False,
        ),
        "resolution": widgets.IntSlider(
            value=resolution,
            min=MOBILENET_RESOLUTIONS[0],
            max=MOBILENET_RESOLUTIONS[-1],
            step=32,
            description="resolution",
            continuous_update=False,
        ),
    }

    def draw(alpha: float, resolution: int) -> tuple[Figure, str]:
        return mobilenet_figure(alpha, resolution), mobilenet_summary(alpha, resolution)

    return Explorer(controls, draw)


def _check_mobilenet(alpha: float, resolution: int) -> tuple[float, int]:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.25 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0.25, 1.0], got {alpha!r}")
    check_in("resolution", resolution, MOBILENET_RESOLUTIONS)
    # Slider steps are binary fractions away from the paper's; round so the cache and the
    # paper's table see 0.75, not 0.7500000000000001.
    return round(float(alpha), 4), int(resolution)


# --------------------------------------------------------------------------- lesson 02


def attention_layers(model: nn.Module) -> dict[str, MultiHeadAttention]:
    """Return the `MultiHeadAttention` modules of `model`, keyed by their `named_modules` name.

    Source: Vaswani et al. 2017, "Attention Is All You Need", section 3.2.2.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, MultiHeadAttention)
    }


def head_weights(model: nn.Module, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Return each attention layer's per-head weights on `inputs`: {layer name: (N, H, L, S)}.

    The model runs once in eval mode without gradients; a forward hook on every
    `MultiHeadAttention` calls the layer again on the same arguments with
    `need_weights=True, average_attn_weights=False`. The model's own training mode is restored.

    Source: Vaswani et al. 2017, section 3.2.2; torch.nn.Module.register_forward_hook.
    """
    layers = attention_layers(model)
    if not layers:
        raise ValueError(
            f"model must contain effdl.models.attention.MultiHeadAttention layers; "
            f"{type(model).__name__} has none"
        )
    captured: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(module, args, kwargs, output):
            kwargs = {**kwargs, "need_weights": True, "average_attn_weights": False}
            # forward(), not __call__, so the hook does not fire again.
            captured[name] = module.forward(*args, **kwargs)[1].detach().clone()

        return hook

    handles = [m.register_forward_hook(hook_for(n), with_kwargs=True) for n, m in layers.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return captured


def attention_figure(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    index: int = 0,
    layer: str | int = 0,
    head: int = 0,
) -> Figure:
    """Return a figure of input `index` of the batch `inputs` beside the attention map of
    `head` in attention layer `layer` (a name from `attention_layers` or its position).

    Source: Vaswani et al. 2017, section 3.2.2; Bahdanau et al. 2015, figure 3.
    """
    return _attention_figure(inputs, head_weights(model, inputs), index, layer, head)


def _attention_figure(inputs, weights, index, layer, head) -> Figure:
    name, matrix = _pick_head(inputs, weights, index, layer, head)
    signal = inputs[index].detach().cpu()
    fig = Figure(figsize=(10, 3.6))
    ax_in, ax_map = fig.subplots(1, 2, width_ratios=(1.2, 1))
    values = signal.flatten().numpy()
    if signal.dtype.is_floating_point:
        ax_in.plot(values, color="black")
        ax_in.set_xlabel("position in the signal")
    else:
        ax_in.stem(values)
        ax_in.set_xlabel("token position")
    ax_in.set_title(f"input {index}", fontsize="medium")
    ax_in.grid(True, alpha=0.3)
    image = ax_map.imshow(matrix, cmap="Greys", vmin=0.0, vmax=max(1e-12, float(matrix.max())))
    ax_map.set_xlabel("key position")
    ax_map.set_ylabel("query position")
    ax_map.set_title(f"{name}, head {head}", fontsize="medium")
    fig.colorbar(image, ax=ax_map, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def _attention_summary(inputs, weights, index, layer, head) -> str:
    name, matrix = _pick_head(inputs, weights, index, layer, head)
    return (
        f"input {index}, layer {name!r}, head {head}: {matrix.shape[0]} queries x "
        f"{matrix.shape[1]} keys; each query's strongest key: {matrix.argmax(axis=1).tolist()}"
    )


def attention_explorer(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    index: int = 0,
    layer: str | int = 0,
    head: int = 0,
) -> Explorer:
    """Return a widget to pick an input of the batch `inputs`, an attention layer of `model`
    and a head, showing the input and that head's attention map (`attention_figure`).

    The weights of every layer and head are computed once (`head_weights`), so moving a
    control only redraws. Bad `index`, `layer` or `head` raise ValueError naming it.

    Source: Vaswani et al. 2017, "Attention Is All You Need", section 3.2.2.
    """
    weights = head_weights(model, inputs)
    name, _ = _pick_head(inputs, weights, index, layer, head)
    heads = next(iter(weights.values())).shape[1]
    controls = {
        "index": widgets.IntSlider(
            value=index, min=0, max=len(inputs) - 1, description="input", continuous_update=False
        ),
        "layer": widgets.Dropdown(options=list(weights), value=name, description="layer"),
        "head": widgets.Dropdown(options=list(range(heads)), value=head, description="head"),
    }

    def draw(index: int, layer: str, head: int) -> tuple[Figure, str]:
        state = (inputs, weights, index, layer, head)
        return _attention_figure(*state), _attention_summary(*state)

    return Explorer(controls, draw)


def _pick_head(inputs, weights, index, layer, head) -> tuple[str, np.ndarray]:
    names = list(weights)
    if isinstance(layer, bool) or not isinstance(layer, int | str):
        raise ValueError(f"layer must be a layer name in {names} or its position, got {layer!r}")
    if isinstance(layer, int):
        if not 0 <= layer < len(names):
            raise ValueError(
                f"layer must be a position in [0, {len(names) - 1}] or a name in {names}, "
                f"got {layer}"
            )
        layer = names[layer]
    if layer not in weights:
        raise ValueError(f"layer must be one of {names} (or its position), got {layer!r}")
    batch, heads = weights[layer].shape[:2]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < batch:
        raise ValueError(f"index must be an int in [0, {batch - 1}] (the batch), got {index!r}")
    if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < heads:
        raise ValueError(f"head must be an int in [0, {heads - 1}], got {head!r}")
    if len(inputs) != batch:
        raise ValueError(
            f"inputs must be the batch the weights came from ({batch}), got {len(inputs)}"
        )
    return layer, weights[layer][index, head].cpu().numpy()


# --------------------------------------------------------------------------- lesson 03

#: The bit widths the quantization explorer offers (its slider's range).
QUANTIZATION_BITS = (2, 8)


def quantization_figure(weights: torch.Tensor, bits: int = 8, per_channel: bool = False) -> Figure:
    """Return a figure of `weights` fake-quantized to `bits` bits: each weight against its
    quantized value (the staircase of levels) and the histogram of the error
    w - fake_quantize(w), with the half-step bounds +-s/2 marked.

    Quantization is symmetric and signed, per tensor or (`per_channel`) per output channel
    (dim 0), as `effdl.compress.quantize.quantize_weights_` does it.

    Source: Jacob et al. 2018, section 2.1; Krishnamoorthi 2018, section 2.
    """
    w, data = _quantization_data(weights, bits, per_channel)
    fig = Figure(figsize=(10, 3.6))
    ax_map, ax_hist = fig.subplots(1, 2)
    flat = w.flatten()
    approx = (w - data["error"]).flatten()
    ax_map.plot(flat.numpy(), approx.numpy(), ".", ms=2, color="tab:blue")
    ax_map.plot(
        [float(flat.min()), float(flat.max())],
        [float(flat.min()), float(flat.max())],
        ":",
        color="0.5",
    )
    ax_map.set_xlabel("weight w")
    ax_map.set_ylabel("fake_quantize(w)")
    ax_map.set_title(f"{bits} bits: {data['levels']} levels", fontsize="medium")
    ax_map.grid(True, alpha=0.3)
    edges, counts = data["edges"], data["counts"]
    ax_hist.stairs(counts, edges, fill=True, color="tab:orange", alpha=0.8)
    half = data["step"] / 2
    for x in (-half, half):
        ax_hist.axvline(x, ls="--", color="black", lw=1)
    ax_hist.set_xlabel("error w - fake_quantize(w)")
    ax_hist.set_ylabel("weights")
    scope = "per channel" if per_channel else "per tensor"
    ax_hist.set_title(f"{scope}: RMS error {data['rms']:.3g} (dashed: +-step/2)", fontsize="medium")
    ax_hist.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def quantization_summary(weights: torch.Tensor, bits: int = 8, per_channel: bool = False) -> str:
    """Return one line: the bit width, levels, step, RMS and largest quantization error of
    `weights`, and the RMS error relative to the weights' own RMS.

    Source: Jacob et al. 2018, section 2.1.
    """
    w, data = _quantization_data(weights, bits, per_channel)
    scope = "per channel" if per_channel else "per tensor"
    relative = data["rms"] / max(float(w.pow(2).mean().sqrt()), 1e-30)
    step = "largest step" if per_channel else "step"
    return (
        f"{bits} bits {scope}: {data['levels']} levels, {step} {data['step']:.4g}, "
        f"RMS error {data['rms']:.6g} ({relative:.2%} of the weights' RMS), "
        f"max |error| {data['max_abs']:.4g}"
    )


def quantization_explorer(
    weights: torch.Tensor, *, bits: int = 8, per_channel: bool = False
) -> Explorer:
    """Return a widget with a bit-width slider (2 to 8) and a per-channel checkbox over
    `quantization_figure` of `weights`, printing `quantization_summary`.

    Source: Jacob et al. 2018, section 2.1; Krishnamoorthi 2018, section 2 (per-channel scales).
    """
    _quantization_data(weights, bits, per_channel)
    low, high = QUANTIZATION_BITS
    controls = {
        "bits": widgets.IntSlider(
            value=bits, min=low, max=high, step=1, description="bits", continuous_update=False
        ),
        "per_channel": widgets.Checkbox(value=per_channel, description="per channel", indent=False),
    }

    def draw(bits: int, per_channel: bool) -> tuple[Figure, str]:
        return (
            quantization_figure(weights, bits, per_channel),
            quantization_summary(weights, bits, per_channel),
        )

    return Explorer(controls, draw)


def _quantization_data(weights, bits, per_channel) -> tuple[torch.Tensor, dict]:
    if not isinstance(weights, torch.Tensor) or not weights.is_floating_point():
        kind = (
            f"a {weights.dtype} tensor"
            if isinstance(weights, torch.Tensor)
            else type(weights).__name__
        )
        raise ValueError(f"weights must be a float tensor (a layer's weight), got {kind}")
    if weights.numel() == 0:
        raise ValueError("weights must hold at least one value, got an empty tensor")
    low, high = QUANTIZATION_BITS
    if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= high:
        raise ValueError(f"bits must be an int in {low}..{high}, got {bits!r}")
    if not isinstance(per_channel, bool):
        raise ValueError(f"per_channel must be a bool, got {per_channel!r}")
    if per_channel and weights.dim() < 2:
        raise ValueError(
            f"per_channel needs weights with an output-channel dim (2-D or more), got shape "
            f"{tuple(weights.shape)}"
        )
    w = weights.detach().float().cpu()
    return w, error_histogram(w, bits, per_channel)


# --------------------------------------------------------------------------- lesson 04

#: The keys `pruning_figure` reads from accuracy rows (`sparsity_sweep`) and timing rows
#: (`csr_speed`).
PRUNING_ACCURACY_KEYS = ("sparsity", "accuracy_pruned", "accuracy_finetuned")
PRUNING_SPEED_KEYS = ("sparsity", "dense_ms", "csr_ms")


def pruning_figure(
    rows: Sequence[Mapping[str, Any]],
    speed_rows: Sequence[Mapping[str, Any]] | None = None,
    *,
    sparsity: float | None = None,
) -> Figure:
    """Return a two-panel figure at one sparsity: accuracy against sparsity (right after
    pruning and after fine-tuning, dense dashed) and the time of one layer's product stored
    dense and as CSR, with the chosen sparsity marked on both and CSR's break-even sparsity
    dotted.

    `rows` come from `effdl.experiments.pruning.sparsity_sweep`; `speed_rows` from `csr_speed`
    (or leave it out when `rows` already hold both, merged by sparsity). `sparsity` must be one
    of the rows' sparsities (default: `pruning_default_sparsity`); each panel marks its row
    nearest to it.

    Source: Han et al. 2015, Figure 5 (accuracy against pruned parameters); Han et al. 2016,
    section 6 (sparse layers against dense).
    """
    accuracy, speed, sparsity = _pruning_data(rows, speed_rows, sparsity)
    fig = Figure(figsize=(10, 3.6))
    ax_acc, ax_time = fig.subplots(1, 2)
    xs = [r["sparsity"] for r in accuracy]
    ax_acc.plot(xs, [r["accuracy_pruned"] for r in accuracy], "o-", label="pruned")
    ax_acc.plot(xs, [r["accuracy_finetuned"] for r in accuracy], "s-", label="fine-tuned")
    if "dense_accuracy" in accuracy[0]:
        ax_acc.axhline(accuracy[0]["dense_accuracy"], ls="--", color="0.4", lw=1, label="dense")
    ax_acc.axvline(sparsity, color="tab:red", lw=1)
    chosen = _nearest_row(accuracy, sparsity)
    ax_acc.plot(
        [chosen["sparsity"]] * 2,
        [chosen["accuracy_pruned"], chosen["accuracy_finetuned"]],
        "o",
        ms=9,
        mfc="none",
        color="tab:red",
    )
    ax_acc.set_xlabel("sparsity (fraction of weights removed)")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title(f"accuracy at sparsity {sparsity:g}", fontsize="medium")
    ax_acc.legend(fontsize="small", loc="lower left")
    ax_acc.grid(True, alpha=0.3)
    if speed:
        ts = [r["sparsity"] for r in speed]
        ax_time.plot(ts, [r["dense_ms"] for r in speed], "o-", label="dense")
        ax_time.plot(ts, [r["csr_ms"] for r in speed], "s-", label="CSR (torch)")
        if all(r.get("kit_csr_ms") is not None for r in speed):
            ax_time.plot(
                ts, [r["kit_csr_ms"] for r in speed], ":", color="0.5", label="CSR (kit, reference)"
            )
        ax_time.set_yscale("log")
        ax_time.axvline(sparsity, color="tab:red", lw=1)
        timed = _nearest_row(speed, sparsity)
        ax_time.plot(
            [timed["sparsity"]] * 2,
            [timed["dense_ms"], timed["csr_ms"]],
            "o",
            ms=9,
            mfc="none",
            color="tab:red",
        )
        even = break_even_sparsity(speed)
        if even is not None:
            ax_time.axvline(even, ls=":", color="black", lw=1.5, label=f"break-even {even:g}")
        ax_time.set_xlabel("sparsity")
        ax_time.set_ylabel("time of W @ X (ms)")
        ax_time.set_title("one layer, dense vs CSR", fontsize="medium")
        ax_time.legend(fontsize="small", loc="lower left")
        ax_time.grid(True, alpha=0.3, which="both")
    else:
        ax_time.set_axis_off()
        ax_time.text(0.5, 0.5, "no timing rows", ha="center", va="center")
    fig.tight_layout()
    return fig


def pruning_summary(
    rows: Sequence[Mapping[str, Any]],
    speed_rows: Sequence[Mapping[str, Any]] | None = None,
    *,
    sparsity: float | None = None,
) -> str:
    """Return one line at `sparsity`: the compression 1 / (1 - s), the accuracy pruned and
    fine-tuned (and dense), and, with timing rows, dense vs CSR time, the speed-up, the bytes
    and the break-even sparsity.

    Source: Han et al. 2015, Table 1; Han et al. 2016, section 6.
    """
    accuracy, speed, sparsity = _pruning_data(rows, speed_rows, sparsity)
    row = _nearest_row(accuracy, sparsity)
    where = "" if row["sparsity"] == sparsity else f" (nearest swept {row['sparsity']:g})"
    dense = (
        f" (dense {row['dense_accuracy']:.1f}%)" if row.get("dense_accuracy") is not None else ""
    )
    text = (
        f"sparsity {sparsity:g}, {1 / (1 - sparsity):.1f}x fewer weights: accuracy "
        f"{row['accuracy_pruned']:.1f}% pruned, {row['accuracy_finetuned']:.1f}% fine-tuned"
        f"{dense}{where}"
    )
    if speed:
        timed = _nearest_row(speed, sparsity)
        at = "" if timed["sparsity"] == sparsity else f" at {timed['sparsity']:g}"
        even = break_even_sparsity(speed)
        text += (
            f"; W @ X{at}: dense {timed['dense_ms']:.3g} ms, CSR {timed['csr_ms']:.3g} ms "
            f"({timed['dense_ms'] / timed['csr_ms']:.2f}x)"
        )
        if timed.get("csr_bytes") is not None and timed.get("dense_bytes") is not None:
            text += f", CSR {timed['csr_bytes'] / timed['dense_bytes']:.0%} of the dense bytes"
        text += (
            f"; CSR wins from sparsity {even:g}" if even is not None else "; CSR never wins here"
        )
    return text


def pruning_default_sparsity(rows: Sequence[Mapping[str, Any]]) -> float:
    """Return the sparsity `pruning_explorer` starts at: the highest one whose fine-tuned
    accuracy is within 1 point of dense (`max_sparsity_within`), else the first row's.

    Source: Han et al. 2015, Table 1 (pruning "without accuracy loss").
    """
    if rows and all("dense_accuracy" in r for r in rows):
        best = max_sparsity_within(rows, 1.0)
        if best is not None:
            return best
    return rows[0]["sparsity"]


def pruning_explorer(
    rows: Sequence[Mapping[str, Any]],
    speed_rows: Sequence[Mapping[str, Any]] | None = None,
    *,
    sparsity: float | None = None,
) -> Explorer:
    """Return a widget with a sparsity slider (the swept and timed sparsities) over
    `pruning_figure`, printing `pruning_summary`.

    Source: Han et al. 2015, Figure 5; Han et al. 2016, section 6.
    """
    accuracy, speed, sparsity = _pruning_data(rows, speed_rows, sparsity)
    options = sorted({r["sparsity"] for r in accuracy} | {r["sparsity"] for r in speed})
    controls = {
        "sparsity": widgets.SelectionSlider(
            options=options,
            value=sparsity,
            description="sparsity",
            continuous_update=False,
        )
    }

    def draw(sparsity: float) -> tuple[Figure, str]:
        return (
            pruning_figure(accuracy, speed, sparsity=sparsity),
            pruning_summary(accuracy, speed, sparsity=sparsity),
        )

    return Explorer(controls, draw)


def _pruning_data(rows, speed_rows, sparsity) -> tuple[list[dict], list[dict], float]:
    accuracy = _rows_with("rows", rows, PRUNING_ACCURACY_KEYS)
    if speed_rows is None:
        # merged rows: the timing keys, where present, come with the accuracy rows
        timed = [r for r in accuracy if all(k in r for k in PRUNING_SPEED_KEYS)]
        speed = _rows_with("rows", timed, PRUNING_SPEED_KEYS) if timed else []
    else:
        speed = _rows_with("speed_rows", speed_rows, PRUNING_SPEED_KEYS)
    for name, group in (("rows", accuracy), ("speed_rows", speed)):
        for r in group:
            s = r["sparsity"]
            if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s < 1:
                raise ValueError(f"{name} hold sparsities in [0, 1), got {s!r}")
    accuracy.sort(key=lambda r: r["sparsity"])
    speed.sort(key=lambda r: r["sparsity"])
    options = {r["sparsity"] for r in accuracy} | {r["sparsity"] for r in speed}
    if sparsity is None:
        sparsity = pruning_default_sparsity(accuracy)
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    if sparsity not in options:
        raise ValueError(
            f"sparsity must be one of the rows' sparsities {sorted(options)}, got {sparsity!r}"
        )
    return accuracy, speed, float(sparsity)


def _rows_with(name: str, rows: object, keys: Sequence[str]) -> list[dict]:
    if isinstance(rows, Mapping | str) or not isinstance(rows, Sequence) or not rows:
        raise ValueError(f"{name} must be a non-empty list of dicts, got {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"{name}[{i}] must be a dict, got {type(row).__name__}")
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(f"{name}[{i}] lacks the keys {missing}; each row needs {list(keys)}")
        out.append(dict(row))
    return out


def _nearest_row(rows: Sequence[Mapping[str, Any]], sparsity: float) -> Mapping[str, Any]:
    return min(rows, key=lambda r: abs(r["sparsity"] - sparsity))


# --------------------------------------------------------------------------- lesson 05

#: The temperatures the temperature explorer offers (its log slider's range).
TEMPERATURE_RANGE = (0.5, 20.0)


def temperature_figure(
    logits: torch.Tensor, T: float = 1.0, *, labels: Sequence[str] | None = None
) -> Figure:
    """Return a two-panel figure of one example's soft targets softmax(logits / T): the
    probabilities as bars (the top class dark) and the same on a log scale, where the small
    probabilities that carry the "dark knowledge" stay visible, with the T = 1 softmax dotted
    for comparison. The title gives T and the entropy in bits against its maximum log2 C.

    `logits` is one example's (C,) logits; `labels` names the C classes (default 0..C-1).

    Source: Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network",
    section 2, eq. 1.
    """
    z, T, names = _temperature_data(logits, T, labels)
    p = soft_targets(z, T).numpy()
    plain = soft_targets(z, 1.0).numpy()
    top = int(np.argmax(p))
    xs = np.arange(len(p))
    colors = ["tab:blue" if i == top else "tab:cyan" for i in xs]
    fig = Figure(figsize=(10, 3.6))
    ax_bar, ax_log = fig.subplots(1, 2)
    ax_bar.bar(xs, p, color=colors)
    ax_bar.set_ylim(0, 1)
    ax_bar.set_xticks(xs, names)
    ax_bar.set_xlabel("class")
    ax_bar.set_ylabel("soft target")
    ax_bar.set_title(
        f"T = {T:.3g}: entropy {_entropy_bits(p):.2f} of {np.log2(len(p)):.2f} bits",
        fontsize="medium",
    )
    ax_bar.grid(True, axis="y", alpha=0.3)
    floor = np.finfo(np.float32).tiny
    ax_log.bar(xs, np.maximum(p, floor), color=colors, label=f"T = {T:.3g}")
    ax_log.plot(xs, np.maximum(plain, floor), "k_", ms=14, mew=2, label="T = 1")
    ax_log.set_yscale("log")
    ax_log.set_ylim(max(min(p.min(), plain.min()) / 3, 1e-30), 1.5)
    ax_log.set_xticks(xs, names)
    ax_log.set_xlabel("class")
    ax_log.set_ylabel("soft target (log scale)")
    ax_log.set_title("the small probabilities, on a log scale", fontsize="medium")
    ax_log.legend(fontsize="small", loc="lower right")
    ax_log.grid(True, axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def temperature_summary(
    logits: torch.Tensor, T: float = 1.0, *, labels: Sequence[str] | None = None
) -> str:
    """Return one line at temperature `T`: the entropy of the soft targets in bits (against
    log2 C), the top class and the runner-up with their probabilities, and the ratio of the two,
    exp((z_top - z_second) / T), which falls towards 1 as T grows.

    Source: Hinton, Vinyals and Dean 2015, section 2.
    """
    z, T, names = _temperature_data(logits, T, labels)
    p = soft_targets(z, T)
    order = torch.argsort(z, descending=True).tolist()
    first, second = order[0], order[1]
    ratio = float(torch.exp((z[first] - z[second]) / T))
    return (
        f"T = {T:.3g}: entropy {_entropy_bits(p.numpy()):.2f} of {np.log2(len(p)):.2f} bits; "
        f"top class {names[first]} p = {float(p[first]):.3g}, runner-up {names[second]} "
        f"p = {float(p[second]):.3g}, ratio {ratio:.3g}"
    )


def temperature_explorer(
    logits: torch.Tensor, *, T: float = 1.0, labels: Sequence[str] | None = None
) -> Explorer:
    """Return a widget with a temperature slider (log scale, 0.5 to 20) over
    `temperature_figure` of one example's `logits`, printing `temperature_summary`.

    Source: Hinton, Vinyals and Dean 2015, section 2.
    """
    _temperature_data(logits, T, labels)
    low, high = TEMPERATURE_RANGE
    controls = {
        "T": widgets.FloatLogSlider(
            value=T,
            base=10,
            min=float(np.log10(low)),
            max=float(np.log10(high)),
            step=0.01,
            description="T",
            continuous_update=False,
        )
    }

    def draw(T: float) -> tuple[Figure, str]:
        return (
            temperature_figure(logits, T, labels=labels),
            temperature_summary(logits, T, labels=labels),
        )

    return Explorer(controls, draw)


def _temperature_data(logits, T, labels) -> tuple[torch.Tensor, float, list[str]]:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        kind = (
            f"a {logits.dtype} tensor"
            if isinstance(logits, torch.Tensor)
            else type(logits).__name__
        )
        raise ValueError(f"logits must be a float tensor of one example's logits, got {kind}")
    if logits.dim() != 1 or logits.numel() < 2:
        raise ValueError(
            f"logits must be one example's logits, a 1-D tensor of at least 2 classes, got shape "
            f"{tuple(logits.shape)}"
        )
    z = logits.detach().float().cpu()
    if not torch.isfinite(z).all():
        raise ValueError("logits must be finite, got inf or NaN")
    low, high = TEMPERATURE_RANGE
    if isinstance(T, bool) or not isinstance(T, int | float) or not low <= T <= high:
        raise ValueError(f"T must be a temperature in [{low:g}, {high:g}], got {T!r}")
    if labels is None:
        names = [str(i) for i in range(len(z))]
    elif isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) != len(z):
        raise ValueError(f"labels must name the {len(z)} classes, got {labels!r}")
    else:
        names = [str(name) for name in labels]
    return z, float(T), names


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


# --------------------------------------------------------------------------- lesson 06

#: The formats the float-format explorer offers, by the names of `mixed_precision.FORMATS`.
FLOAT_FORMAT_NAMES = tuple(FORMATS)
#: The largest magnitude the float-format explorer takes (just under fp32's max, 3.4028e38).
FLOAT_VALUE_LIMIT = 3.4e38
#: The x range of the float-format figure's range panel: fp32's smallest subnormal (1.4e-45)
#: to its largest finite value (3.4e38), with a little room either side.
FLOAT_RANGE_LIMITS = (1e-46, 1e39)
#: The colours of the bit boxes, by field.
FLOAT_FIELD_COLORS = {"sign": "#f4a6a6", "exponent": "#a6c8f4", "mantissa": "#b8e0a6"}


def float_format_figure(value: float = 0.1, fmt: str = "fp16") -> Figure:
    """Return a two-panel figure of `value` rounded to `fmt` ("fp32", "fp16" or "bf16"): its
    bits as a row of boxes coloured by field (sign, exponent, mantissa), titled with the stored
    value and the rounding error, above the range of each format on a log scale (subnormals
    light, normal numbers dark, `fmt` highlighted) with a vertical line at |value|.

    Source: IEEE 754-2008, section 3.4 (the binary interchange format's fields); Micikevicius
    et al. 2018, section 3.1 and Figure 3 (the fp16 range); Kalamkar et al. 2019 (bfloat16).
    """
    value, form, stored, status = _float_format_data(value, fmt)
    fields = dict(zip(FLOAT_FIELD_COLORS, float_bits(value, form.name), strict=True))
    fig = Figure(figsize=(10, 4.6))
    ax_bits, ax_range = fig.subplots(2, 1, height_ratios=(1, 1.6))
    left = 0
    for field, bits in fields.items():
        for i, bit in enumerate(bits):
            ax_bits.add_patch(
                Rectangle((left + i, 0), 1, 1, facecolor=FLOAT_FIELD_COLORS[field], edgecolor="k")
            )
            ax_bits.text(left + i + 0.5, 0.5, bit, ha="center", va="center", fontsize=9)
        label = {
            "sign": "sign",
            "exponent": f"exponent\n{form.exponent_bits} bits, bias {form.bias}",
            "mantissa": f"mantissa\n{form.mantissa_bits} bits",
        }[field]
        ax_bits.text(left + len(bits) / 2, -0.25, label, ha="center", va="top", fontsize=8)
        left += len(bits)
    widest = max(f.bits for f in map(float_format, FLOAT_FORMAT_NAMES))
    ax_bits.set_xlim(-0.5, widest + 0.5)
    ax_bits.set_ylim(-1.6, 1.2)
    ax_bits.set_aspect("equal")
    ax_bits.set_axis_off()
    ax_bits.set_title(
        f"{value!r} in {form.name}: stored {stored!r} (rounding error {stored - value:+.3g}), "
        f"{status}",
        fontsize="medium",
    )

    names = list(FLOAT_FORMAT_NAMES)
    for y, name in enumerate(names):
        other = float_format(name)
        color = "tab:red" if name == form.name else "0.45"
        ax_range.barh(
            y,
            other.smallest_normal - other.smallest_subnormal,
            left=other.smallest_subnormal,
            height=0.6,
            color=color,
            alpha=0.35,
        )
        ax_range.barh(
            y,
            other.max - other.smallest_normal,
            left=other.smallest_normal,
            height=0.6,
            color=color,
        )
    if value != 0:
        ax_range.axvline(abs(value), color="black", lw=1.5)
    ax_range.set_xscale("log")
    ax_range.set_xlim(*FLOAT_RANGE_LIMITS)
    ax_range.set_yticks(range(len(names)), names)
    for tick in ax_range.get_yticklabels():
        tick.set_fontweight("bold" if tick.get_text() == form.name else "normal")
    ax_range.invert_yaxis()
    ax_range.set_xlabel("magnitude (log scale)")
    ax_range.set_title(
        "range: subnormal (light) and normal (dark) magnitudes; line at |value|", fontsize="medium"
    )
    ax_range.legend(
        handles=[
            Patch(color="0.45", alpha=0.35, label="subnormal"),
            Patch(color="0.45", label="normal"),
        ],
        fontsize="small",
        loc="center left",
    )
    ax_range.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def float_format_summary(value: float = 0.1, fmt: str = "fp16") -> str:
    """Return one line: `fmt` and its bit layout, the value `value` is stored as, the relative
    rounding error, the spacing to the next representable number there (`spacing`), whether
    the stored value is normal, subnormal, zero, underflows to 0 or overflows to inf, and the
    format's largest finite value and smallest normal.

    Source: IEEE 754-2008; Goldberg 1991, section 1.2 (ulps); Micikevicius et al. 2018,
    section 3.1.
    """
    value, form, stored, status = _float_format_data(value, fmt)
    gap = math.inf if math.isinf(stored) else spacing(value, form.name)
    relative = (stored - value) / abs(value) if value != 0 else 0.0
    return (
        f"{form.name} (1+{form.exponent_bits}+{form.mantissa_bits} bits): {value!r} is stored as "
        f"{stored!r}, relative rounding error {relative:.3g}, spacing {gap:.6g}, {status}; "
        f"max {form.max:.6g}, smallest normal {form.smallest_normal:.6g}"
    )


def float_format_explorer(value: float = 0.1, *, fmt: str = "fp16") -> Explorer:
    """Return a widget with format buttons (fp32, fp16, bf16) and a number box (clamped to
    +-3.4e38) over `float_format_figure`, printing `float_format_summary`.

    Source: IEEE 754-2008; Micikevicius et al. 2018, section 3.1; Kalamkar et al. 2019.
    """
    value, form, _, _ = _float_format_data(value, fmt)
    controls = {
        "fmt": widgets.ToggleButtons(
            options=FLOAT_FORMAT_NAMES, value=form.name, description="format"
        ),
        "value": widgets.BoundedFloatText(
            value=value, min=-FLOAT_VALUE_LIMIT, max=FLOAT_VALUE_LIMIT, description="value"
        ),
    }

    def draw(fmt: str, value: float) -> tuple[Figure, str]:
        return float_format_figure(value, fmt), float_format_summary(value, fmt)

    return Explorer(controls, draw)


def _float_format_data(value, fmt) -> tuple[float, FloatFormat, float, str]:
    check_in("fmt", fmt, FLOAT_FORMAT_NAMES)
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or abs(value) > FLOAT_VALUE_LIMIT
    ):
        raise ValueError(
            f"value must be a finite real number with |value| <= {FLOAT_VALUE_LIMIT:g}, "
            f"got {value!r}"
        )
    value = float(value)
    form = float_format(fmt)
    stored = float(torch.tensor([value], dtype=form.dtype)[0])
    if math.isinf(stored):
        status = "overflows to inf"
    elif stored == 0:
        status = "zero" if value == 0 else "underflows to 0"
    elif abs(stored) < form.smallest_normal:
        status = "subnormal"
    else:
        status = "normal"
    return value, form, stored, status


# --------------------------------------------------------------------------- lesson 07

#: The keys `dsd_figure` reads from each row (`effdl.experiments.dsd.sparsity_runs`).
DSD_KEYS = ("sparsity", "accuracy", "val_curve", "phases", "sparsity_curve")
#: The background colour of each DSD phase, in the order the phases run.
DSD_PHASE_COLORS = dict(zip(PHASES, ("tab:blue", "tab:orange", "tab:green"), strict=True))


def dsd_figure(rows: Sequence[Mapping[str, Any]], *, sparsity: float | None = None) -> Figure:
    """Return a two-panel figure at one sparsity of the sparse phase. Left: that run's
    validation accuracy per epoch over the dense, sparse and re-dense phases (shaded), with
    the dense control (the sparsity-0 row, if any) dashed grey and the fraction of zero weights
    as a thin step line on a second y axis. Right: the final test accuracy against the
    sparsity over all rows, the chosen one ringed and the dense control's accuracy dashed.

    `rows` come from `effdl.experiments.dsd.sparsity_runs`. `sparsity` must be one of the rows'
    sparsities (default: 0.3 if present, else the smallest non-zero one, else 0).

    Source: Han et al. 2017, "DSD: Dense-Sparse-Dense Training for Deep Neural Networks",
    sections 2 and 4 (the three phases; DSD against the baseline trained as long).
    """
    rows, row, control = _dsd_data(rows, sparsity)
    s = row["sparsity"]
    fig = Figure(figsize=(10, 3.8))
    ax_curve, ax_acc = fig.subplots(1, 2)

    epochs = np.arange(1, len(row["val_curve"]) + 1)
    for phase, first, last in _phase_spans(row["phases"]):
        ax_curve.axvspan(
            first - 0.5, last + 0.5, color=DSD_PHASE_COLORS[phase], alpha=0.12, lw=0, label=phase
        )
        ax_curve.text(
            (first + last) / 2,
            0.98,
            phase,
            transform=ax_curve.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize="small",
            color=DSD_PHASE_COLORS[phase],
        )
    if control is not None and control is not row:
        ax_curve.plot(
            np.arange(1, len(control["val_curve"]) + 1),
            control["val_curve"],
            "--",
            color="0.5",
            lw=1.2,
            label="dense control",
        )
    name = "sparsity 0 (dense control)" if control is row else f"sparsity {s:g}"
    ax_curve.plot(epochs, row["val_curve"], "o-", ms=3, color="tab:red", label=name)
    ax_curve.set_xlim(0.5, len(epochs) + 0.5)
    low, high = ax_curve.get_ylim()
    ax_curve.set_ylim(low, high + 0.1 * (high - low))  # room for the phase names
    ax_curve.set_xlabel("epoch")
    ax_curve.set_ylabel("validation accuracy (%)")
    ax_curve.set_title(f"sparsity {s:g}: validation accuracy per epoch", fontsize="medium")
    ax_curve.grid(True, alpha=0.3)
    ax_zero = ax_curve.twinx()
    ax_zero.step(
        epochs, row["sparsity_curve"], where="mid", color="0.2", lw=0.8, label="zero fraction"
    )
    ax_zero.set_ylim(0, 1)
    ax_zero.set_ylabel("fraction of zero weights")
    # on the twin axes, which draw above the curve's, so that no line crosses the legend
    ax_zero.legend(
        handles=ax_curve.get_lines() + ax_zero.get_lines(), fontsize="small", loc="center right"
    )

    xs = [r["sparsity"] for r in rows]
    ax_acc.plot(xs, [r["accuracy"] for r in rows], "o-", label="after DSD")
    if control is not None:
        ax_acc.axhline(control["accuracy"], ls="--", color="0.5", lw=1, label="dense control")
    ax_acc.plot([s], [row["accuracy"]], "o", ms=10, mfc="none", color="tab:red", label="chosen")
    ax_acc.set_xlabel("sparsity of the sparse phase")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("final test accuracy against sparsity", fontsize="medium")
    ax_acc.margins(y=0.2)
    ax_acc.legend(fontsize="small", loc="lower left")
    ax_acc.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def dsd_summary(rows: Sequence[Mapping[str, Any]], *, sparsity: float | None = None) -> str:
    """Return one line at `sparsity`: the test accuracy, the dense control's and the difference
    in points, the validation accuracy at the end of each phase, and how far the first sparse
    epoch fell below the end of the dense phase (the cost of pruning, which re-dense recovers).

    Source: Han et al. 2017, sections 2 and 4.
    """
    _, row, control = _dsd_data(rows, sparsity)
    s = row["sparsity"]
    head = f"sparsity {s:g}" + (" (the dense control)" if control is row else "")
    text = f"{head}: test accuracy {row['accuracy']:.1f}%"
    if control is None:
        text += " (no dense control: no row at sparsity 0)"
    elif control is not row:
        diff = round(row["accuracy"] - control["accuracy"], 1) + 0.0  # no "-0.0"
        text += f", dense control {control['accuracy']:.1f}% ({diff:+.1f} points)"
    curve, phases = row["val_curve"], row["phases"]
    ends = {phase: curve[i] for i, phase in enumerate(phases)}
    text += "; validation at the end of " + ", ".join(
        f"{phase} {ends[phase]:.1f}%" for phase in PHASES if phase in ends
    )
    step = next(
        (i for i in range(1, len(phases)) if phases[i - 1] == "dense" and phases[i] == "sparse"),
        None,
    )
    if step is None:
        text += "; no dense phase followed by a sparse one"
    else:
        drop = round(curve[step - 1] - curve[step], 1) + 0.0
        where = "below" if drop >= 0 else "above"
        text += f"; first sparse epoch {abs(drop):.1f} points {where} the end of dense"
    return text


def dsd_explorer(rows: Sequence[Mapping[str, Any]], *, sparsity: float | None = None) -> Explorer:
    """Return a widget with a sparsity slider (the rows' sparsities, sorted) over `dsd_figure`,
    printing `dsd_summary`.

    Source: Han et al. 2017, sections 2 and 4.
    """
    rows, row, _ = _dsd_data(rows, sparsity)
    controls = {
        "sparsity": widgets.SelectionSlider(
            options=[r["sparsity"] for r in rows],
            value=row["sparsity"],
            description="sparsity",
            continuous_update=False,
        )
    }

    def draw(sparsity: float) -> tuple[Figure, str]:
        return dsd_figure(rows, sparsity=sparsity), dsd_summary(rows, sparsity=sparsity)

    return Explorer(controls, draw)


def _dsd_data(rows, sparsity) -> tuple[list[dict], dict, dict | None]:
    """Check `rows` and `sparsity`; return the rows sorted by sparsity, the chosen row and the
    dense control (the sparsity-0 row, or None)."""
    rows = _rows_with("rows", rows, DSD_KEYS)
    for i, r in enumerate(rows):
        s = r["sparsity"]
        if not _is_real(s) or not 0 <= s < 1:
            raise ValueError(f"rows[{i}] has sparsity {s!r}; sparsities must be in [0, 1)")
        if not _is_real(r["accuracy"]):
            raise ValueError(f"rows[{i}] has accuracy {r['accuracy']!r}; it must be a number")
        curves = {}
        for key in ("val_curve", "phases", "sparsity_curve"):
            values = r[key]
            if isinstance(values, str) or not isinstance(values, Sequence) or not values:
                raise ValueError(
                    f"rows[{i}][{key!r}] must be a non-empty list, one entry per epoch, got "
                    f"{values!r}"
                )
            curves[key] = list(values)
        lengths = {key: len(values) for key, values in curves.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(
                f"rows[{i}] has curves of different lengths {lengths}; each needs one entry per "
                "epoch"
            )
        bad = [p for p in curves["phases"] if p not in PHASES]
        if bad:
            raise ValueError(f"rows[{i}] has phases {bad!r}; phases must be one of {PHASES}")
        for key in ("val_curve", "sparsity_curve"):
            if not all(_is_real(v) for v in curves[key]):
                raise ValueError(f"rows[{i}][{key!r}] must hold numbers, got {curves[key]!r}")
        if not all(0 <= v <= 1 for v in curves["sparsity_curve"]):
            raise ValueError(
                f"rows[{i}]['sparsity_curve'] must hold zero fractions in [0, 1], got "
                f"{curves['sparsity_curve']!r}"
            )
        r.update(curves, sparsity=float(s), accuracy=float(r["accuracy"]))
    rows.sort(key=lambda r: r["sparsity"])
    options = [r["sparsity"] for r in rows]
    if len(set(options)) != len(options):
        raise ValueError(f"rows must have one row per sparsity, got the sparsities {options}")
    if sparsity is None:
        nonzero = [s for s in options if s > 0]
        sparsity = DSD_SPARSITY if DSD_SPARSITY in options else (nonzero or options)[0]
    if not _is_real(sparsity) or sparsity not in options:
        raise ValueError(
            f"sparsity must be one of the rows' sparsities {options}, got {sparsity!r}"
        )
    row = rows[options.index(sparsity)]
    control = rows[0] if options[0] == 0 else None
    return rows, row, control


def _phase_spans(phases: Sequence[str]) -> list[tuple[str, int, int]]:
    """Return (phase, first epoch, last epoch) for each run of equal phases, epochs from 1."""
    spans: list[tuple[str, int, int]] = []
    for epoch, phase in enumerate(phases, start=1):
        if spans and spans[-1][0] == phase:
            spans[-1] = (phase, spans[-1][1], epoch)
        else:
            spans.append((phase, epoch, epoch))
    return spans


def _is_real(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- lesson 08

#: The keys `throughput_figure` reads from each row of a data-parallel throughput sweep.
THROUGHPUT_KEYS = ("workers", "batch", "samples_per_s", "step_ms", "compute_ms", "comm_ms")


def throughput_figure(
    rows: Sequence[Mapping[str, Any]], *, workers: int | None = None, batch: int | None = None
) -> Figure:
    """Return a two-panel figure of data-parallel training throughput at one (workers, batch)
    point. Left: samples per second against the global batch (log2 axis), one line per number
    of workers, the chosen point ringed and, for more than one worker, the ideal k times the
    1-worker throughput dotted. Right: at the chosen batch, one stacked bar per number of
    workers of the compute time (forward and backward on one rank) and the gradient all-reduce
    time per step, the wall time of the step marked, and each bar labelled with its scaling
    efficiency throughput(k) / (k * throughput(1)) where the 1-worker row exists.

    `rows` hold the keys of `THROUGHPUT_KEYS`, one row per (workers, batch) measured; a pair may
    be missing. `workers` must be one of the rows' worker counts (default: the largest) and
    `batch` one of their global batches (default: the largest measured with `workers`). A pair
    that was not measured draws without a chosen point and says so in the title.

    Source: Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel
    Training", sections 3 and 5 (gradient all-reduce per step; latency split into computation
    and communication); Goyal et al. 2017, abstract (scaling efficiency).
    """
    rows, row, workers, batch = _throughput_data(rows, workers, batch)
    counts = sorted({r["workers"] for r in rows})
    batches = sorted({r["batch"] for r in rows})
    at = {(r["workers"], r["batch"]): r for r in rows}
    fig = Figure(figsize=(10, 3.8))
    ax_rate, ax_step = fig.subplots(1, 2)

    colors = {k: f"C{i % 10}" for i, k in enumerate(counts)}
    for k in counts:
        xs = [b for b in batches if (k, b) in at]
        ax_rate.plot(
            xs,
            [at[k, b]["samples_per_s"] for b in xs],
            "o-",
            color=colors[k],
            label=_workers_name(k),
        )
    if workers > 1:
        xs = [b for b in batches if (1, b) in at]
        if xs:
            ax_rate.plot(
                xs,
                [workers * at[1, b]["samples_per_s"] for b in xs],
                ":",
                color=colors[workers],
                label=f"ideal: {workers} x 1 worker",
            )
    if row is not None:
        ax_rate.plot(
            [batch],
            [row["samples_per_s"]],
            "o",
            ms=12,
            mfc="none",
            mew=1.5,
            color="black",
            label="chosen",
        )
        ax_rate.set_title(
            f"{_workers_name(workers)}, global batch {batch}: throughput", fontsize="medium"
        )
    else:
        ax_rate.set_title(
            f"{_workers_name(workers)}, global batch {batch}: not measured", fontsize="medium"
        )
    ax_rate.set_xscale("log", base=2)
    ax_rate.set_xticks(batches, [str(b) for b in batches])
    ax_rate.set_xticks([], minor=True)
    ax_rate.set_xlabel("global batch (samples per step, log2 scale)")
    ax_rate.set_ylabel("samples / s")
    ax_rate.legend(fontsize="small", loc="upper left")
    ax_rate.grid(True, alpha=0.3)

    present = [k for k in counts if (k, batch) in at]
    steps = [at[k, batch] for k in present]
    positions = np.arange(len(present))
    compute = [r["compute_ms"] for r in steps]
    comm = [r["comm_ms"] for r in steps]
    edges = ["black" if k == workers else "none" for k in present]
    ax_step.bar(
        positions,
        compute,
        width=0.6,
        color="tab:blue",
        edgecolor=edges,
        lw=1.5,
        label="compute (forward + backward)",
    )
    ax_step.bar(
        positions,
        comm,
        width=0.6,
        bottom=compute,
        color="tab:orange",
        edgecolor=edges,
        lw=1.5,
        label="gradient all-reduce",
    )
    ax_step.plot(
        positions,
        [r["step_ms"] for r in steps],
        "_",
        ms=24,
        mew=2,
        color="black",
        label="step (wall time)",
    )
    base = at.get((1, batch))
    tops = [max(r["compute_ms"] + r["comm_ms"], r["step_ms"]) for r in steps]
    if base is not None:
        for x, k, r, top in zip(positions, present, steps, tops, strict=True):
            efficiency = r["samples_per_s"] / (k * base["samples_per_s"])
            ax_step.annotate(
                f"eff {efficiency:.0%}",
                (x, top),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=9,
            )
    ax_step.set_xticks(positions, [str(k) for k in present])
    ax_step.set_xlim(-0.75, len(present) - 0.25)
    ax_step.set_ylim(0, 1.6 * max(tops))  # room above the bars for the labels and the legend
    ax_step.set_xlabel("workers")
    ax_step.set_ylabel("time per step (ms)")
    title = f"global batch {batch}: where a step's time goes"
    if base is None:
        title += "\n(no 1-worker row at this batch: no scaling efficiency)"
    ax_step.set_title(title, fontsize="medium")
    # patches of their own: the bars' edges mark the chosen bar, not the kind of time
    ax_step.legend(
        handles=[
            *ax_step.get_lines(),
            Patch(color="tab:blue", label="compute (forward + backward)"),
            Patch(color="tab:orange", label="gradient all-reduce"),
        ],
        fontsize="small",
        loc="upper right",
    )
    ax_step.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def throughput_summary(
    rows: Sequence[Mapping[str, Any]], *, workers: int | None = None, batch: int | None = None
) -> str:
    """Return one or two sentences at (`workers`, `batch`): the samples per second, the
    speed-up over 1 worker at the same global batch, the scaling efficiency
    throughput(k) / (k * throughput(1)), and the share of the step spent in the gradient
    all-reduce; or, for a pair that was not measured, the batches that were.

    Source: Li et al. 2020, section 5; Goyal et al. 2017, abstract (scaling efficiency).
    """
    rows, row, workers, batch = _throughput_data(rows, workers, batch)
    head = f"{_workers_name(workers)}, global batch {batch}"
    if row is None:
        measured = sorted(r["batch"] for r in rows if r["workers"] == workers)
        return (
            f"{head}: not measured; the global batches measured with "
            f"{_workers_name(workers)}: {measured}."
        )
    if workers == 1:
        return (
            f"{head}: {_rate(row['samples_per_s'])} samples/s, the 1-worker baseline (speed-up "
            f"1.00x, scaling efficiency 100%). With one worker there is no all-reduce: "
            f"{row['compute_ms']:.3g} ms of the {row['step_ms']:.3g} ms step is compute."
        )
    head += f" ({batch / workers:g} per worker)"
    text = f"{head}: {_rate(row['samples_per_s'])} samples/s"
    base = next((r for r in rows if r["workers"] == 1 and r["batch"] == batch), None)
    if base is None:
        text += f"; no 1-worker row at batch {batch}, so no speed-up or scaling efficiency."
    else:
        speedup = row["samples_per_s"] / base["samples_per_s"]
        text += (
            f", {speedup:.2f}x the 1-worker throughput at this batch, scaling efficiency "
            f"{speedup / workers:.0%}."
        )
    share = row["comm_ms"] / row["step_ms"]
    text += (
        f" The all-reduce takes {row['comm_ms']:.3g} ms, {share:.0%} of the "
        f"{row['step_ms']:.3g} ms step (compute {row['compute_ms']:.3g} ms)."
    )
    return text


def throughput_explorer(
    rows: Sequence[Mapping[str, Any]], *, workers: int | None = None, batch: int | None = None
) -> Explorer:
    """Return a widget with buttons for the number of workers and a slider for the global batch
    (the values the rows hold) over `throughput_figure`, printing `throughput_summary`.

    Source: Li et al. 2020, section 5; Goyal et al. 2017, abstract (scaling efficiency).
    """
    rows, _, workers, batch = _throughput_data(rows, workers, batch)
    controls = {
        "workers": widgets.ToggleButtons(
            options=sorted({r["workers"] for r in rows}), value=workers, description="workers"
        ),
        "batch": widgets.SelectionSlider(
            options=sorted({r["batch"] for r in rows}),
            value=batch,
            description="global batch",
            continuous_update=False,
        ),
    }

    def draw(workers: int, batch: int) -> tuple[Figure, str]:
        return (
            throughput_figure(rows, workers=workers, batch=batch),
            throughput_summary(rows, workers=workers, batch=batch),
        )

    return Explorer(controls, draw)


def _throughput_data(rows, workers, batch) -> tuple[list[dict], dict | None, int, int]:
    """Check `rows`, `workers` and `batch`; return the rows sorted by (workers, batch), the
    chosen row (None for a pair that was not measured), and the chosen workers and batch."""
    rows = _rows_with("rows", rows, THROUGHPUT_KEYS)
    for i, r in enumerate(rows):
        for key in ("workers", "batch"):
            if not _is_count(r[key]):
                raise ValueError(f"rows[{i}] has {key} {r[key]!r}; it must be a positive int")
        for key in ("samples_per_s", "step_ms"):
            if not _is_real(r[key]) or r[key] <= 0:
                raise ValueError(f"rows[{i}] has {key} {r[key]!r}; it must be a number > 0")
        for key in ("compute_ms", "comm_ms"):
            if not _is_real(r[key]) or r[key] < 0:
                raise ValueError(f"rows[{i}] has {key} {r[key]!r}; it must be a number >= 0")
        r.update(
            {key: int(r[key]) for key in ("workers", "batch")},
            **{key: float(r[key]) for key in THROUGHPUT_KEYS[2:]},
        )
    rows.sort(key=lambda r: (r["workers"], r["batch"]))
    pairs = [(r["workers"], r["batch"]) for r in rows]
    if len(set(pairs)) != len(pairs):
        twice = sorted({p for p in pairs if pairs.count(p) > 1})
        raise ValueError(f"rows must have one row per (workers, batch), got {twice} twice or more")
    counts = sorted({k for k, _ in pairs})
    batches = sorted({b for _, b in pairs})
    if workers is not None and (not _is_count(workers) or workers not in counts):
        raise ValueError(
            f"workers must be one of the rows' worker counts {counts}, got {workers!r}"
        )
    if batch is not None and (not _is_count(batch) or batch not in batches):
        raise ValueError(f"batch must be one of the rows' global batches {batches}, got {batch!r}")
    # a default falls on a measured pair: the largest batch run with these workers, or the
    # most workers run at this batch
    if workers is None:
        workers = counts[-1] if batch is None else max(k for k, b in pairs if b == batch)
    if batch is None:
        batch = max(b for k, b in pairs if k == workers)
    workers, batch = int(workers), int(batch)
    row = rows[pairs.index((workers, batch))] if (workers, batch) in pairs else None
    return rows, row, workers, batch


def _is_count(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 1


def _workers_name(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _rate(samples_per_s: float) -> str:
    return f"{samples_per_s:,.0f}" if samples_per_s >= 100 else f"{samples_per_s:.3g}"


# --------------------------------------------------------------------------- lesson 09

#: The explorer's trial counts: squares, so that the grid is k x k.
SEARCH_TRIALS = (4, 9, 16, 25, 36)
#: How much the second dimension matters, against the first's weight of 1.
SEARCH_WEIGHTS = (0.0, 0.01, 0.1, 1.0)


def search_figure(trials: int = 9, y_weight: float = 0.0, seed: int = 0) -> Figure:
    """Return two panels over the unit square, f(x, y) = (x - a)^2 + y_weight * (y - b)^2 with
    the optimum (a, b) drawn from `seed`: left, the k x k grid of `trials` points (cell
    centres); right, as many random points (drawn with `np.random.default_rng(seed + 1)`).
    Each panel shows f's contours, the points, the best point found (a star), and along the
    x axis a tick for every distinct value of x tried.

    Source: Bergstra and Bengio 2012, Figure 1.
    """
    result = _search_result(trials, y_weight, seed)
    fig = Figure(figsize=(9.5, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    xs = np.linspace(0, 1, 101)
    grid_x, grid_y = np.meshgrid(xs, xs)
    a, b = result["optimum"]
    values = (grid_x - a) ** 2 + y_weight * (grid_y - b) ** 2
    for ax, name in zip(axes, ("grid", "random"), strict=True):
        points = result[name]
        ax.contourf(grid_x, grid_y, values, levels=12, cmap="Greens_r", alpha=0.6)
        ax.scatter([p["x0"] for p, _ in points], [p["x1"] for p, _ in points], s=22, c="k")
        best, value = min(points, key=lambda pv: pv[1])
        ax.plot(best["x0"], best["x1"], "*", ms=16, color="tab:red", mec="k")
        ax.plot(a, b, "+", ms=14, mew=2, color="tab:blue")
        distinct = sorted({p["x0"] for p, _ in points})
        ax.plot(distinct, [0.0] * len(distinct), "|", ms=18, mew=2, color="tab:orange",
                clip_on=False)  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("x (matters)")
        ax.set_title(f"{name}: {len(distinct)} distinct x, best f = {value:.4f}", fontsize=10)
    axes[0].set_ylabel(f"y (weight {y_weight:g})")
    fig.tight_layout()
    return fig


def search_summary(trials: int = 9, y_weight: float = 0.0, seed: int = 0) -> str:
    """Return one sentence comparing the grid and random search of `search_figure`: the
    distinct values of x each tried and the best value each found (the optimum is 0).

    Source: Bergstra and Bengio 2012, section 2.
    """
    r = _search_result(trials, y_weight, seed)
    g, n = (min(v for _, v in r[name]) for name in ("grid", "random"))
    winner = "random search" if n < g else "the grid" if g < n else "neither"
    return (
        f"{trials} trials, y weight {y_weight:g}: the grid tries {r['side']} distinct values of "
        f"x, random search {len({p['x0'] for p, _ in r['random']})}; best f found: grid {g:.4f}, "
        f"random {n:.4f} (the optimum is 0), so {winner} wins on this function."
    )


def search_explorer(trials: int = 9, y_weight: float = 0.0, seed: int = 0) -> Explorer:
    """Return a widget with the number of trials, the weight of the second dimension and the
    seed (the function's optimum and the random points) over `search_figure`, printing
    `search_summary`.

    Source: Bergstra and Bengio 2012, Figure 1.
    """
    _search_result(trials, y_weight, seed)
    controls = {
        "trials": widgets.SelectionSlider(
            options=list(SEARCH_TRIALS), value=trials, description="trials",
            continuous_update=False,
        ),
        "y_weight": widgets.SelectionSlider(
            options=list(SEARCH_WEIGHTS), value=y_weight, description="y weight",
            continuous_update=False,
        ),
        "seed": widgets.IntSlider(value=seed, min=0, max=20, description="seed",
                                  continuous_update=False),
    }  # fmt: skip

    def draw(trials: int, y_weight: float, seed: int) -> tuple[Figure, str]:
        return (
            search_figure(trials, y_weight, seed),
            search_summary(trials, y_weight, seed),
        )

    return Explorer(controls, draw)


def _search_result(trials: object, y_weight: object, seed: object) -> dict[str, Any]:
    """Check the explorer's state and run both searches on its function."""
    if trials not in SEARCH_TRIALS or isinstance(trials, bool):
        raise ValueError(f"trials must be one of {SEARCH_TRIALS}, got {trials!r}")
    if isinstance(y_weight, bool) or not _is_real(y_weight) or not 0 <= y_weight <= 1:
        raise ValueError(f"y_weight must be a number in [0, 1], got {y_weight!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    side = math.isqrt(trials)
    optimum = np.random.default_rng(seed).random(2).tolist()
    objective = functools.partial(
        low_effective_dimension, optimum=optimum, weights=(1.0, float(y_weight))
    )
    points = grid(grid_space(2, side))
    rng = np.random.default_rng(seed + 1)
    return {
        "optimum": optimum,
        "side": side,
        "grid": [(p, objective(p)) for p in points],
        "random": random_search(objective, search_space(2), trials, rng),
    }


# --------------------------------------------------------------------------- lesson 10

#: The BO explorer's run: Forrester et al.'s one-dimensional test function on [0, 1], 3 random
#: points, then `BO_STEPS` steps of expected improvement.
BO_STEPS = 10
BO_INITIAL = 3
#: Forrester et al. 2008's function: its minimum on [0, 1], about -6.0207 at x = 0.7572.
FORRESTER_MIN = (0.757249, -6.020740)


def forrester(x: np.ndarray) -> np.ndarray:
    """Return (6x - 2)^2 sin(12x - 4), a one-dimensional test function with a local and a
    global minimum on [0, 1].

    Source: Forrester, Sobester and Keane 2008, "Engineering Design via Surrogate Modelling".
    """
    x = np.asarray(x, dtype=float)
    return (6 * x - 2) ** 2 * np.sin(12 * x - 4)


@lru_cache(maxsize=4)
def _bo_run(seed: int) -> tuple[dict, ...]:
    """Run the explorer's BO once per seed and keep what each step shows."""
    rng = np.random.default_rng(seed)
    xs = list(rng.random(BO_INITIAL))
    grid_x = np.linspace(0, 1, 401)
    steps = []
    for _ in range(BO_STEPS):
        x = np.array(xs)
        y = forrester(x)
        gp = GaussianProcess().fit(x[:, None], y, rng=np.random.default_rng(seed))
        mean, std = gp.predict(grid_x[:, None])
        ei = expected_improvement(mean, std, float(y.min()))
        nxt = float(grid_x[int(np.argmax(ei))])
        steps.append({"x": x, "y": y, "mean": mean, "std": std, "ei": ei, "next": nxt})
        xs.append(nxt)
    return tuple(steps)


def bo_figure(step: int = 0, seed: int = 0) -> Figure:
    """Return two panels of Bayesian optimisation on Forrester's function at `step` (0 to
    `BO_STEPS` - 1): above, the function (dashed), the points evaluated so far, the GP's
    posterior mean and a band of two standard deviations, and the next point; below, the
    expected improvement over [0, 1], whose maximum is that next point.

    Source: Snoek et al. 2012, Figure 1 (the posterior and the acquisition, step by step);
    Jones et al. 1998 (expected improvement).
    """
    s = _bo_step(step, seed)
    grid_x = np.linspace(0, 1, 401)
    fig = Figure(figsize=(8, 5))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    top.plot(grid_x, forrester(grid_x), "k--", lw=1, label="f (unknown to BO)")
    top.plot(grid_x, s["mean"], color="tab:blue", label="GP mean")
    top.fill_between(grid_x, s["mean"] - 2 * s["std"], s["mean"] + 2 * s["std"],
                     color="tab:blue", alpha=0.2, label="mean ± 2 std")  # fmt: skip
    top.plot(s["x"][:-1], s["y"][:-1], "ko", ms=5, label="evaluated")
    top.plot(s["x"][-1:], s["y"][-1:], "o", color="tab:orange", ms=8, mec="k", label="newest")
    top.axvline(s["next"], color="tab:red", lw=1)
    top.set_ylim(-12, 18)
    top.set_ylabel("f(x)")
    top.set_title(f"step {step}: {len(s['x'])} points, best {s['y'].min():.3f}")
    top.legend(fontsize=7, loc="upper left", ncol=2)
    bottom.plot(grid_x, s["ei"], color="tab:green")
    bottom.axvline(s["next"], color="tab:red", lw=1)
    bottom.set_ylabel("expected\nimprovement")
    bottom.set_xlabel("x")
    fig.tight_layout()
    return fig


def bo_summary(step: int = 0, seed: int = 0) -> str:
    """Return one sentence on `bo_figure` at `step`: the points, the best so far, the next
    point and its expected improvement, against the true minimum.

    Source: Snoek et al. 2012, section 2.
    """
    s = _bo_step(step, seed)
    x_min, f_min = FORRESTER_MIN
    return (
        f"step {step}: {len(s['x'])} points, best so far f = {s['y'].min():.3f} at x = "
        f"{s['x'][int(np.argmin(s['y']))]:.3f}; next x = {s['next']:.3f} (expected "
        f"improvement {s['ei'].max():.3g}); the minimum is {f_min:.3f} at x = {x_min:.3f}."
    )


def bo_explorer(step: int = 0, seed: int = 0) -> Explorer:
    """Return a widget with a step slider over `bo_figure`, printing `bo_summary`.

    Source: Snoek et al. 2012, Figure 1.
    """
    _bo_step(step, seed)
    controls = {
        "step": widgets.IntSlider(value=step, min=0, max=BO_STEPS - 1, description="step",
                                  continuous_update=False),
    }  # fmt: skip

    def draw(step: int) -> tuple[Figure, str]:
        return bo_figure(step, seed), bo_summary(step, seed)

    return Explorer(controls, draw)


def _bo_step(step: object, seed: object) -> dict:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < BO_STEPS:
        raise ValueError(f"step must be an int in 0..{BO_STEPS - 1}, got {step!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return _bo_run(seed)[step]


# --------------------------------------------------------------------------- lesson 11

#: The (max resource, eta) pairs of the Hyperband explorer: each R a power of its eta, so every
#: rung trains a whole number of epochs of the shipped learning curves (27 at most).
HYPERBAND_SETTINGS = ((27, 3), (9, 3), (16, 2), (8, 2))


def hyperband_figure(
    table: Mapping[str, Any], max_resource: int = 27, eta: int = 3, bracket: int = 0, seed: int = 0
) -> Figure:
    """Return two panels for one bracket of Hyperband on a table of learning curves: left, every
    bracket's rungs (n_i configurations at r_i epochs) as rows of boxes, the chosen one
    outlined; right, that bracket's successive halving on the table (configurations drawn with
    `seed`): each configuration's curve up to the epochs it was given, the ones stopped early in
    grey, the survivors in colour, a dotted line at every rung.

    Source: Li et al. 2018, "Hyperband", JMLR 18, Algorithm 1 and Table 1.
    """
    run = _hyperband_run(table, max_resource, eta, bracket, seed)
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2, width_ratios=(1, 1.6))
    for row, rungs in enumerate(run["brackets"]):
        for col, (n, r) in enumerate(rungs):
            chosen = row == bracket
            left.add_patch(
                Rectangle(
                    (col, row),
                    0.94,
                    0.9,
                    facecolor="#c6dbef" if chosen else "0.93",
                    edgecolor="k" if chosen else "0.7",
                )  # fmt: skip
            )
            left.text(col + 0.47, row + 0.45, f"{n} x {r}", ha="center", va="center", fontsize=8)
    depth = max(len(rungs) for rungs in run["brackets"])
    left.set_xlim(0, depth)
    left.set_ylim(len(run["brackets"]), 0)
    left.set_yticks([i + 0.45 for i in range(len(run["brackets"]))],
                    labels=[f"s = {len(b) - 1}" for b in run["brackets"]])  # fmt: skip
    left.set_xticks([i + 0.47 for i in range(depth)], labels=[f"rung {i}" for i in range(depth)])
    left.set_title(f"R = {max_resource}, eta = {eta}: n configurations x r epochs", fontsize=9)
    for curve, given, survived in run["curves"]:
        epochs = np.arange(1, given + 1)
        if survived:
            right.plot(epochs, curve[:given], lw=1.5)
        else:
            right.plot(epochs, curve[:given], color="0.7", lw=0.8)
    for _, r in run["brackets"][bracket]:
        right.axvline(r, color="k", ls=":", lw=0.8)
    right.set_xscale("log", base=eta)
    right.set_xlabel("epochs (log scale)")
    right.set_ylabel("validation error (%)")
    right.set_title(
        f"bracket s = {len(run['brackets'][bracket]) - 1}: {run['spent']} epochs, "
        f"best {run['best']:.1f}%",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def hyperband_summary(
    table: Mapping[str, Any], max_resource: int = 27, eta: int = 3, bracket: int = 0, seed: int = 0
) -> str:
    """Return one sentence on `hyperband_figure`'s bracket: its rungs, the epochs it spent
    against training its configurations to the end, and the best error it found.

    Source: Li et al. 2018, section 3.
    """
    run = _hyperband_run(table, max_resource, eta, bracket, seed)
    rungs = run["brackets"][bracket]
    path = " -> ".join(f"{n} at {r}" for n, r in rungs)
    full = rungs[0][0] * max_resource
    return (
        f"R = {max_resource}, eta = {eta}, bracket s = {len(rungs) - 1}: {path} epochs; it "
        f"spent {run['spent']} epochs, against {full} to train all {rungs[0][0]} to "
        f"{max_resource}; best validation error {run['best']:.1f}%."
    )


def hyperband_explorer(
    table: Mapping[str, Any], max_resource: int = 27, eta: int = 3, bracket: int = 0, seed: int = 0
) -> Explorer:
    """Return a widget with the (R, eta) setting and the bracket over `hyperband_figure`,
    printing `hyperband_summary`.

    Source: Li et al. 2018, Algorithm 1.
    """
    _hyperband_run(table, max_resource, eta, bracket, seed)
    controls = {
        "setting": widgets.Dropdown(
            options=[(f"R = {r}, eta = {e}", (r, e)) for r, e in HYPERBAND_SETTINGS],
            value=(max_resource, eta), description="setting",
        ),
        "bracket": widgets.IntSlider(value=bracket, min=0, max=3, description="bracket",
                                     continuous_update=False),
    }  # fmt: skip

    def draw(setting: tuple[int, int], bracket: int) -> tuple[Figure, str]:
        r, e = setting
        bracket = min(bracket, len(brackets(r, e)) - 1)
        return (
            hyperband_figure(table, r, e, bracket, seed),
            hyperband_summary(table, r, e, bracket, seed),
        )

    return Explorer(controls, draw)


def _hyperband_run(table, max_resource, eta, bracket, seed) -> dict[str, Any]:
    if (max_resource, eta) not in HYPERBAND_SETTINGS:
        raise ValueError(
            f"(max_resource, eta) must be one of {HYPERBAND_SETTINGS}, got {(max_resource, eta)!r}"
        )
    all_brackets = brackets(max_resource, eta)
    if isinstance(bracket, bool) or not isinstance(bracket, int):
        raise ValueError(f"bracket must be an int, got {bracket!r}")
    if not 0 <= bracket < len(all_brackets):
        raise ValueError(f"bracket must lie in 0..{len(all_brackets) - 1}, got {bracket!r}")
    if not isinstance(table, Mapping) or not table.get("configs"):
        raise ValueError("table must be a learning-curve table with configs (load_curves())")
    rungs = all_brackets[bracket]
    study = successive_halving(
        table_objective(table), table_space(table), n=rungs[0][0], r_min=rungs[0][1],
        r_max=max_resource, eta=eta, seed=seed, verbose=False,
    )  # fmt: skip
    curves = [
        (table["configs"][t.params["config"]]["curve"], max(t.intermediate, default=0),
         t.state == "complete")
        for t in study.trials
    ]  # fmt: skip
    return {
        "brackets": all_brackets,
        "curves": curves,
        "spent": resource_spent(study),
        "best": study.best_value,
    }
