"""The lesson explorers, driven without a browser: build each, change a control's value as the
front end would, and check that the output changed to what the kit's own functions say."""

import base64

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex

matplotlib.use("Agg")

from effdl import widgets  # noqa: E402
from effdl.learn.mixed_precision import FORMATS, float_bits, float_format, spacing  # noqa: E402
from effdl.measure import count_macs, count_params, pareto_front  # noqa: E402
from effdl.models.attention import MultiHeadAttention  # noqa: E402
from effdl.models.mobilenet import mobilenet_v1  # noqa: E402
from effdl.models.transformer import TransformerClassifier  # noqa: E402

# Lesson 00's four baselines, with footprints of the right order: the GRU has few MACs but is
# slow, logistic regression is cheapest on everything.
ROWS = [
    {
        "model": "logreg",
        "accuracy": 32.0,
        "params": 410,
        "macs": 400,
        "size_bytes": 3_000,
        "latency_ms": 0.010,
    },
    {
        "model": "mlp",
        "accuracy": 68.0,
        "params": 15_210,
        "macs": 15_000,
        "size_bytes": 62_000,
        "latency_ms": 0.020,
    },
    {
        "model": "cnn",
        "accuracy": 94.0,
        "params": 5_210,
        "macs": 30_000,
        "size_bytes": 25_000,
        "latency_ms": 0.050,
    },
    {
        "model": "gru",
        "accuracy": 91.0,
        "params": 5_134,
        "macs": 14_000,
        "size_bytes": 23_000,
        "latency_ms": 0.500,
    },
]


def front_names(metrics):
    objectives = {m: "max" if m == "accuracy" else "min" for m in metrics}
    return [ROWS[i]["model"] for i in pareto_front(ROWS, objectives)]


def front_line(explorer):
    return explorer.text.splitlines()[1].removeprefix("on the front: ").split(", ")


def shown_png(explorer) -> bytes:
    display, stream = explorer.output.outputs
    assert stream["text"] == explorer.text + "\n"
    return base64.b64decode(display["data"]["image/png"])


# ----------------------------------------------------------------------------- lesson 00


def test_pareto_explorer_front_follows_the_chosen_metrics():
    explorer = widgets.pareto_explorer(ROWS, metrics=("accuracy", "macs"))
    assert front_line(explorer) == front_names(["accuracy", "macs"]) == ["logreg", "cnn", "gru"]
    png = shown_png(explorer)
    assert png.startswith(b"\x89PNG")

    explorer.controls["x"].value = "latency_ms"
    assert explorer.state["x"] == "latency_ms"
    # The GRU is slow: it leaves the front when latency is the cost.
    assert front_line(explorer) == front_names(["accuracy", "latency_ms"])
    assert "gru" not in front_line(explorer)
    assert shown_png(explorer) != png
    assert explorer.figure.axes[0].get_xlabel().startswith("latency_ms")

    # A second cost widens the front: the MLP is not beaten on latency and params together.
    explorer.controls["params"].value = True
    assert front_line(explorer) == front_names(["accuracy", "latency_ms", "params"])
    assert explorer.text.startswith("objectives: accuracy (max), latency_ms (min), params (min)")


def test_pareto_explorer_without_accuracy_keeps_only_the_cheapest():
    explorer = widgets.pareto_explorer(ROWS)
    explorer.controls["accuracy"].value = False
    assert front_line(explorer) == front_names(["macs"]) == ["logreg"]


def test_pareto_figure_marks_the_front_in_red():
    fig = widgets.pareto_figure(ROWS, metrics=("accuracy", "latency_ms"))
    dominated, front = fig.axes[0].collections[:2]
    front_x = sorted(float(x) for x, _ in front.get_offsets())
    expected = sorted(
        ROWS[i]["latency_ms"] for i in pareto_front(ROWS, {"accuracy": "max", "latency_ms": "min"})
    )
    assert front_x == pytest.approx(expected)
    assert len(dominated.get_offsets()) == len(ROWS) - len(expected)


@pytest.mark.parametrize(
    "call",
    [
        lambda: widgets.pareto_explorer(ROWS, metrics=("accuracy", "flops")),
        lambda: widgets.pareto_figure(ROWS, metrics=("flops",)),
        lambda: widgets.pareto_summary(ROWS, metrics=("accuracy", "model")),
    ],
)
def test_unknown_metric_names_the_argument_the_value_and_the_allowed(call):
    with pytest.raises(ValueError, match=r"metrics.*'(flops|model)'.*latency_ms") as info:
        call()
    assert "['accuracy', 'params', 'macs', 'size_bytes', 'latency_ms']" in str(info.value)


def test_pareto_explorer_rejects_a_metric_missing_from_some_rows():
    rows = [dict(r) for r in ROWS]
    del rows[2]["latency_ms"]
    with pytest.raises(ValueError, match="'latency_ms'"):
        widgets.pareto_explorer(rows, metrics=("accuracy", "latency_ms"))


# ----------------------------------------------------------------------------- lesson 01


def test_mobilenet_explorer_counts_the_chosen_model():
    explorer = widgets.mobilenet_explorer()
    first = explorer.text
    model = mobilenet_v1(alpha=1.0)
    assert f"params {count_params(model):,d}" in first
    assert f"mult-adds {count_macs(model, (1, 3, 224, 224)):,d}" in first
    assert "paper: params 4.2M, mult-adds 569M" in first

    explorer.controls["alpha"].value = 0.5
    model = mobilenet_v1(alpha=0.5)
    assert explorer.state == {"alpha": 0.5, "resolution": 224}
    assert f"params {count_params(model):,d}," in explorer.text
    assert f"mult-adds {count_macs(model, (1, 3, 224, 224)):,d}" in explorer.text
    assert "paper: params 1.3M, mult-adds 149M" in explorer.text

    explorer.controls["resolution"].value = 160
    assert f"mult-adds {count_macs(model, (1, 3, 160, 160)):,d}" in explorer.text
    assert "paper: no figure" in explorer.text  # Table 7 only varies rho at alpha 1


def test_mobilenet_explorer_slider_steps_round_to_the_papers_alphas():
    explorer = widgets.mobilenet_explorer(alpha=0.25)
    # Float slider steps of 0.05 reach 0.75 as 0.7500000000000001 and similar.
    explorer.controls["alpha"].value = 0.25 + 10 * 0.05
    assert "paper: params 2.6M, mult-adds 325M" in explorer.text


def test_mobilenet_figure_places_the_current_point():
    fig = widgets.mobilenet_figure(0.75, 192)
    params, madds = widgets.mobilenet_costs(0.75, 192)
    star = fig.axes[0].lines[-1]
    assert star.get_xdata()[0] == pytest.approx(params / 1e6)
    assert star.get_ydata()[0] == pytest.approx(madds / 1e6)
    paper = fig.axes[0].lines[0]
    assert sorted(paper.get_ydata()) == sorted(m for _, m in widgets.MOBILENET_V1_PAPER.values())


def test_mobilenet_counts_agree_with_the_paper_within_rounding():
    # Table 6 rounds mult-adds to 1M; BatchNorm's parameters sit on top of the paper's params.
    for (alpha, resolution), (params_m, madds_m) in widgets.MOBILENET_V1_PAPER.items():
        params, madds = widgets.mobilenet_costs(alpha, resolution)
        assert abs(madds / 1e6 - madds_m) <= 1.5, (alpha, resolution)
        assert abs(params / 1e6 - params_m) <= 0.1, (alpha, resolution)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"alpha": 0.1}, "alpha"), ({"alpha": True}, "alpha"), ({"resolution": 200}, "resolution")],
)
def test_mobilenet_explorer_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        widgets.mobilenet_explorer(**kwargs)


# ----------------------------------------------------------------------------- lesson 02


@pytest.fixture(scope="module")
def transformer():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TransformerClassifier(num_layers=2, num_heads=4)
        inputs = torch.randn(6, 1, 40)
    return model, inputs


def reference_weights(model, inputs, layer, head, index):
    """Recompute one head's map by running the encoder by hand up to `layer`."""
    with torch.no_grad():
        signal = inputs.flatten(1).view(len(inputs), model.num_patches, model.patch_size)
        x = model.patch_embedding(signal) + model.position_embedding
        for block in model.encoder.layers[:layer]:
            x = block(x)
        block = model.encoder.layers[layer]
        attn_in = block.norm1(x) if block.norm_first else x
        _, weights = block.self_attn(attn_in, need_weights=True, average_attn_weights=False)
    return weights[index, head].numpy()


def test_attention_explorer_shows_the_chosen_heads_weights(transformer):
    model, inputs = transformer
    explorer = widgets.attention_explorer(model, inputs)
    assert list(explorer.controls["layer"].options) == [
        "encoder.layers.0.self_attn",
        "encoder.layers.1.self_attn",
    ]
    assert list(explorer.controls["head"].options) == [0, 1, 2, 3]

    def shown():
        return np.asarray(explorer.figure.axes[1].images[0].get_array())

    np.testing.assert_allclose(shown(), reference_weights(model, inputs, 0, 0, 0), atol=1e-6)
    before = shown_png(explorer)
    for control, value in (("index", 4), ("layer", "encoder.layers.1.self_attn"), ("head", 2)):
        explorer.controls[control].value = value
    assert explorer.state == {"index": 4, "layer": "encoder.layers.1.self_attn", "head": 2}
    np.testing.assert_allclose(shown(), reference_weights(model, inputs, 1, 2, 4), atol=1e-6)
    assert shown_png(explorer) != before
    # Each row is one query's distribution over the keys.
    np.testing.assert_allclose(shown().sum(axis=1), 1.0, atol=1e-5)
    assert explorer.figure.axes[0].lines[0].get_ydata().tolist() == inputs[4, 0].tolist()


def test_head_weights_leave_the_model_as_it_was(transformer):
    model, inputs = transformer
    model.train()
    weights = widgets.head_weights(model, inputs)
    assert model.training
    assert {tuple(w.shape) for w in weights.values()} == {(6, 4, 10, 10)}
    for module in model.modules():
        assert not module._forward_hooks


def test_attention_figure_accepts_a_layer_by_name_or_position(transformer):
    model, inputs = transformer
    by_name = widgets.attention_figure(
        model, inputs, index=1, layer="encoder.layers.1.self_attn", head=3
    )
    by_position = widgets.attention_figure(model, inputs, index=1, layer=1, head=3)
    np.testing.assert_array_equal(
        by_name.axes[1].images[0].get_array(), by_position.axes[1].images[0].get_array()
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"index": 6}, "index"),
        ({"index": -1}, "index"),
        ({"layer": 2}, "layer"),
        ({"layer": "encoder"}, "layer"),
        ({"head": 4}, "head"),
        ({"head": True}, "head"),
    ],
)
def test_attention_explorer_rejects_a_bad_choice(transformer, kwargs, name):
    model, inputs = transformer
    with pytest.raises(ValueError, match=rf"^{name} must .*got"):
        widgets.attention_explorer(model, inputs, **kwargs)


def test_attention_explorer_needs_attention_layers():
    with pytest.raises(ValueError, match="MultiHeadAttention"):
        widgets.attention_explorer(torch.nn.Linear(40, 10), torch.randn(2, 40))


def test_attention_layers_finds_nested_layers():
    model = torch.nn.Sequential(torch.nn.Identity(), MultiHeadAttention(8, 2))
    assert list(widgets.attention_layers(model)) == ["1"]


# ----------------------------------------------------------------------------- lesson 03


def _rms_in(text: str) -> float:
    return float(text.split("RMS error ")[1].split()[0])


def _channel_scaled_weights():
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    return w * torch.logspace(-2, 0, 8)[:, None]  # channels two decades apart


def _direct_rms(w, bits, per_channel):
    """Symmetric signed fake quantization computed with torch's own function."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    half_range = (qmax - qmin) / 2
    if per_channel:
        scales = w.abs().amax(dim=1) / half_range
        zeros = torch.zeros(len(w), dtype=torch.int32)
        approx = torch.fake_quantize_per_channel_affine(w, scales, zeros, 0, qmin, qmax)
    else:
        approx = torch.fake_quantize_per_tensor_affine(
            w, float(w.abs().max()) / half_range, 0, qmin, qmax
        )
    return float((w - approx).pow(2).mean().sqrt())


def test_quantization_explorer_follows_the_slider_and_the_toggle():
    w = _channel_scaled_weights()
    explorer = widgets.quantization_explorer(w, bits=8)
    assert explorer.state == {"bits": 8, "per_channel": False}
    assert "8 bits per tensor: 256 levels" in explorer.text
    assert _rms_in(explorer.text) == pytest.approx(_direct_rms(w, 8, False), rel=1e-5)
    first_png = shown_png(explorer)

    explorer.controls["bits"].value = 3
    assert explorer.state == {"bits": 3, "per_channel": False}
    assert "3 bits per tensor: 8 levels" in explorer.text
    three_bits = _rms_in(explorer.text)
    assert three_bits == pytest.approx(_direct_rms(w, 3, False), rel=1e-5)
    assert three_bits > _direct_rms(w, 8, False)
    assert shown_png(explorer) != first_png
    assert explorer.figure.axes[0].get_title() == "3 bits: 8 levels"

    explorer.controls["per_channel"].value = True
    assert explorer.state == {"bits": 3, "per_channel": True}
    assert "3 bits per channel" in explorer.text
    per_channel = _rms_in(explorer.text)
    assert per_channel == pytest.approx(_direct_rms(w, 3, True), rel=1e-5)
    # channels two decades apart: each one's own scale rounds the small ones far finer
    assert per_channel < three_bits
    assert explorer.figure.axes[1].get_title().startswith("per channel")


def test_quantization_figure_histograms_every_weight():
    w = _channel_scaled_weights()
    fig = widgets.quantization_figure(w, bits=4, per_channel=True)
    assert len(fig.axes) == 2
    (bars,) = fig.axes[1].patches
    counts, edges, _ = bars.get_data()
    assert counts.sum() == w.numel()
    # the dashed bounds sit at +-half the widest step, and every error lies between them
    step = float(w.abs().amax(dim=1).max()) / 7.5  # 4 bits: max|w| / ((7 - -8) / 2)
    bounds = sorted(line.get_xdata()[0] for line in fig.axes[1].lines)
    assert bounds == pytest.approx([-step / 2, step / 2], rel=1e-5)
    assert -step / 2 - 1e-6 <= edges[0] and edges[-1] <= step / 2 + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"weights": [[0.1, 0.2]]}, "weights"),
        ({"weights": torch.arange(6).reshape(2, 3)}, "weights"),
        ({"weights": torch.ones(2, 3), "bits": 1}, "bits"),
        ({"weights": torch.ones(2, 3), "bits": 9}, "bits"),
        ({"weights": torch.ones(2, 3), "bits": 16}, "bits"),
        ({"weights": torch.ones(2, 3), "bits": 4.0}, "bits"),
        ({"weights": torch.ones(3), "per_channel": True}, "per_channel"),
    ],
)
def test_quantization_explorer_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        widgets.quantization_explorer(**kwargs)
    with pytest.raises(ValueError, match=name):
        widgets.quantization_figure(**kwargs)


# ----------------------------------------------------------------------------- lesson 04

# Rows shaped like sparsity_sweep's and csr_speed's; CSR wins from 0.9 on, with one lucky win at
# 0.5 that the break-even rule must ignore.
PRUNE_ROWS = [
    {"sparsity": s, "accuracy_pruned": p, "accuracy_finetuned": f, "dense_accuracy": 96.0}
    for s, p, f in [(0.5, 95.0, 96.5), (0.8, 89.0, 95.5), (0.9, 60.0, 94.0), (0.95, 24.0, 85.0)]
]
SPEED_ROWS = [
    {"sparsity": s, "dense_ms": d, "csr_ms": c, "dense_bytes": 4000, "csr_bytes": b}
    for s, d, c, b in [
        (0.0, 1.0, 5.0, 8000),
        (0.5, 1.0, 0.9, 4000),
        (0.8, 1.0, 1.5, 1600),
        (0.9, 1.0, 0.8, 800),
        (0.99, 1.0, 0.1, 80),
    ]
]


def test_pruning_explorer_follows_the_slider():
    explorer = widgets.pruning_explorer(PRUNE_ROWS, SPEED_ROWS)
    # starts at the highest sparsity within 1 point of dense: 0.8 (95.5 vs 96.0)
    assert explorer.state == {"sparsity": 0.8}
    assert explorer.controls["sparsity"].options == (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
    assert "sparsity 0.8, 5.0x fewer weights" in explorer.text
    assert "89.0% pruned, 95.5% fine-tuned (dense 96.0%)" in explorer.text
    assert "dense 1 ms, CSR 1.5 ms (0.67x), CSR 40% of the dense bytes" in explorer.text
    assert "CSR wins from sparsity 0.9" in explorer.text
    first_png = shown_png(explorer)

    explorer.controls["sparsity"].value = 0.99
    assert explorer.state == {"sparsity": 0.99}
    # 0.99 was timed but not swept: the accuracy panel shows its nearest swept row, and says so
    assert "100.0x fewer weights" in explorer.text
    assert "24.0% pruned, 85.0% fine-tuned (dense 96.0%) (nearest swept 0.95)" in explorer.text
    assert "dense 1 ms, CSR 0.1 ms (10.00x)" in explorer.text
    assert shown_png(explorer) != first_png
    ax_acc, ax_time = explorer.figure.axes
    assert ax_acc.get_title() == "accuracy at sparsity 0.99"
    marker = ax_time.lines[-2]  # the marked point, then the break-even line
    assert list(marker.get_xdata()) == [0.99, 0.99]
    assert list(marker.get_ydata()) == [1.0, 0.1]


def test_pruning_figure_draws_the_rows_and_the_break_even_line():
    fig = widgets.pruning_figure(PRUNE_ROWS, SPEED_ROWS, sparsity=0.9)
    ax_acc, ax_time = fig.axes
    pruned, finetuned = ax_acc.lines[:2]
    assert list(pruned.get_xdata()) == [0.5, 0.8, 0.9, 0.95]
    assert list(finetuned.get_ydata()) == [96.5, 95.5, 94.0, 85.0]
    dense, csr = ax_time.lines[:2]
    assert list(csr.get_ydata()) == [5.0, 0.9, 1.5, 0.8, 0.1]
    assert ax_time.get_yscale() == "log"
    (even,) = [line for line in ax_time.lines if line.get_linestyle() == ":"]
    assert list(even.get_xdata()) == [0.9, 0.9]


def test_pruning_figure_takes_merged_rows_and_rows_without_timings():
    merged = [{**a, **t} for a in PRUNE_ROWS for t in SPEED_ROWS if a["sparsity"] == t["sparsity"]]
    text = widgets.pruning_summary(merged, sparsity=0.9)
    assert "CSR wins from sparsity 0.9" in text and "(1.25x)" in text
    alone = widgets.pruning_summary(PRUNE_ROWS, sparsity=0.95)
    assert "CSR" not in alone and "20.0x fewer weights" in alone
    fig = widgets.pruning_figure(PRUNE_ROWS, sparsity=0.95)
    assert not fig.axes[1].axison  # the timing panel says there is nothing to show


@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        (([],), {}, "rows"),
        (({"sparsity": 0.5},), {}, "rows"),
        (([{"sparsity": 0.5, "accuracy_pruned": 90.0}],), {}, "rows"),
        (([{**PRUNE_ROWS[0], "sparsity": 1.0}],), {}, "rows"),
        ((PRUNE_ROWS, [{"sparsity": 0.5, "dense_ms": 1.0}]), {}, "speed_rows"),
        ((PRUNE_ROWS,), {"sparsity": 0.7}, "sparsity"),
        ((PRUNE_ROWS,), {"sparsity": 1.0}, "sparsity"),
        ((PRUNE_ROWS,), {"sparsity": True}, "sparsity"),
    ],
)
def test_pruning_explorer_rejects_bad_input(args, kwargs, name):
    for build in (widgets.pruning_explorer, widgets.pruning_figure, widgets.pruning_summary):
        with pytest.raises(ValueError, match=name):
            build(*args, **kwargs)


# ----------------------------------------------------------------------------- lesson 05

# One example's logits, confident in class 2, with class 7 a clear runner-up and the rest far
# below: the shape of a trained teacher's output.
LOGITS = torch.tensor([-4.0, -6.0, 9.0, -3.0, -5.0, -2.0, -7.0, 5.0, -1.0, -8.0])


def _bar_heights(ax) -> list[float]:
    return [patch.get_height() for patch in ax.patches]


def _entropy_in(text: str) -> float:
    return float(text.split("entropy ")[1].split(" of")[0])


def test_temperature_explorer_follows_the_slider():
    explorer = widgets.temperature_explorer(LOGITS, T=1.0)
    assert explorer.state == {"T": 1.0}
    assert "top class 2" in explorer.text and "runner-up 7" in explorer.text
    cold = _entropy_in(explorer.text)
    first_png = shown_png(explorer)
    assert _bar_heights(explorer.figure.axes[0]) == pytest.approx(
        torch.softmax(LOGITS, 0).tolist(), rel=1e-5
    )

    explorer.controls["T"].value = 8.0
    assert explorer.state == {"T": 8.0}
    assert explorer.text.startswith("T = 8:")
    assert _bar_heights(explorer.figure.axes[0]) == pytest.approx(
        torch.softmax(LOGITS / 8, 0).tolist(), rel=1e-5
    )
    # the ratio of top to runner-up is exp((9 - 5) / T): e^4 at T = 1, e^0.5 at T = 8
    assert f"ratio {np.exp(0.5):.3g}" in explorer.text
    assert _entropy_in(explorer.text) > cold
    assert shown_png(explorer) != first_png
    assert explorer.figure.axes[0].get_title().startswith("T = 8: entropy")


def test_temperature_summary_gives_the_ratio_and_the_entropy_limit():
    cold = widgets.temperature_summary(LOGITS, 1.0)
    assert f"ratio {np.exp(4.0):.3g}" in cold
    p = torch.softmax(LOGITS, 0)
    entropy = float(-(p * torch.log2(p)).sum())
    assert _entropy_in(cold) == pytest.approx(entropy, abs=0.005)
    # as T grows the soft targets flatten towards uniform, whose entropy is log2 10 = 3.32 bits
    hot = widgets.temperature_summary(LOGITS, 20.0)
    assert "of 3.32 bits" in hot
    assert 3.0 < _entropy_in(hot) <= 3.32
    labels = [f"digit {i}" for i in range(10)]
    named = widgets.temperature_summary(LOGITS, 1.0, labels=labels)
    assert "top class digit 2" in named and "runner-up digit 7" in named


def test_temperature_figure_shows_the_small_probabilities_on_a_log_scale():
    fig = widgets.temperature_figure(LOGITS, T=2.0)
    ax_bar, ax_log = fig.axes
    assert ax_log.get_yscale() == "log"
    assert _bar_heights(ax_log) == pytest.approx(torch.softmax(LOGITS / 2, 0).tolist(), rel=1e-5)
    (plain,) = ax_log.lines  # the T = 1 softmax, for comparison
    assert list(plain.get_ydata()) == pytest.approx(torch.softmax(LOGITS, 0).tolist(), rel=1e-5)
    # the smallest probability at T = 1 (about 5e-8) lies inside the log panel's range
    assert ax_log.get_ylim()[0] < float(torch.softmax(LOGITS, 0).min())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"logits": [1.0, 2.0]}, "logits"),
        ({"logits": torch.arange(3)}, "logits"),
        ({"logits": torch.ones(2, 3)}, "logits"),
        ({"logits": torch.ones(1)}, "logits"),
        ({"logits": torch.tensor([1.0, float("nan")])}, "logits"),
        ({"logits": LOGITS, "T": 0.0}, "T"),
        ({"logits": LOGITS, "T": -1.0}, "T"),
        ({"logits": LOGITS, "T": 50.0}, "T"),
        ({"logits": LOGITS, "T": True}, "T"),
        ({"logits": LOGITS, "labels": ["a", "b"]}, "labels"),
    ],
)
def test_temperature_explorer_rejects_bad_input(kwargs, name):
    for build in (widgets.temperature_explorer, widgets.temperature_figure):
        with pytest.raises(ValueError, match=name):
            build(**kwargs)


# ----------------------------------------------------------------------------- lesson 06


def _drawn_bits(fig) -> str:
    ax_bits = fig.axes[0]
    digits = [t for t in ax_bits.texts if t.get_text() in ("0", "1")]
    return "".join(t.get_text() for t in sorted(digits, key=lambda t: t.get_position()[0]))


def _box_fields(fig) -> list[str]:
    field_of = {to_hex(color): field for field, color in widgets.FLOAT_FIELD_COLORS.items()}
    boxes = sorted(fig.axes[0].patches, key=lambda p: p.get_x())
    return [field_of[to_hex(p.get_facecolor())] for p in boxes]


def _range_bars(fig) -> dict[str, list]:
    ax_range = fig.axes[1]
    ticks = zip(ax_range.get_yticks(), ax_range.get_yticklabels(), strict=True)
    names = {round(y): t.get_text() for y, t in ticks}
    bars: dict[str, list] = {}
    for patch in ax_range.patches:
        bars.setdefault(names[round(patch.get_y() + patch.get_height() / 2)], []).append(patch)
    return bars


def _number_after(text: str, key: str) -> float:
    return float(text.split(key)[1].split(",")[0].split(";")[0])


def test_float_format_explorer_follows_both_controls():
    explorer = widgets.float_format_explorer(0.1)
    assert explorer.state == {"fmt": "fp16", "value": 0.1}
    assert explorer.controls["fmt"].options == ("fp32", "fp16", "bf16")
    assert explorer.text.startswith("fp16 (1+5+10 bits): 0.1 is stored as 0.0999755859375,")
    assert _number_after(explorer.text, "relative rounding error ") == pytest.approx(
        (0.0999755859375 - 0.1) / 0.1, rel=1e-3
    )
    assert _drawn_bits(explorer.figure) == "".join(float_bits(0.1, "fp16"))
    assert _box_fields(explorer.figure) == ["sign"] + ["exponent"] * 5 + ["mantissa"] * 10
    first_png = shown_png(explorer)

    # bf16 has fp16's 16 bits split differently: fp32's 8 exponent bits, 7 mantissa bits
    explorer.controls["fmt"].value = "bf16"
    assert explorer.state == {"fmt": "bf16", "value": 0.1}
    assert explorer.text.startswith("bf16 (1+8+7 bits): 0.1 is stored as 0.10009765625,")
    assert _drawn_bits(explorer.figure) == "".join(float_bits(0.1, "bf16"))
    assert _box_fields(explorer.figure) == ["sign"] + ["exponent"] * 8 + ["mantissa"] * 7
    bf16_png = shown_png(explorer)
    assert bf16_png != first_png
    bold = [
        t.get_text()
        for t in explorer.figure.axes[1].get_yticklabels()
        if t.get_fontweight() == "bold"
    ]
    assert bold == ["bf16"]

    explorer.controls["fmt"].value = "fp32"
    assert explorer.text.startswith("fp32 (1+8+23 bits): 0.1 is stored as 0.10000000149011612,")
    assert len(_drawn_bits(explorer.figure)) == 32
    assert "stored 0.10000000149011612" in explorer.figure.axes[0].get_title()

    explorer.controls["value"].value = 1000.0
    assert explorer.state == {"fmt": "fp32", "value": 1000.0}
    assert "1000.0 is stored as 1000.0, relative rounding error 0," in explorer.text
    assert _drawn_bits(explorer.figure) == "".join(float_bits(1000.0, "fp32"))
    (line,) = explorer.figure.axes[1].lines
    assert list(line.get_xdata()) == [1000.0, 1000.0]
    assert shown_png(explorer) not in (first_png, bf16_png)


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        (1.0, "fp16"),
        (-2.5, "fp16"),
        (0.1, "fp32"),
        (1e-8, "bf16"),
        (6e-8, "fp16"),
        (70000.0, "fp16"),
    ],
)
def test_float_format_figure_draws_the_stored_bits(value, fmt):
    fig = widgets.float_format_figure(value, fmt)
    sign, exponent, mantissa = float_bits(value, fmt)
    assert _drawn_bits(fig) == sign + exponent + mantissa
    assert _box_fields(fig) == ["sign"] + ["exponent"] * len(exponent) + ["mantissa"] * len(
        mantissa
    )
    stored = float(torch.tensor([value], dtype=FORMATS[fmt])[0])
    assert f"stored {stored!r} (rounding error {stored - value:+.3g})" in fig.axes[0].get_title()


def test_float_format_figure_bits_of_known_values():
    # 1 = +1.0 x 2^(15 - 15); 70000 is past fp16's max 65504, so it is stored as inf
    assert _drawn_bits(widgets.float_format_figure(1.0, "fp16")) == "0" + "01111" + "0" * 10
    assert _drawn_bits(widgets.float_format_figure(70000.0, "fp16")) == "0" + "11111" + "0" * 10
    assert _drawn_bits(widgets.float_format_figure(-2.0, "bf16")) == "1" + "10000000" + "0" * 7


@pytest.mark.parametrize(
    ("value", "fmt"),
    [(1000.0, "fp16"), (1.0, "fp16"), (1.0, "bf16"), (0.1, "fp32"), (6e-8, "fp16"), (-3.0, "bf16")],
)
def test_float_format_summary_spacing_is_the_gap_to_the_next_number(value, fmt):
    text = widgets.float_format_summary(value, fmt)
    assert _number_after(text, "spacing ") == pytest.approx(spacing(value, fmt), rel=1e-5)


def test_float_format_summary_names_the_range_cases():
    assert "spacing 0.5, normal" in widgets.float_format_summary(1000.0, "fp16")
    assert "max 65504, smallest normal 6.10352e-05" in widgets.float_format_summary(1.0, "fp16")
    # 1e-8 is below half fp16's smallest subnormal (5.96e-8): it flushes to zero; bf16 has
    # fp32's exponent range and holds it as a normal number
    tiny16 = widgets.float_format_summary(1e-8, "fp16")
    assert "is stored as 0.0, relative rounding error -1," in tiny16
    assert tiny16.split("; ")[0].endswith("underflows to 0")
    tiny_bf16 = widgets.float_format_summary(1e-8, "bf16")
    assert tiny_bf16.split("; ")[0].endswith(", normal")
    assert "underflows" not in tiny_bf16
    assert widgets.float_format_summary(6e-8, "fp16").split("; ")[0].endswith(", subnormal")
    big16 = widgets.float_format_summary(70000.0, "fp16")
    assert "is stored as inf" in big16 and "spacing inf, overflows to inf" in big16
    assert "stored as 70144.0" in widgets.float_format_summary(70000.0, "bf16")
    zero = widgets.float_format_summary(0.0, "fp16")
    assert zero.split("; ")[0].endswith(", zero") and "underflows" not in zero


def test_float_format_range_panel_spans_each_format():
    fig = widgets.float_format_figure(-2.5, "fp16")
    ax_range = fig.axes[1]
    assert ax_range.get_xscale() == "log"
    low, high = ax_range.get_xlim()
    assert low <= 1e-45 and high >= 3.5e38
    bars = _range_bars(fig)
    assert sorted(bars) == ["bf16", "fp16", "fp32"]
    for name, patches in bars.items():
        form = float_format(name)
        subnormal, normal = sorted(patches, key=lambda p: p.get_x())
        assert subnormal.get_x() == pytest.approx(form.smallest_subnormal, rel=1e-12)
        assert subnormal.get_x() + subnormal.get_width() == pytest.approx(form.smallest_normal)
        assert normal.get_x() == pytest.approx(form.smallest_normal, rel=1e-12)
        assert normal.get_x() + normal.get_width() == pytest.approx(form.max, rel=1e-12)
        assert subnormal.get_alpha() < normal.get_facecolor()[3]  # subnormals lighter
    chosen = to_hex(bars["fp16"][0].get_facecolor())
    assert all(to_hex(p.get_facecolor()) != chosen for p in bars["fp32"] + bars["bf16"])
    (line,) = ax_range.lines
    assert list(line.get_xdata()) == [2.5, 2.5]  # at |value|
    # the value asked for, not the one stored (70000 is inf in fp16, 0.1 is 0.0999755859375)
    for value in (70000.0, 0.1):
        (line,) = widgets.float_format_figure(value, "fp16").axes[1].lines
        assert list(line.get_xdata()) == [value, value]
    assert not widgets.float_format_figure(0.0, "fp16").axes[1].lines


def test_float_format_explorer_value_box_stays_in_range():
    explorer = widgets.float_format_explorer(1.0, fmt="fp32")
    explorer.controls["value"].value = 1e40
    assert explorer.state == {"fmt": "fp32", "value": widgets.FLOAT_VALUE_LIMIT}
    assert explorer.text.split("; ")[0].endswith(", normal")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"fmt": "fp8"}, "fmt"),
        ({"fmt": torch.float16}, "fmt"),
        ({"value": "x"}, "value"),
        ({"value": True}, "value"),
        ({"value": float("nan")}, "value"),
        ({"value": float("inf")}, "value"),
        ({"value": -float("inf")}, "value"),
        ({"value": 1e40}, "value"),
        ({"value": -3.5e38}, "value"),
    ],
)
def test_float_format_explorer_rejects_bad_input(kwargs, name):
    for build in (
        widgets.float_format_explorer,
        widgets.float_format_figure,
        widgets.float_format_summary,
    ):
        with pytest.raises(ValueError, match=rf"^{name} must"):
            build(**kwargs)


# ----------------------------------------------------------------------------- lesson 07

# Rows shaped like sparsity_runs': 4 dense, 3 sparse and 3 re-dense epochs, listed out of order.
# Pruning costs accuracy at the first sparse epoch (more at higher sparsity); re-dense recovers.
DSD_PHASES = ["dense"] * 4 + ["sparse"] * 3 + ["re-dense"] * 3
DSD_CURVES = {
    0.0: (90.0, [60.0, 75.0, 82.0, 86.0, 87.0, 88.0, 88.5, 89.0, 89.5, 89.8]),
    0.3: (90.4, [60.0, 75.0, 82.0, 86.0, 80.0, 84.0, 85.0, 88.0, 89.5, 90.2]),
    0.5: (89.1, [60.0, 75.0, 82.0, 86.0, 71.5, 80.0, 83.0, 87.0, 88.0, 88.9]),
    0.9: (85.0, [60.0, 75.0, 82.0, 86.0, 30.0, 55.0, 70.0, 80.0, 83.0, 84.6]),
}


def _dsd_row(sparsity, accuracy, curve, phases=DSD_PHASES):
    zeros = [sparsity if p == "sparse" else 0.0 for p in phases]
    return {
        "sparsity": sparsity,
        "accuracy": accuracy,
        "val_curve": list(curve),
        "phases": list(phases),
        "sparsity_curve": zeros,
    }


DSD_ROWS = [_dsd_row(s, *DSD_CURVES[s]) for s in (0.5, 0.0, 0.9, 0.3)]


def _labelled(ax, label):
    return [line for line in ax.lines if line.get_label() == label]


def _dsd_main_line(fig, sparsity):
    label = "sparsity 0 (dense control)" if sparsity == 0 else f"sparsity {sparsity:g}"
    (line,) = _labelled(fig.axes[0], label)
    return line


def _points_in(text: str) -> float:
    return float(text.split(" points)")[0].rsplit("(", 1)[1])


def test_dsd_explorer_follows_the_slider():
    before = [dict(r) for r in DSD_ROWS]
    explorer = widgets.dsd_explorer(DSD_ROWS)
    assert DSD_ROWS == before  # the caller's rows are neither sorted nor converted
    assert explorer.state == {"sparsity": 0.3}  # Han et al.'s sparsity, present here
    assert explorer.controls["sparsity"].options == (0.0, 0.3, 0.5, 0.9)
    assert explorer.text.startswith(
        "sparsity 0.3: test accuracy 90.4%, dense control 90.0% (+0.4 points)"
    )
    assert list(_dsd_main_line(explorer.figure, 0.3).get_ydata()) == DSD_CURVES[0.3][1]
    first_png = shown_png(explorer)

    explorer.controls["sparsity"].value = 0.9
    assert explorer.state == {"sparsity": 0.9}
    assert explorer.text.startswith(
        "sparsity 0.9: test accuracy 85.0%, dense control 90.0% (-5.0 points)"
    )
    assert "first sparse epoch 56.0 points below the end of dense" in explorer.text
    high_png = shown_png(explorer)
    assert high_png != first_png
    ax_curve, ax_acc, ax_zero = explorer.figure.axes
    main = _dsd_main_line(explorer.figure, 0.9)
    assert list(main.get_xdata()) == list(range(1, 11))
    assert list(main.get_ydata()) == DSD_CURVES[0.9][1]
    assert ax_curve.get_title().startswith("sparsity 0.9:")
    (zero,) = ax_zero.lines
    assert list(zero.get_ydata()) == [0.0] * 4 + [0.9] * 3 + [0.0] * 3
    (ring,) = _labelled(ax_acc, "chosen")
    assert list(ring.get_xdata()) == [0.9] and list(ring.get_ydata()) == [85.0]

    # at sparsity 0 the chosen run is the control itself: no second, dashed copy of it
    explorer.controls["sparsity"].value = 0.0
    assert explorer.state == {"sparsity": 0.0}
    assert explorer.text.startswith("sparsity 0 (the dense control): test accuracy 90.0%;")
    assert "points)" not in explorer.text
    assert list(_dsd_main_line(explorer.figure, 0.0).get_ydata()) == DSD_CURVES[0.0][1]
    assert not _labelled(explorer.figure.axes[0], "dense control")
    assert shown_png(explorer) not in (first_png, high_png)


def test_dsd_figure_shades_the_phases_at_their_epochs():
    fig = widgets.dsd_figure(DSD_ROWS, sparsity=0.5)
    ax_curve = fig.axes[0]
    spans = [(p.get_label(), p.get_x(), p.get_x() + p.get_width()) for p in ax_curve.patches]
    # epoch e is drawn at x = e, so a phase over epochs a..b spans [a - 0.5, b + 0.5]
    assert spans == [("dense", 0.5, 4.5), ("sparse", 4.5, 7.5), ("re-dense", 7.5, 10.5)]
    colors = {p.get_label(): to_hex(p.get_facecolor()) for p in ax_curve.patches}
    assert len(set(colors.values())) == 3
    assert [t.get_text() for t in ax_curve.texts] == ["dense", "sparse", "re-dense"]
    assert [t.get_position()[0] for t in ax_curve.texts] == [2.5, 6.0, 9.0]
    ax_zero = fig.axes[2]
    assert ax_zero.get_ylim() == (0.0, 1.0)
    (zero,) = ax_zero.lines
    assert zero.get_drawstyle() == "steps-mid"
    assert list(zero.get_ydata()) == [0.0] * 4 + [0.5] * 3 + [0.0] * 3

    # iterated DSD repeats the sparse and re-dense phases: one span per run of epochs
    phases = ["dense"] * 2 + ["sparse"] * 2 + ["re-dense"] + ["sparse"] + ["re-dense"] * 2
    curve = [50.0, 60.0, 55.0, 58.0, 62.0, 59.0, 63.0, 64.0]
    rows = [_dsd_row(0.0, 60.0, curve, phases), _dsd_row(0.3, 64.0, curve, phases)]
    ax_curve = widgets.dsd_figure(rows).axes[0]
    spans = [(p.get_label(), p.get_x(), p.get_x() + p.get_width()) for p in ax_curve.patches]
    assert spans == [
        ("dense", 0.5, 2.5),
        ("sparse", 2.5, 4.5),
        ("re-dense", 4.5, 5.5),
        ("sparse", 5.5, 6.5),
        ("re-dense", 6.5, 8.5),
    ]


def test_dsd_figure_draws_all_rows_and_the_dense_control():
    fig = widgets.dsd_figure(DSD_ROWS, sparsity=0.5)
    ax_curve, ax_acc, _ = fig.axes
    (accuracy,) = _labelled(ax_acc, "after DSD")
    assert list(accuracy.get_xdata()) == [0.0, 0.3, 0.5, 0.9]
    assert list(accuracy.get_ydata()) == [90.0, 90.4, 89.1, 85.0]
    (level,) = _labelled(ax_acc, "dense control")
    assert list(level.get_ydata()) == [90.0, 90.0]
    assert level.get_linestyle() == "--"
    (ring,) = _labelled(ax_acc, "chosen")
    assert list(ring.get_xdata()) == [0.5] and list(ring.get_ydata()) == [89.1]
    (control,) = _labelled(ax_curve, "dense control")
    assert control.get_linestyle() == "--"
    assert to_hex(control.get_color()) == to_hex("0.5")
    assert list(control.get_ydata()) == DSD_CURVES[0.0][1]
    assert list(_dsd_main_line(fig, 0.5).get_ydata()) == DSD_CURVES[0.5][1]


def test_dsd_summary_gives_the_difference_the_phase_ends_and_the_drop():
    for s, (accuracy, curve) in DSD_CURVES.items():
        if s == 0:
            continue
        text = widgets.dsd_summary(DSD_ROWS, sparsity=s)
        assert _points_in(text) == pytest.approx(accuracy - DSD_CURVES[0.0][0], abs=0.05)
        assert f"validation at the end of dense 86.0%, sparse {curve[6]:.1f}%, " in text
        assert f"re-dense {curve[9]:.1f}%;" in text
        assert f"first sparse epoch {86.0 - curve[4]:.1f} points below the end of dense" in text
    assert "(+0.4 points)" in widgets.dsd_summary(DSD_ROWS, sparsity=0.3)
    assert "(-0.9 points)" in widgets.dsd_summary(DSD_ROWS, sparsity=0.5)
    # the dense control keeps improving into its "sparse" epochs: a rise, not a drop
    control = widgets.dsd_summary(DSD_ROWS, sparsity=0.0)
    assert control.endswith("first sparse epoch 1.0 points above the end of dense")
    # equal accuracies give +0.0, not -0.0
    tie = [_dsd_row(0.0, 90.0, DSD_CURVES[0.0][1]), _dsd_row(0.3, 89.96, DSD_CURVES[0.3][1])]
    assert "(+0.0 points)" in widgets.dsd_summary(tie)


def test_dsd_without_a_dense_control_draws_and_says_so():
    rows = [r for r in DSD_ROWS if r["sparsity"] != 0]
    fig = widgets.dsd_figure(rows)
    ax_curve, ax_acc, _ = fig.axes
    assert not _labelled(ax_curve, "dense control") and not _labelled(ax_acc, "dense control")
    assert list(_dsd_main_line(fig, 0.3).get_ydata()) == DSD_CURVES[0.3][1]
    (accuracy,) = _labelled(ax_acc, "after DSD")
    assert list(accuracy.get_ydata()) == [90.4, 89.1, 85.0]
    text = widgets.dsd_summary(rows, sparsity=0.9)
    assert text.startswith("sparsity 0.9: test accuracy 85.0% (no dense control: no row at")
    assert "points)" not in text
    explorer = widgets.dsd_explorer(rows)
    assert explorer.controls["sparsity"].options == (0.3, 0.5, 0.9)
    assert "no dense control" in explorer.text


def test_dsd_default_sparsity_is_han_et_als_else_the_smallest_non_zero():
    without_03 = [r for r in DSD_ROWS if r["sparsity"] != 0.3]
    assert widgets.dsd_explorer(without_03).state == {"sparsity": 0.5}
    only_control = [r for r in DSD_ROWS if r["sparsity"] == 0]
    assert widgets.dsd_explorer(only_control).state == {"sparsity": 0.0}
    assert widgets.dsd_summary(without_03).startswith("sparsity 0.5:")


_GOOD = DSD_ROWS[1]


@pytest.mark.parametrize(
    ("rows", "kwargs", "name"),
    [
        ([], {}, "rows"),
        (_GOOD, {}, "rows"),
        ("rows", {}, "rows"),
        ([5], {}, "rows"),
        ([{k: v for k, v in _GOOD.items() if k != "phases"}], {}, "rows"),
        ([{**_GOOD, "val_curve": _GOOD["val_curve"][:-1]}], {}, "rows"),
        ([{**_GOOD, "sparsity_curve": [0.0]}], {}, "rows"),
        ([{**_GOOD, "val_curve": [], "phases": [], "sparsity_curve": []}], {}, "rows"),
        ([{**_GOOD, "phases": ["dense"] * 4 + ["prune"] * 3 + ["re-dense"] * 3}], {}, "rows"),
        ([{**_GOOD, "phases": "dense"}], {}, "rows"),
        ([{**_GOOD, "val_curve": ["x"] * 10}], {}, "rows"),
        ([{**_GOOD, "sparsity_curve": [1.5] * 10}], {}, "rows"),
        ([{**_GOOD, "accuracy": None}], {}, "rows"),
        ([{**_GOOD, "sparsity": 1.0}], {}, "rows"),
        ([{**_GOOD, "sparsity": -0.1}], {}, "rows"),
        ([{**_GOOD, "sparsity": True}], {}, "rows"),
        ([{**_GOOD, "sparsity": float("nan")}], {}, "rows"),
        ([_GOOD, dict(_GOOD)], {}, "rows"),
        (DSD_ROWS, {"sparsity": 0.7}, "sparsity"),
        (DSD_ROWS, {"sparsity": 1.0}, "sparsity"),
        (DSD_ROWS, {"sparsity": True}, "sparsity"),
        (DSD_ROWS, {"sparsity": "0.3"}, "sparsity"),
    ],
)
def test_dsd_explorer_rejects_bad_input(rows, kwargs, name):
    for build in (widgets.dsd_explorer, widgets.dsd_figure, widgets.dsd_summary):
        with pytest.raises(ValueError, match=rf"^{name}"):
            build(rows, **kwargs)


def test_dsd_bad_sparsity_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"one of the rows' sparsities \[0.0, 0.3, 0.5, 0.9\]"):
        widgets.dsd_summary(DSD_ROWS, sparsity=0.7)


# ----------------------------------------------------------------------------- lesson 08

# A data-parallel sweep shaped like the lesson's: (workers, batch) -> (samples/s, step ms,
# compute ms, all-reduce ms). Two workers lose at batch 16 (the all-reduce outweighs the halved
# compute) and gain more as the batch grows; (4, 16) was not measured.
THROUGHPUT = {
    (1, 16): (800.0, 20.0, 18.0, 0.0),
    (1, 64): (1600.0, 40.0, 36.0, 0.0),
    (1, 256): (2560.0, 100.0, 92.0, 0.0),
    (1, 1024): (3200.0, 320.0, 300.0, 0.0),
    (2, 16): (640.0, 25.0, 10.0, 13.0),
    (2, 64): (2080.0, 30.8, 18.0, 12.0),
    (2, 256): (4096.0, 62.5, 46.0, 14.0),
    (2, 1024): (5760.0, 177.8, 150.0, 20.0),
    (4, 64): (1600.0, 40.0, 9.0, 28.0),
    (4, 256): (5120.0, 50.0, 23.0, 24.0),
    (4, 1024): (9600.0, 106.7, 75.0, 22.0),
}
THROUGHPUT_ROWS = [
    {
        "workers": k,
        "batch": b,
        "samples_per_s": rate,
        "step_ms": step,
        "compute_ms": compute,
        "comm_ms": comm,
    }
    # listed out of order, as rows gathered from several launches may come
    for (k, b), (rate, step, compute, comm) in sorted(THROUGHPUT.items(), key=lambda kv: -kv[0][1])
]


def _speedup_in(text: str) -> float:
    return float(text.split("x the 1-worker throughput")[0].rsplit(" ", 1)[1])


def _efficiency_in(text: str) -> float:
    return float(text.split("scaling efficiency ")[1].split("%")[0]) / 100


def _share_in(text: str) -> float:
    return float(text.split(" ms, ")[1].split("% of the")[0]) / 100


def _bars(fig) -> tuple[list[float], list[float], list[float]]:
    """The compute heights, the all-reduce heights and the all-reduce bottoms of the step panel."""
    compute, comm = fig.axes[1].containers
    return (
        [p.get_height() for p in compute],
        [p.get_height() for p in comm],
        [p.get_y() for p in comm],
    )


def test_throughput_explorer_follows_the_controls():
    before = [dict(r) for r in THROUGHPUT_ROWS]
    explorer = widgets.throughput_explorer(THROUGHPUT_ROWS)
    assert THROUGHPUT_ROWS == before  # the caller's rows are neither sorted nor converted
    assert explorer.state == {"workers": 4, "batch": 1024}  # the largest of each
    assert explorer.controls["workers"].options == (1, 2, 4)
    assert explorer.controls["batch"].options == (16, 64, 256, 1024)
    # 4 workers at 1024: 9600 / 3200 = 3x the 1 worker, 3 / 4 = 75% efficient, 22 of 106.7 ms
    assert explorer.text == (
        "4 workers, global batch 1024 (256 per worker): 9,600 samples/s, 3.00x the 1-worker "
        "throughput at this batch, scaling efficiency 75%. The all-reduce takes 22 ms, 21% of "
        "the 107 ms step (compute 75 ms)."
    )
    first_png = shown_png(explorer)

    for workers, batch in [(2, 1024), (2, 256), (2, 64), (2, 16), (4, 64), (4, 256)]:
        if explorer.state["workers"] != workers:
            explorer.controls["workers"].value = workers
        explorer.controls["batch"].value = batch
        assert explorer.state == {"workers": workers, "batch": batch}
        rate, step, _, comm = THROUGHPUT[workers, batch]
        speedup = rate / THROUGHPUT[1, batch][0]
        text = explorer.text
        assert text.startswith(
            f"{workers} workers, global batch {batch} ({batch // workers} per worker): "
            f"{rate:,.0f} samples/s, "
        )
        assert _speedup_in(text) == pytest.approx(speedup, abs=0.005)
        assert _efficiency_in(text) == pytest.approx(speedup / workers, abs=0.005)
        assert _share_in(text) == pytest.approx(comm / step, abs=0.005)
        (ring,) = _labelled(explorer.figure.axes[0], "chosen")
        assert list(ring.get_xdata()) == [batch] and list(ring.get_ydata()) == [rate]
        # the step panel shows the chosen batch: one bar per worker count measured there
        measured = sorted(k for k, b in THROUGHPUT if b == batch)
        assert _bars(explorer.figure)[1] == [THROUGHPUT[k, batch][3] for k in measured]
        assert _bars(explorer.figure)[1][measured.index(workers)] == comm
    # the numbers a student should read off: 80% efficient at 256, slower at 16
    explorer.controls["workers"].value = 2
    assert "2 workers, global batch 256" in explorer.text
    assert "1.60x the 1-worker throughput at this batch, scaling efficiency 80%" in explorer.text
    explorer.controls["batch"].value = 16
    assert "0.80x the 1-worker throughput at this batch, scaling efficiency 40%" in explorer.text
    assert "takes 13 ms, 52% of the 25 ms step (compute 10 ms)" in explorer.text
    assert shown_png(explorer) != first_png

    # a pair that was not measured: said, not raised, and no chosen point
    explorer.controls["workers"].value = 4
    assert explorer.state == {"workers": 4, "batch": 16}
    assert explorer.text == (
        "4 workers, global batch 16: not measured; the global batches measured with 4 workers: "
        "[64, 256, 1024]."
    )
    assert not _labelled(explorer.figure.axes[0], "chosen")
    assert explorer.figure.axes[0].get_title() == "4 workers, global batch 16: not measured"
    assert [t.get_text() for t in explorer.figure.axes[1].get_xticklabels()] == ["1", "2"]

    explorer.controls["workers"].value = 1
    assert explorer.text == (
        "1 worker, global batch 16: 800 samples/s, the 1-worker baseline (speed-up 1.00x, "
        "scaling efficiency 100%). With one worker there is no all-reduce: 18 ms of the 20 ms "
        "step is compute."
    )


def test_throughput_figure_draws_one_line_per_worker_count_and_the_ideal():
    fig = widgets.throughput_figure(THROUGHPUT_ROWS, workers=4, batch=256)
    ax_rate, _ = fig.axes
    assert ax_rate.get_xscale() == "log"
    assert [t.get_text() for t in ax_rate.get_xticklabels()] == ["16", "64", "256", "1024"]
    labels = [line.get_label() for line in ax_rate.lines]
    assert labels == ["1 worker", "2 workers", "4 workers", "ideal: 4 x 1 worker", "chosen"]
    for k in (1, 2, 4):
        (line,) = _labelled(ax_rate, widgets._workers_name(k))
        batches = sorted(b for kk, b in THROUGHPUT if kk == k)
        assert list(line.get_xdata()) == batches
        assert list(line.get_ydata()) == [THROUGHPUT[k, b][0] for b in batches]
    (ideal,) = _labelled(ax_rate, "ideal: 4 x 1 worker")
    assert list(ideal.get_xdata()) == [16, 64, 256, 1024]
    assert list(ideal.get_ydata()) == [3200.0, 6400.0, 10240.0, 12800.0]
    assert ideal.get_linestyle() == ":"
    (ring,) = _labelled(ax_rate, "chosen")
    assert list(ring.get_xdata()) == [256] and list(ring.get_ydata()) == [5120.0]
    # one worker has nothing to be ideal against
    one = widgets.throughput_figure(THROUGHPUT_ROWS, workers=1, batch=64).axes[0]
    assert not [line for line in one.lines if line.get_label().startswith("ideal")]
    assert len(one.lines) == 4


def test_throughput_figure_stacks_compute_and_all_reduce_with_the_efficiency():
    fig = widgets.throughput_figure(THROUGHPUT_ROWS, workers=2, batch=1024)
    ax_step = fig.axes[1]
    assert [t.get_text() for t in ax_step.get_xticklabels()] == ["1", "2", "4"]
    compute, comm, bottoms = _bars(fig)
    assert compute == [300.0, 150.0, 75.0]
    assert comm == [0.0, 20.0, 22.0]
    assert bottoms == compute  # the all-reduce sits on top of the compute
    (step,) = _labelled(ax_step, "step (wall time)")
    assert list(step.get_ydata()) == [320.0, 177.8, 106.7]
    # 3200 / 3200, 5760 / (2 x 3200) = 90%, 9600 / (4 x 3200) = 75%
    assert [t.get_text() for t in ax_step.texts] == ["eff 100%", "eff 90%", "eff 75%"]
    # each label sits on its bar, above the taller of the stack and the wall-time mark
    assert [t.xy for t in ax_step.texts] == [(0, 320.0), (1, 177.8), (2, 106.7)]
    # the chosen bar (2 workers) is outlined, the others are not
    edges = [p.get_edgecolor()[3] for p in ax_step.containers[0]]
    assert edges == [0.0, 1.0, 0.0]
    assert ax_step.get_title() == "global batch 1024: where a step's time goes"

    fig = widgets.throughput_figure(THROUGHPUT_ROWS, workers=4, batch=64)
    compute, comm, _ = _bars(fig)
    assert compute == [36.0, 18.0, 9.0] and comm == [0.0, 12.0, 28.0]
    assert [t.get_text() for t in fig.axes[1].texts] == ["eff 100%", "eff 65%", "eff 25%"]


def test_throughput_without_a_1_worker_row_has_no_efficiency_and_says_so():
    rows = [r for r in THROUGHPUT_ROWS if r["workers"] != 1]
    fig = widgets.throughput_figure(rows)
    ax_rate, ax_step = fig.axes
    assert [line.get_label() for line in ax_rate.lines] == ["2 workers", "4 workers", "chosen"]
    assert not ax_step.texts
    assert "no 1-worker row at this batch: no scaling efficiency" in ax_step.get_title()
    assert _bars(fig)[:2] == ([150.0, 75.0], [20.0, 22.0])
    text = widgets.throughput_summary(rows, workers=2, batch=256)
    assert text == (
        "2 workers, global batch 256 (128 per worker): 4,096 samples/s; no 1-worker row at "
        "batch 256, so no speed-up or scaling efficiency. The all-reduce takes 14 ms, 22% of "
        "the 62.5 ms step (compute 46 ms)."
    )
    explorer = widgets.throughput_explorer(rows)
    assert explorer.controls["workers"].options == (2, 4)
    assert "no speed-up or scaling efficiency" in explorer.text

    # the 1-worker row missing at one batch only: the other batches keep their labels
    rows = [r for r in THROUGHPUT_ROWS if (r["workers"], r["batch"]) != (1, 256)]
    assert not widgets.throughput_figure(rows, batch=256).axes[1].texts
    assert len(widgets.throughput_figure(rows, batch=64).axes[1].texts) == 3
    assert "scaling efficiency 65%" in widgets.throughput_summary(rows, workers=2, batch=64)


def test_throughput_defaults_fall_on_a_measured_pair():
    assert widgets.throughput_explorer(THROUGHPUT_ROWS, workers=2).state == {
        "workers": 2,
        "batch": 1024,
    }
    # nothing with 4 workers at 16: the most workers measured there
    assert widgets.throughput_explorer(THROUGHPUT_ROWS, batch=16).state == {
        "workers": 2,
        "batch": 16,
    }
    small = [r for r in THROUGHPUT_ROWS if r["batch"] <= 64]
    assert widgets.throughput_summary(small).startswith("4 workers, global batch 64 ")
    # 4 workers never ran at 1024: their largest measured batch, not an empty point
    partial = [r for r in THROUGHPUT_ROWS if (r["workers"], r["batch"]) != (4, 1024)]
    assert widgets.throughput_explorer(partial).state == {"workers": 4, "batch": 256}
    assert widgets.throughput_summary(partial).startswith("4 workers, global batch 256 ")


_TP = THROUGHPUT_ROWS[0]


@pytest.mark.parametrize(
    ("rows", "kwargs", "name"),
    [
        ([], {}, "rows"),
        (_TP, {}, "rows"),
        ("rows", {}, "rows"),
        ([5], {}, "rows"),
        ([{k: v for k, v in _TP.items() if k != "comm_ms"}], {}, "rows"),
        ([{**_TP, "workers": 0}], {}, "rows"),
        ([{**_TP, "workers": 2.0}], {}, "rows"),
        ([{**_TP, "workers": True}], {}, "rows"),
        ([{**_TP, "batch": "64"}], {}, "rows"),
        ([{**_TP, "samples_per_s": 0.0}], {}, "rows"),
        ([{**_TP, "step_ms": float("nan")}], {}, "rows"),
        ([{**_TP, "compute_ms": None}], {}, "rows"),
        ([{**_TP, "comm_ms": -1.0}], {}, "rows"),
        ([_TP, dict(_TP)], {}, "rows"),
        (THROUGHPUT_ROWS, {"workers": 3}, "workers"),
        (THROUGHPUT_ROWS, {"workers": True}, "workers"),
        (THROUGHPUT_ROWS, {"workers": 2.0}, "workers"),
        (THROUGHPUT_ROWS, {"batch": 32}, "batch"),
        (THROUGHPUT_ROWS, {"batch": "64"}, "batch"),
        (THROUGHPUT_ROWS, {"workers": 2, "batch": 0}, "batch"),
    ],
)
def test_throughput_explorer_rejects_bad_input(rows, kwargs, name):
    for build in (
        widgets.throughput_explorer,
        widgets.throughput_figure,
        widgets.throughput_summary,
    ):
        with pytest.raises(ValueError, match=rf"^{name}"):
            build(rows, **kwargs)


def test_throughput_bad_choice_names_the_value_and_the_allowed_ones():
    with pytest.raises(ValueError, match=r"^workers .* worker counts \[1, 2, 4\], got 3$"):
        widgets.throughput_summary(THROUGHPUT_ROWS, workers=3)
    with pytest.raises(
        ValueError, match=r"^batch .* global batches \[16, 64, 256, 1024\], got 32$"
    ):
        widgets.throughput_figure(THROUGHPUT_ROWS, batch=32)
    with pytest.raises(ValueError, match=r"lacks the keys \['comm_ms'\]"):
        widgets.throughput_explorer([{k: v for k, v in _TP.items() if k != "comm_ms"}])
    with pytest.raises(ValueError, match=r"one row per \(workers, batch\), got \[\(1, 1024\)\]"):
        widgets.throughput_summary([_TP, dict(_TP)])


def test_search_explorer_follows_its_controls():
    explorer = widgets.search_explorer(trials=9, y_weight=0.0, seed=0)
    assert explorer.state == {"trials": 9, "y_weight": 0.0, "seed": 0}
    assert explorer.text.startswith("9 trials, y weight 0: the grid tries 3 distinct values of x")
    grid_ax, random_ax = explorer.figure.axes[:2]
    assert len(grid_ax.collections[-1].get_offsets()) == 9
    assert grid_ax.get_title().startswith("grid: 3 distinct x")
    assert random_ax.get_title().startswith("random: 9 distinct x")
    first_png = shown_png(explorer)

    explorer.controls["trials"].value = 25
    assert "the grid tries 5 distinct values of x, random search 25" in explorer.text
    assert len(explorer.figure.axes[0].collections[-1].get_offsets()) == 25
    assert shown_png(explorer) != first_png
    explorer.controls["seed"].value = 3
    assert explorer.state["seed"] == 3
    # the text's best values are the smallest f among the points each panel draws
    a, b = np.random.default_rng(3).random(2)
    for ax, name in zip(explorer.figure.axes[:2], ("grid", "random"), strict=True):
        x = ax.collections[-1].get_offsets()[:, 0]
        best = float(np.min((x - a) ** 2))
        assert f"{name}: " in ax.get_title() and f"best f = {best:.4f}" in ax.get_title()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"trials": 10}, "trials"), ({"y_weight": 2.0}, "y_weight"), ({"seed": -1}, "seed")],
)
def test_search_explorer_rejects_bad_input(kwargs, name):
    for build in (widgets.search_explorer, widgets.search_figure, widgets.search_summary):
        with pytest.raises(ValueError, match=name):
            build(**kwargs)


def test_bo_explorer_steps_through_the_run():
    explorer = widgets.bo_explorer(step=0, seed=0)
    assert explorer.state == {"step": 0}
    assert explorer.text.startswith(f"step 0: {widgets.BO_INITIAL} points")
    top, bottom = explorer.figure.axes[:2]
    first_png = shown_png(explorer)
    explorer.controls["step"].value = 4
    assert explorer.text.startswith(f"step 4: {widgets.BO_INITIAL + 4} points")
    assert shown_png(explorer) != first_png
    # the next point is the maximiser of the expected improvement drawn below
    ei_line = explorer.figure.axes[1].get_lines()[0]
    x_next = float(ei_line.get_xdata()[int(np.argmax(ei_line.get_ydata()))])
    assert f"next x = {x_next:.3f}" in explorer.text
    # and the points of step 4 are those of step 3 plus step 3's next point
    step3, step4 = widgets._bo_run(0)[3], widgets._bo_run(0)[4]
    assert np.allclose(step4["x"], np.append(step3["x"], step3["next"]))
    assert np.allclose(step4["y"], widgets.forrester(step4["x"]))
    # after ten steps the best point found lies in the global basin near 0.757
    last = widgets._bo_run(0)[-1]
    assert abs(last["x"][int(np.argmin(last["y"]))] - widgets.FORRESTER_MIN[0]) < 0.05


@pytest.mark.parametrize(("kwargs", "name"), [({"step": 10}, "step"), ({"seed": -1}, "seed")])
def test_bo_explorer_rejects_bad_input(kwargs, name):
    for build in (widgets.bo_explorer, widgets.bo_figure, widgets.bo_summary):
        with pytest.raises(ValueError, match=name):
            build(**kwargs)


def _curves(n=81, epochs=27):
    g = np.random.default_rng(0)
    t = np.arange(1, epochs + 1)
    return {
        "epochs": epochs,
        "configs": [
            {"params": {}, "curve": (f + (80 - f) * np.exp(-s * t)).tolist()}
            for f, s in zip(g.uniform(5, 60, n), g.uniform(0.05, 0.6, n), strict=True)
        ],
    }


def test_hyperband_explorer_follows_the_setting_and_the_bracket():
    table = _curves()
    explorer = widgets.hyperband_explorer(table, 27, 3, bracket=0)
    assert explorer.state == {"setting": (27, 3), "bracket": 0}
    assert explorer.text.startswith("R = 27, eta = 3, bracket s = 3: 27 at 1 -> 9 at 3 -> 3 at 9")
    # every configuration is drawn up to the epochs it was given: 18 stopped after 1 epoch,
    # 6 after 3, 2 after 9, one trained to 27 (the rung lines are dotted)
    curves_ax = explorer.figure.axes[1]
    lengths = [len(ln.get_xdata()) for ln in curves_ax.get_lines() if ln.get_linestyle() == "-"]
    assert sorted(lengths) == [1] * 18 + [3] * 6 + [9] * 2 + [27]
    spent = 27 * 1 + 9 * (3 - 1) + 3 * (9 - 3) + 1 * (27 - 9)
    assert f"it spent {spent} epochs, against {27 * 27}" in explorer.text
    first_png = shown_png(explorer)
    explorer.controls["bracket"].value = 3
    assert explorer.text.startswith("R = 27, eta = 3, bracket s = 0: 4 at 27 epochs")
    assert shown_png(explorer) != first_png
    explorer.controls["setting"].value = (8, 2)
    assert explorer.text.startswith("R = 8, eta = 2, bracket s = 0:")
    explorer.controls["bracket"].value = 0
    assert explorer.text.startswith("R = 8, eta = 2, bracket s = 3: 8 at 1 -> 4 at 2")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"max_resource": 10}, "max_resource"), ({"bracket": 7}, "bracket")],
)
def test_hyperband_explorer_rejects_bad_input(kwargs, name):
    for build in (widgets.hyperband_explorer, widgets.hyperband_figure, widgets.hyperband_summary):
        with pytest.raises(ValueError, match=name):
            build(_curves(), **kwargs)
