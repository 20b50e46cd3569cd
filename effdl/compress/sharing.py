"""Weight sharing and Huffman coding, the second and third stages of Deep Compression (Han, Mao,
Dally 2016): k-means puts each layer's weights in a few clusters so that a weight is stored as a
short code into a codebook, and Huffman coding then spends fewer bits on frequent codes. Start
with `kmeans_codebook`, then `share_weights_` (codebook fine-tuning), `huffman_code`, and last
`encode_layer` / `compression_stages`, which count the bytes of real encoded streams.

Convention: index -1 and code 0 mean "pruned zero". `kmeans_codebook(skip_zeros=True)` leaves
zeros out of the clusters and gives them index -1; in a stored `weight_bits`-bit code, code 0 is
the zero (the filler entries of the relative index need it) and codes 1..2^b - 1 are shared
values, so `share_weights_(bits=b)` makes 2^b - 1 clusters per layer.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from effdl._checks import check_in, check_module, check_positive_int, check_tensor
from effdl.compress.prune import PRUNABLE, MaskedWeight, bake_

#: Bytes of one fp32 number: the dense weights, the codebooks and every uncompressed parameter.
FP32_BYTES = 4


# ---------------------------------------------------------------------------------------------
# k-means weight sharing
# ---------------------------------------------------------------------------------------------


def kmeans_codebook(
    weight: Tensor,
    n_clusters: int,
    *,
    init: str = "linear",
    n_iter: int = 100,
    skip_zeros: bool = True,
) -> tuple[Tensor, Tensor]:
    """Return (codebook, indices): `n_clusters` centroids (weight's dtype, ascending at the
    start) and, for each weight, the index of its centroid (int64, weight's shape).

    Lloyd's algorithm in 1-D: assign each weight to its nearest centroid, move each centroid to
    the mean of its weights, stop when no assignment changes or after `n_iter` rounds. An empty
    cluster keeps its centroid. `init="linear"` spaces the first centroids evenly between the
    smallest and largest weight, which Han et al. found best because it keeps the few large
    weights represented; `"density"` spaces them evenly in the weights' CDF (quantiles). With
    `skip_zeros`, exact zeros (pruned weights) are not clustered and get index -1.

    Source: Han, Mao, Dally 2016, "Deep Compression", sections 3.1 and 3.2; Lloyd 1982.
    """
    check_tensor("weight", weight)
    check_positive_int("n_clusters", n_clusters)
    check_in("init", init, ("linear", "density"))
    check_positive_int("n_iter", n_iter)
    flat = weight.detach().reshape(-1).to(torch.float64)
    clustered = flat != 0 if skip_zeros else torch.ones_like(flat, dtype=torch.bool)
    values = flat[clustered]
    if n_clusters > values.numel():
        what = "non-zero weights" if skip_zeros else "weights"
        raise ValueError(
            f"n_clusters must be at most the number of {what} ({values.numel()}), got {n_clusters}"
        )
    if init == "linear":
        codebook = torch.linspace(float(values.min()), float(values.max()), n_clusters)
    else:
        codebook = torch.quantile(values, torch.linspace(0, 1, n_clusters, dtype=torch.float64))
    codebook = codebook.to(torch.float64)
    assignment = None
    for _ in range(n_iter):
        new_assignment = _nearest(values, codebook)
        if assignment is not None and torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        codebook = _cluster_means(values, assignment, codebook)
    assignment = _nearest(values, codebook)  # consistent with the final centroids
    indices = torch.full_like(flat, -1, dtype=torch.int64)
    indices[clustered] = assignment
    return codebook.to(weight.dtype), indices.view(weight.shape)


class SharedWeight(MaskedWeight):
    """A parametrization weight = codebook[indices] * mask whose trained tensor is the codebook.

    The gradient of the loss w.r.t. a centroid is then, through autograd's indexing, the sum of
    the gradients of all weights in its cluster: Deep Compression's centroid fine-tuning. Pruned
    weights (index -1) stay exactly zero.
    """

    def __init__(self, indices: Tensor, n_codes: int, dtype: torch.dtype) -> None:
        super().__init__((indices >= 0).to(dtype))
        self.register_buffer("indices", indices.clamp(min=0))
        self.n_codes = n_codes

    def forward(self, codebook: Tensor) -> Tensor:
        return codebook[self.indices] * self.mask

    def right_inverse(self, weight: Tensor) -> Tensor:
        # the codebook that best reproduces `weight` with these assignments: its cluster means
        members = self.mask.reshape(-1) != 0
        codes = self.indices.reshape(-1)[members]
        sums = torch.zeros(self.n_codes, dtype=weight.dtype).index_add_(
            0, codes, weight.detach().reshape(-1)[members]
        )
        counts = torch.bincount(codes, minlength=self.n_codes).clamp(min=1)
        return sums / counts


def share_weights_(
    model: nn.Module,
    bits: int,
    *,
    types: tuple[type[nn.Module], ...] = PRUNABLE,
    n_iter: int = 100,
) -> nn.Module:
    """Return `model`, changed in place so that each `types` layer's non-zero weights take one
    of 2^bits - 1 shared values (k-means, linear init; code 0 is kept for the pruned zero), and
    training updates the shared values (`SharedWeight`).

    Pruned zeros stay zero. A layer with fewer non-zero weights than clusters gets one cluster
    per weight. Earlier parametrizations (pruning masks) are baked in first (`bake_`).
    `remove_masks_` bakes the shared weights in; `codebooks_of` reads the codebooks.

    Source: Han, Mao, Dally 2016, section 3 (weight sharing and centroid fine-tuning, Fig. 3).
    """
    check_module("model", model)
    check_positive_int("bits", bits)
    if bits > 16:
        raise ValueError(f"bits must be at most 16, got {bits}")
    bake_(model)
    for module in model.modules():
        if not isinstance(module, types) or not isinstance(module.weight, Tensor):
            continue
        weight = module.weight.detach()
        n_nonzero = int((weight != 0).sum())
        if n_nonzero == 0:
            continue
        n_codes = min(2**bits - 1, n_nonzero)
        _, indices = kmeans_codebook(weight, n_codes, n_iter=n_iter)
        parametrize.register_parametrization(
            module, "weight", SharedWeight(indices, n_codes, weight.dtype)
        )
    return model


def codebooks_of(model: nn.Module) -> dict[str, Tensor]:
    """Return each shared layer's codebook (a copy), keyed by module name.

    Source: Han, Mao, Dally 2016, section 3.
    """
    check_module("model", model)
    out = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight") and any(
            isinstance(p, SharedWeight) for p in module.parametrizations.weight
        ):
            out[name] = module.parametrizations.weight.original.detach().clone()
    return out


# ---------------------------------------------------------------------------------------------
# Huffman coding
# ---------------------------------------------------------------------------------------------


def huffman_code(counts: Mapping[Hashable, int]) -> dict[Hashable, str]:
    """Return a prefix-free code (symbol -> bit string) of least mean length for `counts`.

    Huffman's construction merges the two least frequent groups until one is left; a symbol's
    code length is the number of merges above it. The codes are then assigned canonically
    (shortest first, ties in the order of `counts`), so the lengths alone rebuild the code: a
    stored table needs one length per symbol. Ties between equal counts are broken by that
    order too, so the code is deterministic. Symbols with count 0 get no code; a single symbol
    gets "0".

    Source: Huffman 1952, "A Method for the Construction of Minimum-Redundancy Codes";
    canonical codes as in DEFLATE (RFC 1951, section 3.2.2).
    """
    if not isinstance(counts, Mapping):
        raise TypeError(f"counts must be a mapping symbol -> count, got {type(counts).__name__}")
    for symbol, c in counts.items():
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ValueError(f"counts must be ints >= 0, got {c!r} for symbol {symbol!r}")
    symbols = [s for s, c in counts.items() if c > 0]
    if not symbols:
        raise ValueError("counts must give at least one symbol a count > 0")
    if len(symbols) == 1:
        return {symbols[0]: "0"}
    lengths = dict.fromkeys(symbols, 0)
    heap = [(counts[s], order, [s]) for order, s in enumerate(symbols)]
    heapq.heapify(heap)
    order = len(heap)
    while len(heap) > 1:
        count_a, _, group_a = heapq.heappop(heap)
        count_b, _, group_b = heapq.heappop(heap)
        for s in group_a + group_b:
            lengths[s] += 1  # one more branch above every symbol of the merged group
        heapq.heappush(heap, (count_a + count_b, order, group_a + group_b))
        order += 1
    position = {s: i for i, s in enumerate(symbols)}
    code, value, previous = {}, 0, 0
    for s in sorted(symbols, key=lambda s: (lengths[s], position[s])):
        value <<= lengths[s] - previous
        code[s] = format(value, f"0{lengths[s]}b")
        value, previous = value + 1, lengths[s]
    return code


def huffman_encode(symbols: Iterable[Hashable], code: Mapping[Hashable, str]) -> tuple[bytes, int]:
    """Return (data, n_bits): the codes of `symbols` concatenated, packed into bytes (first bit
    in the high bit of the first byte, the last byte padded with zeros).

    Source: Huffman 1952.
    """
    try:
        bits = "".join(code[s] for s in symbols)
    except KeyError as err:
        raise ValueError(f"symbols holds {err.args[0]!r}, which has no code") from None
    return _pack(bits), len(bits)


def huffman_decode(data: bytes, n_bits: int, code: Mapping[Hashable, str]) -> list:
    """Return the symbols that the first `n_bits` bits of `data` encode with `code`.

    Source: Huffman 1952 (a prefix-free code is read bit by bit until a code word matches).
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 0 <= n_bits <= 8 * len(data):
        raise ValueError(f"n_bits must be an int in [0, {8 * len(data)}], got {n_bits!r}")
    decode = {word: symbol for symbol, word in code.items()}
    out, word = [], ""
    for bit in _unpack(data, n_bits):
        word += bit
        if word in decode:
            out.append(decode[word])
            word = ""
    if word:
        raise ValueError(f"data ends inside a code word ({word!r} is no code's prefix end)")
    return out


def entropy_bits(counts: Mapping[Hashable, int]) -> float:
    """Return the Shannon entropy (bits per symbol) of the distribution `counts` describes: the
    lower bound on any prefix code's mean length, which Huffman's stays within 1 bit of.

    Source: Shannon 1948, "A Mathematical Theory of Communication", section 9.
    """
    total = sum(counts.values())
    if total <= 0:
        raise ValueError("counts must give at least one symbol a count > 0")
    return -sum(c / total * math.log2(c / total) for c in counts.values() if c > 0)


# ---------------------------------------------------------------------------------------------
# Deep Compression storage
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedLayer:
    """One weight tensor as Deep Compression stores it, every stream as real bytes.

    Entries run over the flattened weight (row-major); each is (gap, code): `gap` zeros are
    skipped, then the value `codebook[code - 1]` (code 0: a zero) is stored. A gap larger than
    2^index_bits - 1 is bridged by filler entries (gap 2^index_bits - 1, code 0). The streams:
    fixed-width gaps (`index_packed`) and codes (`value_packed`), and the same two Huffman coded
    (`index_data`, `value_data`, with their codes, which are canonical: one byte per symbol of
    the alphabet stores them).
    """

    shape: tuple[int, ...]
    index_bits: int
    weight_bits: int
    codebook: Tensor
    n_entries: int
    index_packed: bytes
    value_packed: bytes
    index_code: dict[int, str]
    index_data: bytes
    index_n_bits: int
    value_code: dict[int, str]
    value_data: bytes
    value_n_bits: int

    @property
    def dense_bytes(self) -> int:
        """Return the fp32 bytes of the dense weight."""
        return math.prod(self.shape) * FP32_BYTES

    @property
    def pruned_bytes(self) -> int:
        """Return the bytes of the sparse form: fp32 values plus fixed-width relative indices."""
        return self.n_entries * FP32_BYTES + len(self.index_packed)

    @property
    def quantized_bytes(self) -> int:
        """Return the bytes with shared weights: fixed-width indices and codes plus the fp32
        codebook."""
        return len(self.index_packed) + len(self.value_packed) + self.codebook_bytes

    @property
    def huffman_bytes(self) -> int:
        """Return the bytes with both streams Huffman coded, plus the codebook and the two code
        tables (one byte per symbol's code length)."""
        tables = 2**self.index_bits + 2**self.weight_bits
        return len(self.index_data) + len(self.value_data) + self.codebook_bytes + tables

    @property
    def codebook_bytes(self) -> int:
        """Return the bytes of the fp32 codebook."""
        return self.codebook.numel() * FP32_BYTES


def encode_layer(weight: Tensor, *, index_bits: int, weight_bits: int) -> EncodedLayer:
    """Return the Deep Compression encoding of a pruned, shared `weight` (see `EncodedLayer`).

    The codebook is the weight's distinct non-zero values (at most 2^weight_bits - 1: share the
    weights first, e.g. with `share_weights_(bits=weight_bits)`), stored as fp32. Nothing is
    approximated, so `decode_layer` rebuilds a float32 weight exactly.

    Source: Han, Mao, Dally 2016, section 2 (relative indices and filler zeros, Fig. 2),
    section 3 (codebook) and section 4 (Huffman coding).
    """
    check_tensor("weight", weight)
    _check_bits("index_bits", index_bits)
    _check_bits("weight_bits", weight_bits)
    flat = weight.detach().reshape(-1).to(torch.float32)
    codebook = torch.unique(flat[flat != 0])  # sorted ascending
    if codebook.numel() > 2**weight_bits - 1:
        raise ValueError(
            f"weight has {codebook.numel()} distinct non-zero values; weight_bits={weight_bits} "
            f"allows at most {2**weight_bits - 1} (code 0 is the zero): share the weights first"
        )
    positions = torch.nonzero(flat).flatten()
    skips = torch.diff(positions, prepend=torch.tensor([-1])) - 1
    codes = torch.searchsorted(codebook, flat[positions]) + 1
    max_gap = 2**index_bits - 1
    gaps, values = [], []
    for skip, code in zip(skips.tolist(), codes.tolist(), strict=True):
        while skip > max_gap:  # a filler zero bridges 2^index_bits positions
            gaps.append(max_gap)
            values.append(0)
            skip -= max_gap + 1
        gaps.append(skip)
        values.append(code)
    index_code, index_data, index_n_bits = _huffman_stream(gaps, index_bits)
    value_code, value_data, value_n_bits = _huffman_stream(values, weight_bits)
    return EncodedLayer(
        shape=tuple(weight.shape),
        index_bits=index_bits,
        weight_bits=weight_bits,
        codebook=codebook,
        n_entries=len(gaps),
        index_packed=_pack("".join(format(g, f"0{index_bits}b") for g in gaps)),
        value_packed=_pack("".join(format(v, f"0{weight_bits}b") for v in values)),
        index_code=index_code,
        index_data=index_data,
        index_n_bits=index_n_bits,
        value_code=value_code,
        value_data=value_data,
        value_n_bits=value_n_bits,
    )


def decode_layer(layer: EncodedLayer, *, stream: str = "huffman") -> Tensor:
    """Return the float32 weight an `EncodedLayer` stores, rebuilt from its Huffman streams
    (`stream="huffman"`) or its fixed-width ones (`"fixed"`).

    Source: Han, Mao, Dally 2016, section 2 (decoding relative indices).
    """
    if not isinstance(layer, EncodedLayer):
        raise TypeError(f"layer must be an EncodedLayer, got {type(layer).__name__}")
    check_in("stream", stream, ("huffman", "fixed"))
    if stream == "huffman":
        gaps = huffman_decode(layer.index_data, layer.index_n_bits, layer.index_code)
        codes = huffman_decode(layer.value_data, layer.value_n_bits, layer.value_code)
    else:
        gaps = _unpack_ints(layer.index_packed, layer.index_bits, layer.n_entries)
        codes = _unpack_ints(layer.value_packed, layer.weight_bits, layer.n_entries)
    flat = torch.zeros(math.prod(layer.shape), dtype=torch.float32)
    if gaps:
        positions = torch.cumsum(torch.tensor(gaps) + 1, 0) - 1  # each entry covers gap + 1
        table = torch.cat([torch.zeros(1), layer.codebook])  # code 0 is the zero
        flat[positions] = table[torch.tensor(codes)]
    return flat.view(layer.shape)


def compression_stages(
    model: nn.Module,
    *,
    index_bits: int = 5,
    weight_bits: int = 6,
    types: tuple[type[nn.Module], ...] = PRUNABLE,
) -> list[dict[str, float | str | int]]:
    """Return one row per Deep Compression stage, {stage, bytes, ratio}: "dense" (fp32),
    "pruned" (fp32 values + relative indices), "quantized" (+ shared-weight codes and codebook)
    and "huffman" (both streams Huffman coded), with ratio = dense bytes / bytes.

    `model` is the pruned and shared model (`share_weights_(bits <= weight_bits)`); each
    `types` layer's weight goes through `encode_layer`, and every other parameter (biases,
    norms) counts as fp32 in every stage. The defaults are Han et al.'s LeNet-300-100 widths
    (6-bit weights, 5-bit indices for fully connected layers).

    Source: Han, Mao, Dally 2016, Tables 1 and 2.
    """
    check_module("model", model)
    layers = [
        encode_layer(m.weight, index_bits=index_bits, weight_bits=weight_bits)
        for m in model.modules()
        if isinstance(m, types) and isinstance(m.weight, Tensor)
    ]
    if not layers:
        raise ValueError(f"model has no layers of types {[t.__name__ for t in types]}")
    other = _other_parameters(model, types) * FP32_BYTES
    stages = {
        "dense": sum(e.dense_bytes for e in layers),
        "pruned": sum(e.pruned_bytes for e in layers),
        "quantized": sum(e.quantized_bytes for e in layers),
        "huffman": sum(e.huffman_bytes for e in layers),
    }
    dense = stages["dense"] + other
    return [
        {"stage": stage, "bytes": size + other, "ratio": dense / (size + other)}
        for stage, size in stages.items()
    ]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _nearest(values: Tensor, codebook: Tensor) -> Tensor:
    # In 1-D the nearest centroid is found by binary search among the midpoints of the sorted
    # centroids; a value exactly on a midpoint goes to the lower centroid, like argmin.
    order = torch.argsort(codebook, stable=True)
    ordered = codebook[order]
    midpoints = (ordered[1:] + ordered[:-1]) / 2
    return order[torch.bucketize(values, midpoints)]


def _cluster_means(values: Tensor, assignment: Tensor, codebook: Tensor) -> Tensor:
    k = codebook.numel()
    sums = torch.zeros(k, dtype=values.dtype).index_add_(0, assignment, values)
    counts = torch.bincount(assignment, minlength=k)
    return torch.where(counts > 0, sums / counts.clamp(min=1), codebook)


def _huffman_stream(symbols: list[int], bits: int) -> tuple[dict[int, str], bytes, int]:
    if not symbols:
        return {}, b"", 0
    seen = Counter(symbols)
    code = huffman_code({s: seen[s] for s in range(2**bits)})
    data, n_bits = huffman_encode(symbols, code)
    return code, data, n_bits


def _pack(bits: str) -> bytes:
    if not bits:
        return b""
    padded = bits + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big")


def _unpack(data: bytes, n_bits: int) -> str:
    return format(int.from_bytes(data, "big"), f"0{8 * len(data)}b")[:n_bits] if data else ""


def _unpack_ints(data: bytes, bits: int, count: int) -> list[int]:
    stream = _unpack(data, bits * count)
    return [int(stream[i : i + bits], 2) for i in range(0, bits * count, bits)]


def _other_parameters(model: nn.Module, types: tuple[type[nn.Module], ...]) -> int:
    total = 0
    for module in model.modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue  # the weight it stands for is counted (encoded) with its layer
        for name, p in module.named_parameters(recurse=False):
            if not (isinstance(module, types) and name == "weight"):
                total += p.numel()
    return total


def _check_bits(name: str, value: object) -> None:
    check_positive_int(name, value)
    if value > 16:
        raise ValueError(f"{name} must be in 1..16, got {value}")
