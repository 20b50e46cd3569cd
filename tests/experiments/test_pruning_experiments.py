"""Lesson 04's experiments on small settings: the figures they report against direct
computations (closed-form MACs, CSR byte counts, bytes recounted from independently encoded
layers) and the properties pruning must have (fine-tuning recovers accuracy, MACs fall with
channel sparsity)."""

import copy

import pytest
import torch
from torch import nn

from effdl.compress import prune as P
from effdl.compress import sharing as S
from effdl.experiments import pruning as X


@pytest.fixture(scope="module")
def lenet():
    return X.train_lenet(0, epochs=10)


@pytest.fixture(scope="module")
def cnn():
    return X.train_cnn(0, epochs=2)


def test_builders_are_seeded_and_leave_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b, c = X.build_lenet(0), X.build_lenet(0), X.build_lenet(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a[1].weight, b[1].weight) and not torch.equal(a[1].weight, c[1].weight)
    shapes = [tuple(m.weight.shape) for m in a if isinstance(m, nn.Linear)]
    assert shapes == [(300, 64), (100, 300), (10, 100)]
    assert sum(m.weight.numel() for m in a if isinstance(m, nn.Linear)) == 50_200
    cnn_a, cnn_b = X.build_cnn(3), X.build_cnn(3)
    assert torch.equal(cnn_a[0].weight, cnn_b[0].weight)
    assert torch.equal(torch.random.get_rng_state(), state)
    with pytest.raises(ValueError, match="sizes"):
        X.build_lenet(0, sizes=(64,))


def test_sparsity_sweep_prunes_exactly_and_fine_tuning_recovers(lenet):
    model, splits = lenet
    before = copy.deepcopy(model.state_dict())
    rows = X.sparsity_sweep(model, splits, (0.5, 0.95), finetune_epochs=2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    dense = X.accuracy_percent(model, splits)
    for row in rows:
        assert row["weights"] == 50_200
        # global pruning removes exactly round(s * n) weights; fine-tuning keeps them at zero
        assert row["params_nonzero"] == 50_200 - round(row["sparsity"] * 50_200)
        assert row["compression"] == pytest.approx(1 / (1 - row["sparsity"]), rel=1e-3)
        assert row["dense_accuracy"] == pytest.approx(dense)
    extreme = rows[-1]
    assert extreme["accuracy_pruned"] < dense - 10  # one-shot 95% sparsity hurts...
    assert extreme["accuracy_finetuned"] > extreme["accuracy_pruned"] + 10  # ...retraining helps


def test_iterative_sweep_continues_from_the_previous_network(lenet):
    model, splits = lenet
    rows = X.sparsity_sweep(model, splits, (0.5, 0.9), finetune_epochs=1, iterative=True)
    assert [r["params_nonzero"] for r in rows] == [25_100, 5_020]
    with pytest.raises(ValueError, match="increase"):
        X.sparsity_sweep(model, splits, (0.9, 0.5), iterative=True)
    with pytest.raises(ValueError, match="sparsities"):
        X.sparsity_sweep(model, splits, (0.5, 1.0))


def test_per_layer_sweep_prunes_every_layer_to_the_sparsity(lenet, monkeypatch):
    model, splits = lenet
    seen = []
    real = P.apply_masks_

    def spy(net, masks):
        seen.append({n: float(1 - m.mean()) for n, m in masks.items()})
        return real(net, masks)

    monkeypatch.setattr(P, "apply_masks_", spy)
    X.sparsity_sweep(model, splits, (0.8,), finetune_epochs=1, global_=False)
    assert seen == [{"1": pytest.approx(0.8), "3": pytest.approx(0.8), "5": pytest.approx(0.8)}]


def test_max_sparsity_within_picks_the_highest_passing_row():
    rows = [
        {"sparsity": 0.5, "accuracy_finetuned": 96.0, "dense_accuracy": 96.0},
        {"sparsity": 0.9, "accuracy_finetuned": 95.1, "dense_accuracy": 96.0},
        {"sparsity": 0.95, "accuracy_finetuned": 94.9, "dense_accuracy": 96.0},
        {"sparsity": 0.8, "accuracy_finetuned": 94.0, "dense_accuracy": 96.0},
    ]
    assert X.max_sparsity_within(rows) == 0.9
    assert X.max_sparsity_within(rows, points=1.2) == 0.95
    assert X.max_sparsity_within(rows, points=0.5) == 0.5
    assert X.max_sparsity_within(rows[3:], points=0.5) is None


def test_break_even_sparsity_ignores_a_lucky_win_below_a_loss():
    def rows(pairs):
        return [{"sparsity": s, "dense_ms": 1.0, "csr_ms": c} for s, c in pairs]

    assert X.break_even_sparsity(rows([(0.99, 0.2), (0.5, 0.9), (0.8, 1.2), (0.9, 0.7)])) == 0.9
    assert X.break_even_sparsity(rows([(0.5, 0.9), (0.9, 0.5)])) == 0.5
    assert X.break_even_sparsity(rows([(0.5, 2.0), (0.99, 1.1)])) is None
    assert X.break_even_sparsity(rows([(0.9, 0.5), (0.99, 1.0)])) is None  # a tie is no win


def test_csr_speed_reports_the_bytes_of_the_stored_arrays():
    rows = X.csr_speed((64, 32), 4, (0.0, 0.75), min_run_time=0.01)
    for row in rows:
        nnz = 64 * 32 - round(row["sparsity"] * 64 * 32)
        assert row["nnz"] == nnz
        # 32-bit values and column indices, 65 row pointers of 32 bits
        assert row["csr_bytes"] == 8 * nnz + 4 * 65
        assert row["dense_bytes"] == 4 * 64 * 32
        assert row["speedup"] == pytest.approx(row["dense_ms"] / row["csr_ms"])
        assert row["kit_csr_ms"] > 0
    assert X.csr_speed((8, 8), 2, (0.5,), min_run_time=0.01, kit=False)[0]["kit_csr_ms"] is None
    with pytest.raises(ValueError, match="sparsities"):
        X.csr_speed((8, 8), 2, (-0.1,))
    with pytest.raises(ValueError, match="shape"):
        X.csr_speed((0, 8), 2)


def _cnn_macs(c1, c2, c3):
    """Closed form for PRUNE_CNN on 8x8: three 3x3 convs (the last after a 2x2 pool), the
    Linear after global pooling."""
    return 64 * 9 * 1 * c1 + 64 * 9 * c1 * c2 + 16 * 9 * c2 * c3 + c3 * 10


def test_channel_pruning_cuts_macs_by_the_closed_form(cnn):
    model, splits = cnn
    rows = X.channel_pruning(model, splits, (0.25, 0.5), finetune_epochs=1, min_run_time=0.01)
    assert [r["sparsity"] for r in rows] == [0.0, 0.25, 0.5]
    assert [r["macs"] for r in rows] == [
        _cnn_macs(32, 64, 64),
        _cnn_macs(24, 48, 48),
        _cnn_macs(16, 32, 32),
    ]
    assert rows[0]["params"] == sum(p.numel() for p in model.parameters())
    assert rows[0]["params"] > rows[1]["params"] > rows[2]["params"]
    assert rows[2]["macs_ratio"] == pytest.approx(rows[2]["macs"] / rows[0]["macs"])
    assert rows[0]["latency_ratio"] == 1.0
    assert all(r["latency_ms"] > 0 for r in rows)
    assert rows[0]["accuracy"] == pytest.approx(X.accuracy_percent(model, splits))


def test_deep_compression_counts_the_bytes_of_the_encoded_streams(monkeypatch):
    captured = {}
    real = S.compression_stages

    def spy(model, **kwargs):
        captured["model"], captured["kwargs"] = copy.deepcopy(model), kwargs
        return real(model, **kwargs)

    monkeypatch.setattr(S, "compression_stages", spy)
    rows = X.deep_compression(0, epochs=3, finetune_epochs=1, codebook_epochs=1)
    assert [r["stage"] for r in rows] == ["dense", "pruned", "quantized", "huffman"]
    sizes = [r["bytes"] for r in rows]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4
    assert captured["kwargs"] == {"index_bits": 5, "weight_bits": 6}
    model = captured["model"]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # Han et al.'s per-layer rates, 64 distinct values at most (63 shared values and the zero)
    for layer, rate in zip(linears, X.HAN_LENET_RATES, strict=True):
        zeros = int((layer.weight == 0).sum())
        assert zeros == pytest.approx(rate * layer.weight.numel(), abs=1)
        assert torch.unique(layer.weight).numel() <= 64
    # recount the final bytes from layers encoded here, independently of the experiment
    biases = 4 * sum(m.bias.numel() for m in linears)
    encoded = [S.encode_layer(m.weight, index_bits=5, weight_bits=6) for m in linears]
    huffman = sum(
        len(e.index_data) + len(e.value_data) + 4 * e.codebook.numel() + 2**5 + 2**6
        for e in encoded
    )
    assert rows[-1]["bytes"] == huffman + biases
    assert rows[-1]["bias_bytes"] == biases == 4 * 410
    assert rows[0]["bytes"] == 4 * (50_200 + 410)
    assert rows[-1]["ratio"] == pytest.approx(rows[0]["bytes"] / rows[-1]["bytes"])
    assert rows[-1]["exact"] is True
    assert rows[-1]["accuracy"] == pytest.approx(rows[2]["accuracy"])  # Huffman is lossless


def test_lowrank_sweep_shrinks_with_the_energy_kept(cnn):
    model, splits = cnn
    rows = X.lowrank_sweep(model, splits, (0.95, 0.6), finetune_epochs=1, min_run_time=0.01)
    assert [r["energy"] for r in rows] == [1.0, 0.95, 0.6]
    assert rows[0]["ranks"] == {} and rows[0]["params"] == sum(
        p.numel() for p in model.parameters()
    )
    assert rows[0]["params"] >= rows[1]["params"] > rows[2]["params"]
    assert rows[0]["macs"] >= rows[1]["macs"] > rows[2]["macs"]
    assert rows[2]["ranks"]  # some layers were factorised
    for name, rank in rows[2]["ranks"].items():
        assert 1 <= rank < max(dict(model.named_modules())[name].weight.shape[:2])


def test_lowrank_layer_speed_reports_the_factorised_layers_costs(cnn):
    model, splits = cnn
    result = X.lowrank_layer_speed(
        model,
        splits,
        ranks=(8, 4),
        points=100.0,
        finetune_epochs=1,
        batch=8,
        min_run_time=0.01,
        rounds=1,
    )
    assert result["layer"] == 3  # the conv with the most MACs: 32 -> 64 channels on 8x8
    assert result["rank"] == 4 and result["passed"]  # within 100 points, both ranks pass
    # channel scheme: a 3x3 conv 32 -> r, then 1x1 r -> 64
    assert result["macs_ratio"] == pytest.approx(64 * 32 * 9 / (4 * (32 * 9 + 64)))
    assert result["speedup"] == pytest.approx(result["dense_ms"] / result["factored_ms"])
    assert set(result["tried"]) == {8, 4}
    spatial = X.lowrank_layer_speed(
        model,
        splits,
        scheme="spatial",
        ranks=(6,),
        finetune_epochs=1,
        batch=8,
        min_run_time=0.01,
        rounds=1,
    )
    # spatial scheme: a 3x1 conv 32 -> r, then 1x3 r -> 64
    assert spatial["macs_ratio"] == pytest.approx(64 * 32 * 9 / (6 * (32 * 3 + 64 * 3)))
    with pytest.raises(ValueError, match="layer"):
        X.lowrank_layer_speed(model, splits, layer=1)


def test_budget_comparison_keeps_every_method_within_the_budget(lenet):
    model, splits = lenet
    result = X.budget_comparison(0.25, model=model, splits=splits, finetune_epochs=1)
    assert result["dense_bytes"] == 4 * 50_200
    assert result["budget_bytes"] == pytest.approx(0.25 * 4 * 50_200)
    for method in ("pruning", "sharing", "lowrank"):
        assert result[f"{method}_bytes"] <= result["budget_bytes"]
    # 4-bit codes plus 15 fp32 centroids per layer
    assert result["sharing_bytes"] == 50_200 // 2 + 3 * 15 * 4
    # the pruning budget is nearly used up: one more kept weight would not fit
    assert result["pruning_bytes"] > result["budget_bytes"] - 8 * 50
    scores = {m: result[f"{m}_accuracy"] for m in ("pruning", "sharing", "lowrank")}
    assert result["winner"] == max(scores, key=scores.get)
    ordered = sorted(scores.values(), reverse=True)
    assert result["margin"] == pytest.approx(ordered[0] - ordered[1])
    with pytest.raises(ValueError, match="budget_fraction"):
        X.budget_comparison(0.0, model=model, splits=splits)


def test_sensitivity_and_iterative_vs_one_shot(lenet):
    model, splits = lenet
    curves = X.sensitivity(model, splits, (0.0, 0.99))
    assert list(curves) == ["1", "3", "5"]
    _, val_loader, _ = splits.loaders(batch_size=256)
    from effdl.train import evaluate

    dense_val = 100 * evaluate(model, val_loader)["accuracy"]
    assert all(c[0] == pytest.approx(dense_val) for c in curves.values())
    result = X.iterative_vs_one_shot(model, splits, 0.9, steps=2, epochs_per_step=1)
    assert result["sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert [r["step"] for r in result["steps"]] == [1, 2]
    assert result["dense_accuracy"] == pytest.approx(X.accuracy_percent(model, splits))


def test_pruning_compression_reads_the_ratio_off_the_mean_curve():
    result = X.pruning_compression((0,), (2, 1000), epochs=3, finetune_epochs=1)
    rows = result["rows"]
    # weights / non-zero weights, with round(s * n) of the 50,200 weights pruned
    assert [r["compression"] for r in rows] == [2.0, 50_200 / (50_200 - round(0.999 * 50_200))]
    # 99.9% of the weights gone leaves about 50 of them: far more than 1 point lost
    assert rows[1]["accuracy_finetuned"] < rows[0]["dense_accuracy"] - 1
    if rows[0]["accuracy_finetuned"] >= rows[0]["dense_accuracy"] - 1:
        assert result["compression"] == pytest.approx(2.0)
        assert result["sparsity"] == pytest.approx(0.5)
    else:
        assert result["compression"] == 0.0
    assert result["seeds"] == 1 and result["dense_accuracy_long"] > 0
