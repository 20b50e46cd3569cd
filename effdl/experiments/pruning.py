"""Lesson 04's experiments: magnitude pruning of a LeNet-300-100-shaped MLP on 8x8 digits with
fine-tuning, torch's CSR kernel against dense as sparsity grows, channel pruning of a small CNN
(latency against MACs), the Deep Compression pipeline (prune, share, Huffman) with bytes from
real encoded bits, low-rank factorisation against rank, and the three methods at one byte
budget. Called by course/04_pruning_sharing_low_rank.ipynb and by the ledger claims `pruning`,
`deep-compression` and `lowrank` (effdl/claims/compression.py). Start with `train_lenet`, then
`sparsity_sweep`.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from effdl._checks import check_fraction, check_positive_int, check_positive_number
from effdl.compress import lowrank as L
from effdl.compress import prune as P
from effdl.compress import sharing as S
from effdl.data import Splits, load_digits
from effdl.experiments.quantization import accuracy_percent
from effdl.measure import count_macs, count_params, cpu_latency, torch_threads
from effdl.train import evaluate, fit

#: LeNet-300-100 (Han et al. 2015, Table 1) on 8x8 digits: 64 inputs instead of MNIST's 784, so
#: the first layer has 19,200 weights instead of 235,200 (12x fewer) and the network 50,200
#: weights instead of 266,200.
LENET_300_100 = (64, 300, 100, 10)
LENET_EPOCHS = 30
LENET_LR = 2e-3
#: Fine-tuning after pruning, sharing or factorising: Adam at the training rate. Han et al.
#: 2015 (section 3.2) retrain SGD at a lower rate; with Adam and a few epochs, 5e-4 and 1e-3
#: recovered less accuracy here than 2e-3 (LeNet-300-100 at 90-95% sparsity).
FINETUNE_LR = 2e-3
BATCH_SIZE = 64
#: A plain Sequential CNN for digits that `prune_channels` accepts: (out channels, pool after?)
#: per 3x3 conv, each followed by BatchNorm and ReLU, then global average pooling and a Linear.
PRUNE_CNN = ((32, False), (64, True), (64, False))
CNN_EPOCHS = 6
CNN_LR = 3e-3
#: Fine-tuning a factorised CNN: the SVD starts it near the trained network, and Adam at 2e-3
#: knocked the digits CNN's accuracy about 1 point off its trained value within two epochs,
#: even unfactorised; 5e-4 did not.
LOWRANK_LR = 5e-4
#: The lesson's sparsities: a short sweep from light to extreme pruning.
SWEEP_SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)
#: The ledger's grid, written as compression ratios 1 / (1 - s): Han et al.'s 12x lies on it.
CLAIM_RATIOS = (2, 4, 6, 8, 10, 12, 14, 16, 20, 25, 33, 50)
#: The sparsities where CSR and dense are timed.
CSR_SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99)
#: Han, Mao, Dally 2016, Table 2, LeNet-300-100: weights kept 8%, 9%, 26% (ip1, ip2, ip3).
HAN_LENET_RATES = (0.92, 0.91, 0.74)
#: Deep Compression's bits for LeNet-300-100's fully connected layers: 6-bit shared weights
#: (section 5.1 / Table 2) and 5-bit relative indices for fc layers (section 2).
DC_WEIGHT_BITS = 6
DC_INDEX_BITS = 5
#: The energies the low-rank sweep keeps (fraction of sum s_i^2 per layer).
LOWRANK_ENERGIES = (0.99, 0.95, 0.9, 0.8, 0.7)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def build_lenet(seed: int = 0, sizes: Sequence[int] = LENET_300_100) -> nn.Sequential:
    """Return an untrained LeNet-300-100-shaped MLP (Flatten, then Linear layers of `sizes`
    with ReLU between) initialised from `seed`; torch's global generator is left alone.

    Source: Han et al. 2015, "Learning both Weights and Connections for Efficient Neural
    Networks", Table 1 (LeNet-300-100), with 64 inputs for 8x8 digits.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes must hold at least two sizes, got {sizes}")
    for size in sizes:
        check_positive_int("sizes", size)
    layers: list[nn.Module] = [nn.Flatten()]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def train_lenet(
    seed: int = 0, *, epochs: int = LENET_EPOCHS, verbose: bool = False
) -> tuple[nn.Sequential, Splits]:
    """Return (the trained LeNet-300-100 MLP in eval mode, its digits splits): Adam at
    `LENET_LR`, batch 64, `epochs` epochs on `load_digits(seed=seed)`, one torch thread
    (about 2 s for 30 epochs).

    Source: Han et al. 2015, Table 1 (LeNet-300-100); the kit's own training loop.
    """
    check_positive_int("epochs", epochs)
    splits = load_digits(seed=seed)
    model = build_lenet(seed)
    _fit(model, splits, epochs, LENET_LR, seed, verbose)
    return model.eval(), splits


def build_cnn(seed: int = 0, spec: Sequence[tuple[int, bool]] = PRUNE_CNN) -> nn.Sequential:
    """Return an untrained plain Sequential CNN for 1x8x8 digits: per (channels, pool) of
    `spec` a 3x3 Conv2d (padding 1, no bias), BatchNorm2d and ReLU, then a 2x2 max pool when
    pool is set; then global average pooling, Flatten and a Linear to 10 classes.
    `prune_channels` accepts it. Initialised from `seed`; torch's global generator is left
    alone.

    Source: Li et al. 2017, "Pruning Filters for Efficient ConvNets" (a VGG-style plain CNN,
    scaled down to 8x8 digits).
    """
    layers: list[nn.Module] = []
    in_channels = 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for channels, pool in spec:
            check_positive_int("spec", channels)
            layers += [
                nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
            if pool:
                layers.append(nn.MaxPool2d(2))
            in_channels = channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, 10)]
    return nn.Sequential(*layers)


def train_cnn(
    seed: int = 0, *, epochs: int = CNN_EPOCHS, verbose: bool = False
) -> tuple[nn.Sequential, Splits]:
    """Return (the trained `PRUNE_CNN` in eval mode, its digits splits): Adam at `CNN_LR`,
    batch 64, `epochs` epochs, one torch thread.

    Source: Li et al. 2017 (the model pruned by channels); the kit's own training loop.
    """
    check_positive_int("epochs", epochs)
    splits = load_digits(seed=seed)
    model = build_cnn(seed)
    _fit(model, splits, epochs, CNN_LR, seed, verbose)
    return model.eval(), splits


# ---------------------------------------------------------------------------------------------
# Unstructured pruning
# ---------------------------------------------------------------------------------------------


def sparsity_sweep(
    model: nn.Module,
    splits: Splits,
    sparsities: Sequence[float] = SWEEP_SPARSITIES,
    *,
    finetune_epochs: int = 3,
    global_: bool = True,
    iterative: bool = False,
    lr: float = FINETUNE_LR,
    seed: int = 0,
    verbose: bool = False,
) -> list[dict[str, float]]:
    """Return one row per sparsity: a copy of `model` magnitude-pruned to it, then fine-tuned
    with the masks held for `finetune_epochs` epochs (Adam at `lr`).

    One shot (default): every sparsity starts from `model`. `iterative`: Han et al.'s
    iterative pruning, each sparsity (they must then be increasing) starts from the previous
    row's fine-tuned network, so the weights adapt between pruning steps. Pruning is global
    (one |w| threshold over the Linear/Conv weights, `global_magnitude_masks`) or per layer
    (each layer to that sparsity, `magnitude_mask`). Row keys: "sparsity",
    "accuracy_pruned" (test %, right after pruning), "accuracy_finetuned", "dense_accuracy",
    "params_nonzero" (non-zero Linear/Conv weights), "weights" (all of them), "compression"
    (weights / params_nonzero, Han et al.'s ratio; biases are not counted). `model` is not
    changed.

    Source: Han et al. 2015, section 3 (prune the small weights, retrain the rest).
    """
    sparsities = [check_fraction("sparsities", s) for s in sparsities]
    check_positive_int("finetune_epochs", finetune_epochs)
    check_positive_number("lr", lr)
    if iterative and sparsities != sorted(sparsities):
        raise ValueError(f"sparsities must increase for iterative pruning, got {sparsities}")
    dense_accuracy = accuracy_percent(model, splits)
    weights = sum(w.numel() for w in P._weights_of(model, P.PRUNABLE).values())
    rows = []
    work = copy.deepcopy(model)
    for s in tqdm(sparsities, desc="sparsity sweep", disable=not verbose, leave=False):
        if not iterative:
            work = copy.deepcopy(model)
        # on a masked network the pruned weights read as zero, so a sparser mask keeps them
        P.apply_masks_(work, _masks(work, s, global_))
        pruned = accuracy_percent(work, splits)
        _fit(work, splits, finetune_epochs, lr, seed, False)
        work.eval()
        nonzero = weights - round(P.sparsity_of(work) * weights)
        rows.append(
            {
                "sparsity": s,
                "accuracy_pruned": pruned,
                "accuracy_finetuned": accuracy_percent(work, splits),
                "dense_accuracy": dense_accuracy,
                "params_nonzero": nonzero,
                "weights": weights,
                "compression": weights / nonzero,
            }
        )
    return rows


def max_sparsity_within(
    rows: Sequence[Mapping[str, float]], points: float = 1.0, key: str = "accuracy_finetuned"
) -> float | None:
    """Return the highest sparsity among `rows` whose `key` accuracy is at most `points` below
    the row's "dense_accuracy", or None if no row is.

    Source: Han et al. 2015, Table 1 (the pruning kept "without accuracy loss").
    """
    if isinstance(points, bool) or not isinstance(points, int | float) or points < 0:
        raise ValueError(f"points must be a number >= 0, got {points!r}")
    good = [r["sparsity"] for r in rows if r[key] >= r["dense_accuracy"] - points]
    return max(good) if good else None


def pruning_compression(
    seeds: Sequence[int] = (0, 1, 2),
    ratios: Sequence[float] = CLAIM_RATIOS,
    *,
    epochs: int = LENET_EPOCHS,
    finetune_epochs: int = 3,
    iterative: bool = True,
    points: float = 1.0,
    control: bool = True,
    verbose: bool = False,
) -> dict[str, object]:
    """Return the compression 1 / (1 - s) at the highest sparsity s whose fine-tuned accuracy,
    averaged over `seeds`, stays within `points` of the dense accuracy averaged the same way.

    Each seed trains its own LeNet-300-100 (`train_lenet`) on its own digits split and runs
    `sparsity_sweep` (global pruning, `finetune_epochs` epochs after each step, iterative by
    default as Han et al. prune) at the sparsities 1 - 1/r for r in `ratios`. Keys:
    "compression" (0 if even the lightest sparsity loses more than `points`), "sparsity",
    "dense_accuracy", "accuracy_finetuned" (at that sparsity, mean over seeds),
    "accuracy_pruned" (the same sparsity before its fine-tuning), "seeds", and "rows" (the
    mean row per sparsity, with "spread": max - min fine-tuned accuracy over seeds). With
    `control`, "dense_accuracy_long": the dense network trained on for as many epochs as the
    whole sweep fine-tuned (mean over seeds), which shows how much of the pruned accuracy is
    only extra training.

    Source: Han et al. 2015, Table 1 (LeNet-300-100: 12x fewer weights, no accuracy loss) and
    section 3.3 (iterative pruning).
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    sparsities = sorted(1 - 1 / check_positive_number("ratios", r) for r in ratios)
    per_seed, long = [], []
    for seed in tqdm(seeds, desc="seeds", disable=not verbose, leave=False):
        model, splits = train_lenet(seed, epochs=epochs)
        if control:
            longer = copy.deepcopy(model)
            _fit(longer, splits, len(sparsities) * finetune_epochs, FINETUNE_LR, seed, False)
            long.append(accuracy_percent(longer.eval(), splits))
        per_seed.append(
            sparsity_sweep(
                model,
                splits,
                sparsities,
                finetune_epochs=finetune_epochs,
                iterative=iterative,
                seed=seed,
            )
        )
    rows = []
    for i, s in enumerate(sparsities):
        at = [runs[i] for runs in per_seed]
        finetuned = [r["accuracy_finetuned"] for r in at]
        rows.append(
            {
                "sparsity": s,
                "compression": statistics.mean(r["compression"] for r in at),
                "dense_accuracy": statistics.mean(r["dense_accuracy"] for r in at),
                "accuracy_pruned": statistics.mean(r["accuracy_pruned"] for r in at),
                "accuracy_finetuned": statistics.mean(finetuned),
                "spread": max(finetuned) - min(finetuned),
            }
        )
    best = max_sparsity_within(rows, points)
    chosen = next((r for r in rows if r["sparsity"] == best), None)
    return {
        "compression": chosen["compression"] if chosen else 0.0,
        "sparsity": best if best is not None else 0.0,
        "dense_accuracy": rows[0]["dense_accuracy"],
        "accuracy_finetuned": chosen["accuracy_finetuned"] if chosen else float("nan"),
        "accuracy_pruned": chosen["accuracy_pruned"] if chosen else float("nan"),
        "dense_accuracy_long": statistics.mean(long) if long else float("nan"),
        "seeds": len(seeds),
        "rows": rows,
    }


def sensitivity(
    model: nn.Module,
    splits: Splits,
    sparsities: Sequence[float] = (0.5, 0.7, 0.9, 0.95, 0.99),
) -> dict[str, list[float]]:
    """Return each Linear/Conv layer's validation accuracy (%) with only that layer
    magnitude-pruned to each of `sparsities`, without fine-tuning; `model` is not changed.

    Source: Han et al. 2015, Figure 5 (per-layer sensitivity); Li et al. 2017, section 3.2.
    """
    _, val_loader, _ = splits.loaders(batch_size=256)

    def score(m: nn.Module) -> float:
        with torch_threads(1):
            return 100.0 * evaluate(m, val_loader)["accuracy"]

    return P.sensitivity_scan(model, score, sparsities)


def iterative_vs_one_shot(
    model: nn.Module,
    splits: Splits,
    final_sparsity: float = 0.97,
    *,
    steps: int = 4,
    epochs_per_step: int = 2,
    lr: float = FINETUNE_LR,
    seed: int = 0,
    verbose: bool = False,
) -> dict[str, object]:
    """Return test accuracies (%) of pruning `model` to `final_sparsity` in one shot vs
    gradually, with the same number of fine-tuning epochs (steps x epochs_per_step) for both.

    The gradual run is `iterative_prune` on Zhu & Gupta's cubic schedule; the one-shot run
    prunes to `final_sparsity` at once and fine-tunes for all the epochs. Keys:
    "one_shot_pruned" (before fine-tuning), "one_shot", "iterative", "dense_accuracy",
    "sparsity" (the iterative model's measured sparsity) and "steps" (the iterative rows).
    `model` is not changed.

    Source: Han et al. 2015, section 3.3 and Figure 6 (iterative beats one-shot at high
    sparsity); Zhu & Gupta 2017, section 3.
    """
    final_sparsity = check_fraction("final_sparsity", final_sparsity)
    check_positive_int("steps", steps)
    check_positive_int("epochs_per_step", epochs_per_step)
    train_loader, val_loader, _ = splits.loaders(batch_size=BATCH_SIZE, seed=seed)
    one_shot = copy.deepcopy(model)
    P.apply_masks_(one_shot, P.global_magnitude_masks(one_shot, final_sparsity))
    one_shot_pruned = accuracy_percent(one_shot, splits)
    _fit(one_shot, splits, steps * epochs_per_step, lr, seed, verbose)
    gradual = copy.deepcopy(model)
    with torch_threads(1):
        gradual, rows = P.iterative_prune(
            gradual,
            train_loader,
            val_loader,
            final_sparsity,
            steps=steps,
            epochs_per_step=epochs_per_step,
            lr=lr,
            seed=seed,
            verbose=verbose,
        )
    return {
        "dense_accuracy": accuracy_percent(model, splits),
        "one_shot_pruned": one_shot_pruned,
        "one_shot": accuracy_percent(one_shot.eval(), splits),
        "iterative": accuracy_percent(gradual.eval(), splits),
        "sparsity": P.sparsity_of(gradual),
        "steps": rows,
    }


# ---------------------------------------------------------------------------------------------
# Sparse storage and speed
# ---------------------------------------------------------------------------------------------


def csr_speed(
    shape: tuple[int, int] = (512, 512),
    batch: int = 64,
    sparsities: Sequence[float] = CSR_SPARSITIES,
    *,
    threads: int = 1,
    min_run_time: float = 0.05,
    rounds: int = 1,
    kit: bool = True,
    seed: int = 0,
    verbose: bool = False,
) -> list[dict[str, float]]:
    """Return one row per sparsity: the time of W @ X for a `shape` weight W magnitude-pruned
    to that sparsity and a dense (in, `batch`) X, dense against CSR, and the bytes of each.

    W and X are standard normal (from `seed`). "dense_ms" is `W @ X` on the dense matrix;
    "csr_ms" is torch's own sparse CSR kernel (`W.to_sparse_csr() @ X`); "kit_csr_ms" is the
    kit's readable `csr_matmul` (None unless `kit`). Times are medians of
    `effdl.measure.cpu_latency` on `threads` threads over `min_run_time` seconds each; the
    products of one sparsity are timed in turn for `rounds` rounds and each keeps its median.
    "dense_bytes" is 4 bytes a weight; "csr_bytes" is `csr_bytes` with 32-bit values and
    indices; "nnz" the stored values. Also "speedup" (dense / CSR).

    Source: Han et al. 2016, "Deep Compression", section 6 (sparse layers pay off only when
    sparse enough); Saad 2003, section 3.4 (CSR).
    """
    rows_n, cols_n = (check_positive_int("shape", d) for d in shape)
    check_positive_int("batch", batch)
    check_positive_number("min_run_time", min_run_time)
    sparsities = [check_fraction("sparsities", s) for s in sparsities]
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows_n, cols_n, generator=generator)
    x = torch.randn(cols_n, batch, generator=generator)
    rows, products = [], []
    for s in sparsities:
        w = weight * P.magnitude_mask(weight, s)
        csr = P.to_csr(w)
        sparse = csr.to_torch()
        products.append(
            {
                "dense_ms": _Apply(lambda v, w=w: w @ v),
                "csr_ms": _Apply(lambda v, m=sparse: m @ v),
                **({"kit_csr_ms": _Apply(lambda v, c=csr: P.csr_matmul(c, v))} if kit else {}),
            }
        )
        rows.append(
            {
                "sparsity": s,
                "dense_bytes": 4 * w.numel(),
                "csr_bytes": P.csr_bytes(csr),
                "nnz": csr.nnz,
            }
        )
    for row, timed in tqdm(
        list(zip(rows, products, strict=True)), desc="CSR speed", disable=not verbose, leave=False
    ):
        # one warm-up call: the kit's product at low sparsity takes tens of milliseconds
        times = _latencies(list(timed.values()), x, threads, min_run_time, rounds, warmup=1)
        row.update(zip(timed, times, strict=True))
        row.setdefault("kit_csr_ms", None)
        row["speedup"] = row["dense_ms"] / row["csr_ms"]
    return rows


def break_even_sparsity(rows: Sequence[Mapping[str, float]]) -> float | None:
    """Return the lowest sparsity from which torch's CSR beats dense ("csr_ms" < "dense_ms")
    at that sparsity and at every higher one in `rows`; None if CSR never wins at the top.

    Requiring every higher sparsity to win too keeps one lucky timing at a low sparsity from
    being reported as the break-even point.

    Source: the kit's own definition (the issue's Performance section).
    """
    ordered = sorted(rows, key=lambda r: r["sparsity"])
    found = None
    for row in reversed(ordered):
        if row["csr_ms"] < row["dense_ms"]:
            found = row["sparsity"]
        else:
            break
    return found


# ---------------------------------------------------------------------------------------------
# Channel pruning
# ---------------------------------------------------------------------------------------------


def channel_pruning(
    model: nn.Sequential | None = None,
    splits: Splits | None = None,
    sparsities: Sequence[float] = (0.25, 0.5, 0.75),
    *,
    finetune_epochs: int = 2,
    batch: int = 64,
    threads: int = 1,
    min_run_time: float = 0.1,
    rounds: int = 1,
    lr: float = FINETUNE_LR,
    seed: int = 0,
    verbose: bool = False,
) -> list[dict[str, float]]:
    """Return one row for the dense CNN and one per channel sparsity: `prune_channels` removes
    that fraction of every Conv2d's filters (smallest L1 norm) and the smaller network is
    fine-tuned for `finetune_epochs` epochs (Adam at `lr`).

    `model` and `splits` default to `train_cnn(seed)`. Row keys: "sparsity", "params",
    "macs" (one 1x8x8 image), "latency_ms" (`cpu_latency` of a (batch, 1, 8, 8) input on
    `threads` threads; all networks timed in turn for `rounds` rounds, each one's median kept),
    "accuracy_pruned" (test %, before fine-tuning), "accuracy" (after), and "macs_ratio",
    "latency_ratio", "params_ratio" (pruned / dense). `model` is not changed.

    Source: Li et al. 2017, "Pruning Filters for Efficient ConvNets", section 3 (filters pruned
    by L1 norm, the next layer's kernels removed with them).
    """
    sparsities = [check_fraction("sparsities", s) for s in sparsities]
    check_positive_int("finetune_epochs", finetune_epochs)
    check_positive_int("batch", batch)
    if model is None or splits is None:
        model, splits = train_cnn(seed)
    model = model.eval()
    dense_acc = accuracy_percent(model, splits)
    networks = [model]
    rows = [{"sparsity": 0.0, "accuracy_pruned": dense_acc, "accuracy": dense_acc}]
    for s in tqdm(sparsities, desc="channel pruning", disable=not verbose, leave=False):
        if s == 0:
            continue
        small = P.prune_channels(model, s).eval()
        pruned_acc = accuracy_percent(small, splits)
        _fit(small, splits, finetune_epochs, lr, seed, False)
        networks.append(small.eval())
        rows.append(
            {
                "sparsity": s,
                "accuracy_pruned": pruned_acc,
                "accuracy": accuracy_percent(small, splits),
            }
        )
    _add_costs(rows, networks, splits, batch, threads, min_run_time, rounds, seed)
    for row in rows:
        row["macs_ratio"] = row["macs"] / rows[0]["macs"]
        row["latency_ratio"] = row["latency_ms"] / rows[0]["latency_ms"]
        row["params_ratio"] = row["params"] / rows[0]["params"]
    return rows


# ---------------------------------------------------------------------------------------------
# Deep Compression
# ---------------------------------------------------------------------------------------------


def deep_compression(
    seed: int = 0,
    *,
    rates: Sequence[float] | float = HAN_LENET_RATES,
    weight_bits: int = DC_WEIGHT_BITS,
    index_bits: int = DC_INDEX_BITS,
    epochs: int = LENET_EPOCHS,
    finetune_epochs: int = 5,
    codebook_epochs: int = 3,
    verbose: bool = False,
) -> list[dict[str, object]]:
    """Return one row per Deep Compression stage of a LeNet-300-100 MLP trained on digits:
    "dense", "pruned", "quantized", "huffman", each with "bytes", "ratio" (dense bytes /
    bytes) and "accuracy" (test %).

    Pruning removes `rates` of each Linear's weights (Han et al.'s per-layer rates by default;
    a float prunes globally to that sparsity), then fine-tunes with the masks held for
    `finetune_epochs` epochs. Sharing clusters each layer's surviving weights into
    2**`weight_bits` centroids (k-means, linear initialisation) and fine-tunes the codebooks
    for `codebook_epochs` epochs. The bytes come from `sharing.compression_stages`: the pruned
    stage stores fp32 values and `index_bits`-bit relative indices, the quantized stage
    `weight_bits`-bit codes and an fp32 codebook, the last both streams Huffman coded, each
    counted from the encoded bits; biases count as fp32 in every stage. The "huffman" row's
    accuracy is that of the model rebuilt by `decode_layer` from the encoded bits; it also has
    "exact" (True when that rebuild equals the shared weights bit for bit), "bias_bytes" (the
    fp32 biases) and "side_bytes" (the fp32 codebooks and the code tables).

    Source: Han, Mao, Dally 2016, "Deep Compression", sections 2-4 and Table 2.
    """
    check_positive_int("weight_bits", weight_bits)
    check_positive_int("index_bits", index_bits)
    check_positive_int("finetune_epochs", finetune_epochs)
    check_positive_int("codebook_epochs", codebook_epochs)
    model, splits = train_lenet(seed, epochs=epochs)
    dense_accuracy = accuracy_percent(model, splits)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if isinstance(rates, int | float) and not isinstance(rates, bool):
        masks = P.global_magnitude_masks(model, check_fraction("rates", rates))
    else:
        rates = [check_fraction("rates", r) for r in rates]
        if len(rates) != len(linears):
            raise ValueError(
                f"rates must give one sparsity per Linear layer ({len(linears)}), got {rates}"
            )
        masks = {
            n: P.magnitude_mask(_submodule(model, n).weight, r)
            for n, r in zip(linears, rates, strict=True)
        }
    P.apply_masks_(model, masks)
    _fit(model, splits, finetune_epochs, FINETUNE_LR, seed, verbose)
    P.remove_masks_(model.eval())
    pruned_accuracy = accuracy_percent(model, splits)
    S.share_weights_(model, weight_bits)
    _fit(model, splits, codebook_epochs, FINETUNE_LR, seed, verbose)
    P.remove_masks_(model.eval())
    quantized_accuracy = accuracy_percent(model, splits)
    stages = S.compression_stages(model, index_bits=index_bits, weight_bits=weight_bits)
    decoded = copy.deepcopy(model)
    exact, side_bytes = True, 0
    for name in linears:
        layer = _submodule(decoded, name)
        encoded = S.encode_layer(
            layer.weight.detach(), index_bits=index_bits, weight_bits=weight_bits
        )
        # what a small layer pays whatever its size: the fp32 codebook and the two code tables
        side_bytes += encoded.codebook_bytes + 2**index_bits + 2**weight_bits
        rebuilt = S.decode_layer(encoded)
        exact &= bool(torch.equal(rebuilt, layer.weight.detach()))
        with torch.no_grad():
            layer.weight.copy_(rebuilt)
    huffman_accuracy = accuracy_percent(decoded, splits)
    accuracies = {
        "dense": dense_accuracy,
        "pruned": pruned_accuracy,
        "quantized": quantized_accuracy,
        "huffman": huffman_accuracy,
    }
    rows = [{**stage, "accuracy": accuracies[stage["stage"]]} for stage in stages]
    weight_bytes = sum(4 * _submodule(model, n).weight.numel() for n in linears)
    rows[-1]["exact"] = exact
    rows[-1]["side_bytes"] = side_bytes
    rows[-1]["bias_bytes"] = rows[0]["bytes"] - weight_bytes
    return rows


def deep_compression_summary(seeds: Sequence[int] = (0, 1, 2), **kwargs) -> dict[str, float]:
    """Return `deep_compression` averaged over `seeds` (keyword arguments passed on).

    Keys: "compression" (dense / Huffman-stage bytes), "pruned_ratio", "quantized_ratio",
    "dense_accuracy", "accuracy" (of the model decoded from the Huffman streams),
    "accuracy_drop" (points), "bytes", "dense_bytes", "bias_bytes" and "side_bytes" (the fp32
    codebooks and code tables) of the final stage, "weights_only_ratio" (dense weight bytes /
    final bytes without the biases), "streams_ratio" (the same without the codebooks and code
    tables: the encoded index and code streams alone), "exact" (every decode equal to the
    shared weights) and "seeds".

    Source: Han, Mao, Dally 2016, Table 1 (LeNet-300-100: 1070 KB to 27 KB, 40x).
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    runs = [{r["stage"]: r for r in deep_compression(seed, **kwargs)} for seed in seeds]

    def mean(stage: str, key: str) -> float:
        return statistics.mean(float(run[stage][key]) for run in runs)

    dense_weights = mean("dense", "bytes") - mean("huffman", "bias_bytes")
    final_weights = mean("huffman", "bytes") - mean("huffman", "bias_bytes")
    return {
        "compression": mean("huffman", "ratio"),
        "pruned_ratio": mean("pruned", "ratio"),
        "quantized_ratio": mean("quantized", "ratio"),
        "dense_accuracy": mean("dense", "accuracy"),
        "accuracy": mean("huffman", "accuracy"),
        "accuracy_drop": mean("dense", "accuracy") - mean("huffman", "accuracy"),
        "bytes": mean("huffman", "bytes"),
        "dense_bytes": mean("dense", "bytes"),
        "bias_bytes": mean("huffman", "bias_bytes"),
        "side_bytes": mean("huffman", "side_bytes"),
        "weights_only_ratio": dense_weights / final_weights,
        "streams_ratio": dense_weights / (final_weights - mean("huffman", "side_bytes")),
        "exact": all(run["huffman"]["exact"] for run in runs),
        "seeds": len(seeds),
    }


# ---------------------------------------------------------------------------------------------
# Low rank
# ---------------------------------------------------------------------------------------------


def lowrank_sweep(
    model: nn.Module | None = None,
    splits: Splits | None = None,
    energies: Sequence[float] = LOWRANK_ENERGIES,
    *,
    scheme: str = "channel",
    finetune_epochs: int = 2,
    batch: int = 64,
    threads: int = 1,
    min_run_time: float = 0.1,
    rounds: int = 1,
    lr: float = LOWRANK_LR,
    seed: int = 0,
    verbose: bool = False,
) -> list[dict[str, object]]:
    """Return one row for the dense CNN and one per kept energy: every Conv2d and Linear layer
    of `model` factorised by `lowrank_model(energy=...)` (a layer whose rank would not save
    parameters stays whole), then fine-tuned for `finetune_epochs` epochs.

    `model` and `splits` default to `train_cnn(seed)`. Row keys: "energy" (1.0 for the dense
    row), "ranks" (layer name -> rank of the factorised layers), "params", "macs" (one image),
    "latency_ms" (`cpu_latency`, (batch, 1, 8, 8), `threads` threads, all networks in turn for
    `rounds` rounds, medians), "accuracy" (test %, before fine-tuning) and
    "accuracy_finetuned" (Adam at `lr`). `model` is not changed.

    Source: Denton et al. 2014, "Exploiting Linear Structure Within Convolutional Networks for
    Efficient Evaluation", section 3; Jaderberg et al. 2014, section 2.
    """
    energies = [_check_energy(e) for e in energies]
    check_positive_int("finetune_epochs", finetune_epochs)
    check_positive_int("batch", batch)
    if model is None or splits is None:
        model, splits = train_cnn(seed)
    model = model.eval()
    dense_acc = accuracy_percent(model, splits)
    networks = [model]
    rows = [{"energy": 1.0, "ranks": {}, "accuracy": dense_acc, "accuracy_finetuned": dense_acc}]
    for energy in tqdm(energies, desc="low rank", disable=not verbose, leave=False):
        small = L.lowrank_model(model, energy=energy, scheme=scheme).eval()
        accuracy = accuracy_percent(small, splits)
        _fit(small, splits, finetune_epochs, lr, seed, False)
        networks.append(small.eval())
        rows.append(
            {
                "energy": energy,
                "ranks": _ranks_of(small),
                "accuracy": accuracy,
                "accuracy_finetuned": accuracy_percent(small, splits),
            }
        )
    _add_costs(rows, networks, splits, batch, threads, min_run_time, rounds, seed)
    return rows


def lowrank_layer_speed(
    model: nn.Sequential | None = None,
    splits: Splits | None = None,
    *,
    layer: int | None = None,
    scheme: str = "channel",
    ranks: Sequence[int] | None = None,
    points: float = 1.0,
    finetune_epochs: int = 2,
    batch: int = 256,
    threads: int = 1,
    min_run_time: float = 0.2,
    rounds: int = 3,
    lr: float = LOWRANK_LR,
    seed: int = 0,
    verbose: bool = False,
) -> dict[str, object]:
    """Return the per-layer speed-up of one conv layer factorised at the smallest rank that
    keeps the network's fine-tuned test accuracy within `points` of dense.

    `model` and `splits` default to `train_cnn(seed)`; `layer` (a position in the Sequential)
    defaults to the Conv2d with the most MACs. For each rank of `ranks` (default: halving from
    the largest rank that saves MACs down to 2) only that layer is replaced by
    `factorize_conv(rank, scheme)`, the network fine-tuned `finetune_epochs` epochs, and its
    accuracy measured; the smallest passing rank is kept (the largest tried if none passes).
    The layer alone, dense and factorised, is then timed on a (batch, C, H, W) input of the
    shape it sees in the network (`cpu_latency`, `threads` threads, the two in turn for
    `rounds` rounds, medians). Keys: "layer", "scheme",
    "rank", "speedup" (dense / factorised time), "dense_ms", "factored_ms", "macs_ratio"
    (dense / factorised MACs of the layer), "params_ratio", "dense_accuracy", "accuracy"
    (fine-tuned, at the chosen rank), "passed" (whether it is within `points`), "tried"
    (rank -> accuracy). `model` is not changed.

    Source: Denton et al. 2014, section 3 and Table 2 (per-layer speed-up on CPU);
    Jaderberg et al. 2014, section 2 (scheme 2, the spatial factorisation).
    """
    check_positive_int("finetune_epochs", finetune_epochs)
    check_positive_int("batch", batch)
    if model is None or splits is None:
        model, splits = train_cnn(seed)
    model = model.eval()
    one = (1, *splits.sample_shape)
    inputs = _layer_inputs(model, one)
    macs = {i: count_macs(model[i], inputs[i]) for i in inputs}
    if layer is None:
        layer = max(macs, key=macs.get)
    if layer not in inputs:
        raise ValueError(f"layer must be the position of a Conv2d in model, one of {list(inputs)}")
    conv = model[layer]
    if ranks is None:
        ranks = _halving_ranks(conv, scheme)
    ranks = sorted({check_positive_int("ranks", r) for r in ranks}, reverse=True)
    dense_acc = accuracy_percent(model, splits)
    tried: dict[int, float] = {}
    chosen = ranks[0]
    for rank in tqdm(ranks, desc="ranks", disable=not verbose, leave=False):
        work = copy.deepcopy(model)
        work[layer] = L.factorize_conv(conv, rank, scheme=scheme)
        _fit(work, splits, finetune_epochs, lr, seed, False)
        tried[rank] = accuracy_percent(work.eval(), splits)
        if tried[rank] >= dense_acc - points:
            chosen = rank
        else:
            break
    factored = L.factorize_conv(conv, chosen, scheme=scheme).eval()
    x = torch.randn(batch, *inputs[layer].shape[1:], generator=torch.Generator().manual_seed(seed))
    dense_ms, factored_ms = _latencies([conv, factored], x, threads, min_run_time, rounds)
    return {
        "layer": layer,
        "scheme": scheme,
        "rank": chosen,
        "shape": tuple(conv.weight.shape),
        "input_shape": tuple(x.shape),
        "speedup": dense_ms / factored_ms,
        "dense_ms": dense_ms,
        "factored_ms": factored_ms,
        "macs_ratio": macs[layer] / count_macs(factored, inputs[layer]),
        "params_ratio": count_params(conv) / count_params(factored),
        "dense_accuracy": dense_acc,
        "accuracy": tried[chosen],
        "passed": tried[chosen] >= dense_acc - points,
        "tried": tried,
    }


def lowrank_speedups(
    seeds: Sequence[int] = (0, 1, 2),
    schemes: Sequence[str] = ("channel", "spatial"),
    *,
    epochs: int = CNN_EPOCHS,
    verbose: bool = False,
    **kwargs,
) -> dict[str, float]:
    """Return `lowrank_layer_speed` of the digits CNN's largest conv for each scheme, the
    median over `seeds` (each seed trains its own CNN with `train_cnn`; keyword arguments go to
    `lowrank_layer_speed`).

    Keys per scheme s: "speedup_<s>", "rank_<s>", "macs_ratio_<s>", "accuracy_<s>" (fine-tuned,
    at the chosen rank) and "passed_<s>" (seeds whose chosen rank kept accuracy within the
    points); also "dense_accuracy", "dense_ms" (the layer, median) and "seeds".

    Source: Denton et al. 2014, abstract and section 5; Jaderberg et al. 2014, abstract.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    results: dict[str, list[dict]] = {s: [] for s in schemes}
    dense_accuracy, dense_ms = [], []
    for seed in tqdm(seeds, desc="seeds", disable=not verbose, leave=False):
        model, splits = train_cnn(seed, epochs=epochs)
        for scheme in schemes:
            result = lowrank_layer_speed(model, splits, scheme=scheme, seed=seed, **kwargs)
            results[scheme].append(result)
            dense_ms.append(result["dense_ms"])
        dense_accuracy.append(result["dense_accuracy"])
    out: dict[str, float] = {}
    for scheme, runs in results.items():
        out[f"speedup_{scheme}"] = statistics.median(r["speedup"] for r in runs)
        out[f"rank_{scheme}"] = statistics.median(r["rank"] for r in runs)
        out[f"macs_ratio_{scheme}"] = statistics.median(r["macs_ratio"] for r in runs)
        out[f"accuracy_{scheme}"] = statistics.mean(r["accuracy"] for r in runs)
        out[f"passed_{scheme}"] = sum(bool(r["passed"]) for r in runs)
    out["dense_accuracy"] = statistics.mean(dense_accuracy)
    out["dense_ms"] = statistics.median(dense_ms)
    out["seeds"] = len(seeds)
    return out


# ---------------------------------------------------------------------------------------------
# One byte budget, three methods
# ---------------------------------------------------------------------------------------------


def budget_comparison(
    budget_fraction: float = 0.25,
    seed: int = 0,
    *,
    sharing_bits: int = 4,
    index_bits: int = 32,
    finetune_epochs: int = 3,
    model: nn.Module | None = None,
    splits: Splits | None = None,
) -> dict[str, object]:
    """Return the test accuracy (%) of a LeNet-300-100 MLP squeezed to `budget_fraction` of its
    fp32 weight bytes three ways, each fine-tuned `finetune_epochs` epochs, and the winner.

    The budget counts the Linear weights only (biases stay fp32 in all three, the same bytes for
    each). (a) "pruning": global magnitude pruning to the highest density whose CSR storage
    (32-bit values, `index_bits`-bit column indices and row pointers, `csr_bytes`) fits; (b)
    "sharing": each layer's weights shared to 2**`sharing_bits` - 1 centroids (code 0 is the
    zero, `share_weights_`), stored as `sharing_bits`-bit codes plus an fp32 codebook; (c)
    "lowrank": `lowrank_model` at the highest kept energy whose parameters fit (layers not worth
    factorising stay whole and count in full). Keys: "budget_bytes", "dense_bytes",
    "dense_accuracy", per method "<m>_accuracy" and "<m>_bytes", "density" (kept fraction of
    pruning), "energy" (of low rank), "winner" and "margin" (winner minus runner-up, points).
    `model` and `splits` default to `train_lenet(seed)`; `model` is not changed.

    Source: Han et al. 2016, "Deep Compression", sections 2-3 (pruning with its index cost,
    weight sharing); Denton et al. 2014 (low rank); the exercise's own comparison.
    """
    budget_fraction = check_fraction("budget_fraction", budget_fraction, allow_zero=False)
    check_positive_int("sharing_bits", sharing_bits)
    if model is None or splits is None:
        model, splits = train_lenet(seed)
    model = model.eval()
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    weights = sum(m.weight.numel() for m in linears.values())
    dense_bytes = 4 * weights
    budget = budget_fraction * dense_bytes
    out: dict[str, object] = {
        "budget_bytes": budget,
        "dense_bytes": dense_bytes,
        "dense_accuracy": accuracy_percent(model, splits),
    }

    # (a) pruning: the densest global pruning whose CSR bytes fit (bisection on the sparsity)
    def pruned_bytes(s: float) -> int:
        masks = P.global_magnitude_masks(model, s)
        return sum(
            P.csr_bytes(P.to_csr(linears[n].weight.detach() * m), index_bits=index_bits)
            for n, m in masks.items()
        )

    low, high = 0.0, 1 - 1e-6
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (low, mid) if pruned_bytes(mid) <= budget else (mid, high)
    pruned = copy.deepcopy(model)
    P.apply_masks_(pruned, P.global_magnitude_masks(pruned, high))
    _fit(pruned, splits, finetune_epochs, FINETUNE_LR, seed, False)
    P.remove_masks_(pruned.eval())
    out["pruning_accuracy"] = accuracy_percent(pruned, splits)
    out["pruning_bytes"] = pruned_bytes(high)
    out["density"] = 1 - high

    # (b) weight sharing: codes plus a codebook per layer
    shared = copy.deepcopy(model)
    S.share_weights_(shared, sharing_bits)
    _fit(shared, splits, finetune_epochs, FINETUNE_LR, seed, False)
    codebooks = S.codebooks_of(shared)
    P.remove_masks_(shared.eval())
    out["sharing_accuracy"] = accuracy_percent(shared, splits)
    out["sharing_bytes"] = sum(
        -(-m.weight.numel() * sharing_bits // 8) + S.FP32_BYTES * codebooks[n].numel()
        for n, m in linears.items()
    )

    # (c) low rank: the highest kept energy whose factorised weights fit
    def factored(energy: float) -> tuple[nn.Module, int]:
        small = L.lowrank_model(model, energy=energy)
        n = sum(m.weight.numel() for m in small.modules() if isinstance(m, nn.Linear | nn.Conv2d))
        return small, 4 * n

    low_e, high_e = 1e-6, 1.0
    for _ in range(20):
        mid = (low_e + high_e) / 2
        low_e, high_e = (mid, high_e) if factored(mid)[1] <= budget else (low_e, mid)
    small, small_bytes = factored(low_e)
    _fit(small, splits, finetune_epochs, FINETUNE_LR, seed, False)
    out["lowrank_accuracy"] = accuracy_percent(small.eval(), splits)
    out["lowrank_bytes"] = small_bytes
    out["energy"] = low_e

    scores = {m: out[f"{m}_accuracy"] for m in ("pruning", "sharing", "lowrank")}
    ranked = sorted(scores, key=scores.get, reverse=True)
    out["winner"] = ranked[0]
    out["margin"] = scores[ranked[0]] - scores[ranked[1]]
    return out


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _fit(
    model: nn.Module,
    splits: Splits,
    epochs: int,
    lr: float,
    seed: int,
    verbose: bool,
    *,
    validate: bool = False,
) -> None:
    train_loader, val_loader, _ = splits.loaders(batch_size=BATCH_SIZE, seed=seed)
    with torch_threads(1):
        fit(
            model,
            train_loader,
            val_loader if validate else None,
            epochs=epochs,
            lr=lr,
            seed=seed,
            verbose=verbose,
        )


def _masks(model: nn.Module, sparsity: float, global_: bool) -> dict[str, Tensor]:
    if global_:
        return P.global_magnitude_masks(model, sparsity)
    return {
        name: P.magnitude_mask(w, sparsity) for name, w in P._weights_of(model, P.PRUNABLE).items()
    }


def _submodule(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]


def _check_energy(energy: object) -> float:
    if isinstance(energy, bool) or not isinstance(energy, int | float) or not 0 < energy <= 1:
        raise ValueError(f"energies must lie in (0, 1], got {energy!r}")
    return float(energy)


def _ranks_of(model: nn.Module) -> dict[str, int]:
    """The inner width of every factorised pair (a Sequential of two Linear or two Conv2d)."""
    ranks = {}
    for name, module in model.named_modules():
        children = list(module.children()) if isinstance(module, nn.Sequential) else []
        if len(children) == 2 and all(isinstance(c, nn.Linear) for c in children):
            ranks[name] = children[0].out_features
        elif len(children) == 2 and all(isinstance(c, nn.Conv2d) for c in children):
            ranks[name] = children[0].out_channels
    return ranks


def _layer_inputs(model: nn.Sequential, input_shape: Sequence[int]) -> dict[int, Tensor]:
    """The input each Conv2d of `model` sees on a zero image of `input_shape`, by position."""
    x = torch.zeros(*input_shape)
    inputs = {}
    with torch.no_grad():
        for i, module in enumerate(model):
            if isinstance(module, nn.Conv2d):
                inputs[i] = x
            x = module(x)
    return inputs


def _halving_ranks(conv: nn.Conv2d, scheme: str) -> list[int]:
    n, c, kh, kw = conv.weight.shape
    if scheme == "spatial":
        top = min(c * kh, n * kw)
        per_rank = c * kh + n * kw
    else:
        top = min(n, c * kh * kw)
        per_rank = c * kh * kw + n
    # the largest rank that still saves multiply-adds, then halving
    rank = min(top, (n * c * kh * kw - 1) // per_rank)
    ranks = []
    while rank >= 2:
        ranks.append(rank)
        rank //= 2
    return ranks or [1]


def _add_costs(rows, networks, splits, batch, threads, min_run_time, rounds, seed) -> None:
    """Add each network's params, MACs (one sample) and latency (one seeded batch) to its row."""
    one = (1, *splits.sample_shape)
    x = torch.rand(batch, *splits.sample_shape, generator=torch.Generator().manual_seed(seed))
    latencies = _latencies(networks, x, threads, min_run_time, rounds)
    for row, network, latency in zip(rows, networks, latencies, strict=True):
        row["params"] = count_params(network)
        row["macs"] = count_macs(network, one)
        row["latency_ms"] = latency


def _latencies(
    networks: Sequence[nn.Module],
    x: Tensor,
    threads: int,
    min_run_time: float,
    rounds: int,
    *,
    warmup: int = 3,
) -> list[float]:
    """Median latency (ms) of each network, timed in turn for `rounds` rounds."""
    check_positive_int("threads", threads)
    check_positive_int("rounds", rounds)
    # On a shared machine the load changes within seconds; timing the networks in turn
    # exposes each to the same conditions, and the median drops a disturbed round.
    times: list[list[float]] = [[] for _ in networks]
    for _ in range(rounds):
        for i, network in enumerate(networks):
            latency = cpu_latency(
                network, x, threads=threads, min_run_time=min_run_time, warmup=warmup
            )
            times[i].append(latency.median_ms)
    return [statistics.median(t) for t in times]


class _Apply(nn.Module):
    """A function as a module, so that `cpu_latency` can time it."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)
