import copy
import math
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from torch import nn

from effdl.compress.prune import apply_masks_, global_magnitude_masks, masks_of, remove_masks_
from effdl.compress.sharing import (
    EncodedLayer,
    codebooks_of,
    compression_stages,
    decode_layer,
    encode_layer,
    entropy_bits,
    huffman_code,
    huffman_decode,
    huffman_encode,
    kmeans_codebook,
    share_weights_,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pruned_weight(shape, sparsity: float, seed: int) -> torch.Tensor:
    g = gen(seed)
    w = torch.randn(shape, generator=g)
    w[torch.rand(shape, generator=g) < sparsity] = 0
    return w


# --- k-means ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "n_clusters"), [("normal", 16), ("normal", 4), ("uniform", 32), ("pruned", 8)]
)
def test_kmeans_equals_sklearn_from_the_same_linear_init(kind, n_clusters):
    g = gen(1)
    if kind == "normal":
        w = torch.randn(60, 40, generator=g)
    elif kind == "uniform":
        w = torch.rand(3000, generator=g) * 2 - 1
    else:
        w = pruned_weight((50, 30), 0.7, seed=2)
    codebook, indices = kmeans_codebook(w, n_clusters, n_iter=300)
    kept = w != 0
    x = w[kept].double().numpy().reshape(-1, 1)
    init = np.linspace(x.min(), x.max(), n_clusters).reshape(-1, 1)
    ref = KMeans(n_clusters, init=init, n_init=1, algorithm="lloyd", tol=0, max_iter=300).fit(x)
    assert len(set(ref.labels_)) == n_clusters  # no empty cluster: both rules agree then
    np.testing.assert_allclose(codebook.double().numpy(), ref.cluster_centers_.ravel(), atol=1e-5)
    assert np.array_equal(indices[kept].numpy(), ref.labels_)
    assert torch.all(indices[~kept] == -1)
    assert codebook.dtype == w.dtype and indices.shape == w.shape


def test_kmeans_reproduces_few_distinct_values_and_clusters_zeros_when_asked():
    w = torch.tensor([0.0, 0.0, 1.0, 1.0, 3.0, -2.0, 3.0, 0.0])
    codebook, indices = kmeans_codebook(w, 3)
    assert torch.equal(codebook, torch.tensor([-2.0, 1.0, 3.0]))
    assert torch.equal(codebook[indices.clamp(min=0)] * (indices >= 0), w)
    codebook, indices = kmeans_codebook(w, 4, skip_zeros=False)
    assert torch.equal(codebook[indices], w)
    codebook, _ = kmeans_codebook(w, 2, init="density")
    assert codebook.numel() == 2


def test_kmeans_lowers_the_error_of_its_linear_start():
    w = torch.randn(2000, generator=gen(3))
    codebook, indices = kmeans_codebook(w, 8)
    start = torch.linspace(float(w.min()), float(w.max()), 8)
    start_error = ((w[:, None] - start).abs().min(1).values ** 2).sum()
    assert ((w - codebook[indices]) ** 2).sum() < start_error


# --- shared weights that train -------------------------------------------------------------------


def test_share_weights_keeps_zeros_and_sums_cluster_gradients():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    apply_masks_(model, global_magnitude_masks(model, 0.5))
    zeros = {k: m == 0 for k, m in masks_of(model).items()}
    share_weights_(model, 3)
    books = codebooks_of(model)
    assert set(books) == {"0", "2"} and all(b.numel() == 7 for b in books.values())
    for name, z in zeros.items():
        w = model.get_submodule(name).weight
        assert torch.all(w[z] == 0)
        assert set(w[~z].tolist()) <= set(books[name].tolist())
    # the codebook's gradient is the per-cluster sum of the weights' gradients
    x = torch.randn(16, 20, generator=gen(4))
    layer = model[0]
    plain = layer.weight.detach().clone().requires_grad_(True)
    nn.functional.linear(x, plain, layer.bias).pow(2).sum().backward()
    model[0](x).pow(2).sum().backward()
    shared = layer.parametrizations.weight[0]
    expected = torch.zeros(7).index_add_(
        0, shared.indices[~zeros["0"]], plain.grad[~zeros["0"]].reshape(-1)
    )
    torch.testing.assert_close(layer.parametrizations.weight.original.grad, expected)
    # after an optimizer step the weights are still shared and the zeros still zero
    torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).step()
    assert torch.all(layer.weight[zeros["0"]] == 0)
    assert len(torch.unique(layer.weight[~zeros["0"]])) <= 7
    frozen = model(x)
    twin = share_weights_(copy.deepcopy(model), 2)  # re-sharing a copy leaves the model alone
    assert all(b.numel() == 3 for b in codebooks_of(twin).values())
    torch.testing.assert_close(model(x), frozen)
    remove_masks_(model)
    assert codebooks_of(model) == {} and type(model[0].weight) is nn.Parameter
    torch.testing.assert_close(model(x), frozen)


# --- Huffman -------------------------------------------------------------------------------------


def test_huffman_textbook_example():
    # Cormen et al., Introduction to Algorithms, section 16.3: 224 bits for 100 characters
    counts = {"a": 45, "b": 13, "c": 12, "d": 16, "e": 9, "f": 5}
    code = huffman_code(counts)
    assert {s: len(c) for s, c in code.items()} == {"a": 1, "b": 3, "c": 3, "d": 3, "e": 4, "f": 4}
    assert sum(counts[s] * len(c) for s, c in code.items()) == 224
    assert code == huffman_code(dict(counts))  # deterministic


def is_prefix_free(code) -> bool:
    words = sorted(code.values())
    return all(not b.startswith(a) for a, b in zip(words, words[1:], strict=False))


@pytest.mark.parametrize("seed", range(4))
def test_huffman_round_trip_prefix_free_and_within_entropy_bounds(seed):
    rng = np.random.default_rng(seed)
    symbols = rng.geometric(0.3, size=3000).tolist()  # skewed, as gaps and codes are
    counts = Counter(symbols)
    code = huffman_code(counts)
    assert is_prefix_free(code)
    assert sum(2.0 ** -len(c) for c in code.values()) == pytest.approx(1.0)  # Kraft, full tree
    data, n_bits = huffman_encode(symbols, code)
    assert len(data) == math.ceil(n_bits / 8)
    assert huffman_decode(data, n_bits, code) == symbols
    mean_length = n_bits / len(symbols)
    h = entropy_bits(counts)
    assert h <= mean_length < h + 1


def test_huffman_edge_cases():
    assert huffman_code({"x": 5, "y": 0}) == {"x": "0"}
    data, n_bits = huffman_encode(["x"] * 9, {"x": "0"})
    assert (data, n_bits) == (b"\x00\x00", 9)
    assert huffman_decode(data, n_bits, {"x": "0"}) == ["x"] * 9
    assert huffman_encode([], {"x": "0"}) == (b"", 0)
    assert huffman_encode([1, 0, 1], {0: "0", 1: "1"}) == (bytes([0b10100000]), 3)


# --- Deep Compression storage -------------------------------------------------------------------


def shared_weight(shape, sparsity, bits, seed) -> torch.Tensor:
    w = pruned_weight(shape, sparsity, seed)
    codebook, indices = kmeans_codebook(w, 2**bits - 1)
    return codebook[indices.clamp(min=0)] * (indices >= 0)


@pytest.mark.parametrize(("sparsity", "index_bits"), [(0.0, 3), (0.9, 3), (0.97, 2), (0.9, 5)])
def test_encode_decode_round_trip_is_exact(sparsity, index_bits):
    w = shared_weight((40, 50), sparsity, bits=4, seed=5)
    w[-1] = 0  # trailing zeros
    layer = encode_layer(w, index_bits=index_bits, weight_bits=4)
    assert torch.equal(decode_layer(layer), w)
    assert torch.equal(decode_layer(layer, stream="fixed"), w)


def test_relative_index_fillers_follow_han_figure_2():
    # 3-bit gaps: a gap of 8 or more zeros needs a filler entry (Han et al. 2016, Fig. 2)
    w = torch.zeros(30)
    w[[1, 4, 15, 29]] = torch.tensor([3.4, 0.9, 1.7, 3.4])
    layer = encode_layer(w, index_bits=3, weight_bits=2)
    # gaps 1, 2, then 10 = filler (7) + 2, then 13 = filler (7) + 5
    assert layer.n_entries == 6
    assert layer.codebook.tolist() == pytest.approx([0.9, 1.7, 3.4])
    unpacked = huffman_decode(layer.index_data, layer.index_n_bits, layer.index_code)
    assert unpacked == [1, 2, 7, 2, 7, 5]
    codes = huffman_decode(layer.value_data, layer.value_n_bits, layer.value_code)
    assert codes == [3, 1, 0, 2, 0, 3]
    assert torch.equal(decode_layer(layer), w)


def test_stage_bytes_come_from_the_encoded_streams():
    w = shared_weight((100, 64), 0.9, bits=5, seed=6)
    layer = encode_layer(w, index_bits=5, weight_bits=5)
    n = layer.n_entries
    assert n >= int((w != 0).sum())
    assert len(layer.index_packed) == math.ceil(5 * n / 8)
    assert len(layer.value_packed) == math.ceil(5 * n / 8)
    assert layer.pruned_bytes == 4 * n + len(layer.index_packed)
    assert layer.quantized_bytes == 2 * math.ceil(5 * n / 8) + 4 * layer.codebook.numel()
    assert layer.huffman_bytes == (
        len(layer.index_data) + len(layer.value_data) + 4 * layer.codebook.numel() + 64
    )
    assert len(layer.index_data) == math.ceil(layer.index_n_bits / 8)
    assert layer.huffman_bytes < layer.quantized_bytes < layer.pruned_bytes < layer.dense_bytes


def test_compression_stages_on_a_pruned_shared_mlp():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 100), nn.Linear(100, 10)
        )
    masks = {
        name: global_magnitude_masks({name: model.get_submodule(name).weight}, 0.9)[name]
        for name in ("0", "2", "3")
    }
    apply_masks_(model, masks)
    share_weights_(model, 6)
    rows = compression_stages(model, index_bits=5, weight_bits=6)
    assert [r["stage"] for r in rows] == ["dense", "pruned", "quantized", "huffman"]
    biases = 300 + 100 + 10
    layers = [
        encode_layer(model.get_submodule(k).weight, index_bits=5, weight_bits=6)
        for k in ("0", "2", "3")
    ]
    assert rows[0]["bytes"] == 4 * (64 * 300 + 300 * 100 + 100 * 10 + biases)
    assert rows[3]["bytes"] == sum(e.huffman_bytes for e in layers) + 4 * biases
    assert rows[2]["bytes"] == sum(e.quantized_bytes for e in layers) + 4 * biases
    assert rows[0]["ratio"] == 1.0
    ratios = [r["ratio"] for r in rows]
    assert ratios == sorted(ratios) and ratios[-1] > 20
    assert all(r["ratio"] == rows[0]["bytes"] / r["bytes"] for r in rows)


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"n_clusters must be at most .* \(3\), got 4"):
        kmeans_codebook(torch.tensor([0.0, 1.0, 2.0, 3.0]), 4)
    with pytest.raises(ValueError, match=r"n_clusters .* \(4\), got 5"):
        kmeans_codebook(torch.tensor([0.0, 1.0, 2.0, 3.0]), 5, skip_zeros=False)
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans_codebook(torch.ones(4), 0)
    with pytest.raises(ValueError, match="init"):
        kmeans_codebook(torch.ones(4), 1, init="random")
    with pytest.raises(TypeError, match="weight"):
        kmeans_codebook([1.0], 1)
    with pytest.raises(ValueError, match="bits"):
        share_weights_(nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="counts"):
        huffman_code({"a": -1})
    with pytest.raises(ValueError, match="counts"):
        huffman_code({})
    with pytest.raises(TypeError, match="counts"):
        huffman_code(["a", "b"])
    with pytest.raises(ValueError, match="symbols"):
        huffman_encode(["z"], {"a": "0"})
    with pytest.raises(ValueError, match="n_bits"):
        huffman_decode(b"\x00", 9, {"a": "0"})
    with pytest.raises(ValueError, match="code word"):
        huffman_decode(b"\x80", 1, {"a": "0", "b": "10", "c": "11"})
    with pytest.raises(ValueError, match="weight_bits=2"):
        encode_layer(torch.tensor([1.0, 2.0, 3.0, 4.0]), index_bits=3, weight_bits=2)
    with pytest.raises(ValueError, match="index_bits"):
        encode_layer(torch.ones(3), index_bits=0, weight_bits=2)
    with pytest.raises(TypeError, match="layer"):
        decode_layer(torch.ones(3))
    with pytest.raises(ValueError, match="stream"):
        decode_layer(encode_layer(torch.ones(3), index_bits=2, weight_bits=1), stream="csr")
    with pytest.raises(ValueError, match="weight_bits"):
        compression_stages(nn.Linear(3, 3), weight_bits=2)
    assert isinstance(encode_layer(torch.zeros(3), index_bits=2, weight_bits=1), EncodedLayer)
