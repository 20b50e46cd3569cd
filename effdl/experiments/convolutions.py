"""Lesson 01's experiments: MobileNet v1's costs along the paper's width and resolution sweeps,
a standard and a separable CNN trained on digits, and one layer of each timed on its own.
Called by course/01_efficient_convolutions.ipynb; `mobilenet_v1_costs` and
`MOBILENET_V1_PUBLISHED` also by the ledger claim `depth-multiplier` and its neighbours in
effdl/claims/architectures.py. Start with `mobilenet_v1_costs`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from effdl._checks import check_positive_int, check_positive_number
from effdl.data import Splits, load_digits
from effdl.measure import count_macs, count_params, cpu_latency
from effdl.models.conv import separable_conv, standard_conv
from effdl.models.mobilenet import DIGITS_TABLE, MobileNet, mobilenet_v1
from effdl.train import evaluate, fit

#: Costs printed by Howard et al. 2017: Table 4 (separable vs full convolution, 224x224),
#: Table 6 (width multiplier alpha at 224) and Table 7 (resolution at alpha 1). Params are
#: rounded to 0.1M and mult-adds to 1M in the paper.
MOBILENET_V1_PUBLISHED: tuple[dict[str, float], ...] = (
    {"alpha": 1.0, "resolution": 224, "separable": 1, "params_M": 4.2, "madds_M": 569},
    {"alpha": 1.0, "resolution": 224, "separable": 0, "params_M": 29.3, "madds_M": 4866},
    {"alpha": 0.75, "resolution": 224, "separable": 1, "params_M": 2.6, "madds_M": 325},
    {"alpha": 0.5, "resolution": 224, "separable": 1, "params_M": 1.3, "madds_M": 149},
    {"alpha": 0.25, "resolution": 224, "separable": 1, "params_M": 0.5, "madds_M": 41},
    {"alpha": 1.0, "resolution": 192, "separable": 1, "params_M": 4.2, "madds_M": 418},
    {"alpha": 1.0, "resolution": 160, "separable": 1, "params_M": 4.2, "madds_M": 290},
    {"alpha": 1.0, "resolution": 128, "separable": 1, "params_M": 4.2, "madds_M": 186},
)


def mobilenet_v1_costs(
    alphas: Sequence[float] = (1.0, 0.75, 0.5, 0.25),
    resolutions: Sequence[int] = (224, 192, 160, 128),
) -> list[dict[str, float]]:
    """Return measured params and mult-adds of MobileNet v1 along the paper's two sweeps.

    One row per alpha at 224x224 and one per resolution at alpha 1 (the pair (1.0, 224) once),
    each {"alpha", "resolution", "params", "madds", "params_M", "madds_M"}; params from
    `count_params` (BatchNorm's scale and shift included), mult-adds from `count_macs`.

    Source: Howard et al. 2017, "MobileNets", Tables 6 and 7.
    """
    points = [(float(a), 224) for a in alphas]
    points += [(1.0, int(r)) for r in resolutions if (1.0, int(r)) not in points]
    models: dict[float, MobileNet] = {}
    rows = []
    for alpha, resolution in points:
        if alpha not in models:
            models[alpha] = mobilenet_v1(alpha=alpha)
        model = models[alpha]
        params = count_params(model)
        madds = count_macs(model, (1, 3, resolution, resolution))
        rows.append(
            {
                "alpha": alpha,
                "resolution": resolution,
                "params": params,
                "madds": madds,
                "params_M": params / 1e6,
                "madds_M": madds / 1e6,
            }
        )
    return rows


def time_conv_layers(
    map_sizes: Sequence[int] = (8, 28),
    channels: Sequence[int] = (32, 128, 512),
    *,
    kernel_size: int = 3,
    threads: int = 1,
    min_run_time: float = 0.1,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Return one row per (map size, channels) timing a standard and a separable layer alone.

    Each layer maps `channels` to as many channels on a map_size x map_size input, batch 1,
    `kernel_size` x `kernel_size` filters. A row holds "map_size", "channels", the MACs of the
    standard layer ("full_macs"), the separable layer ("split_macs") and its two parts
    ("dw_macs", "pw_macs"); their CPU latencies in ms ("full_ms", "split_ms", "dw_ms",
    "pw_ms"); the separable / standard ratios "macs_ratio" and "latency_ratio"; and the parts'
    throughputs "dw_macs_per_us" and "pw_macs_per_us". Layers are initialised from `seed`
    without touching torch's global generator; times use `threads` threads.

    Source: Howard et al. 2017, "MobileNets", section 3.1 (eqs. 2 and 4) and section 3.2 (most
    of the time goes to the 1x1 convolutions).
    """
    check_positive_int("kernel_size", kernel_size)
    check_positive_int("threads", threads)
    check_positive_number("min_run_time", min_run_time)
    for name, values in (("map_sizes", map_sizes), ("channels", channels)):
        if not values:
            raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {values}")
        for value in values:
            check_positive_int(name, value)
    rows = []
    for size in map_sizes:
        for ch in channels:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                full = standard_conv(ch, ch, kernel_size)
                split = separable_conv(ch, ch, kernel_size)
            shape = (1, ch, size, size)
            parts = {"full": full, "split": split, "dw": split.depthwise, "pw": split.pointwise}
            row: dict[str, float] = {"map_size": size, "channels": ch}
            for key, layer in parts.items():
                row[f"{key}_macs"] = count_macs(layer, shape)
                row[f"{key}_ms"] = cpu_latency(
                    layer, shape, threads=threads, min_run_time=min_run_time
                ).median_ms
            row["macs_ratio"] = row["split_macs"] / row["full_macs"]
            row["latency_ratio"] = row["split_ms"] / row["full_ms"]
            for part in ("dw", "pw"):
                row[f"{part}_macs_per_us"] = row[f"{part}_macs"] / (1000 * row[f"{part}_ms"])
            rows.append(row)
    return rows


def compare_conv_vs_separable_on_digits(
    epochs: int = 10,
    seed: int = 0,
    *,
    table: Sequence[tuple[str, int, int]] = DIGITS_TABLE,
    lr: float = 3e-3,
    batch_size: int = 64,
    threads: int = 1,
    verbose: bool = False,
) -> dict[str, dict[str, float]]:
    """Return test accuracy, params, MACs and CPU latency of a standard and a separable CNN.

    Both networks are `mobilenet_v1(table=table, in_channels=1, num_classes=10)` (a full-conv
    stem, then the table's layers, global pooling, one linear layer), one with
    `separable=False`, so they have the same depth, widths and strides and differ only in how
    each 3x3 layer is built. Each is trained with `effdl.train.fit` (Adam, `lr`) for `epochs`
    on `effdl.data.load_digits(seed=seed)` from the same seed, with torch limited to
    `threads` threads meanwhile (one is fastest for networks this small). Per model:
    "test_acc", "val_acc", "params", "macs" (one 1x8x8 digit), "latency_ms" (batch 1, one
    thread) and "train_seconds".

    Source: Howard et al. 2017, "MobileNets", Table 4 (separable vs full convolution).
    """
    check_positive_int("threads", threads)
    splits = load_digits(seed=seed)
    results: dict[str, dict[str, float]] = {}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for name, separable in (("standard", False), ("separable", True)):
            results[name] = _train_digits_model(
                splits, table, separable, epochs, seed, lr, batch_size, verbose
            )
    finally:
        torch.set_num_threads(previous_threads)
    return results


def _train_digits_model(
    splits: Splits,
    table: Sequence[tuple[str, int, int]],
    separable: bool,
    epochs: int,
    seed: int,
    lr: float,
    batch_size: int,
    verbose: bool,
) -> dict[str, float]:
    train_loader, val_loader, test_loader = splits.loaders(batch_size=batch_size, seed=seed)
    # Seed the initialisation without disturbing the caller's global random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = mobilenet_v1(num_classes=10, in_channels=1, separable=separable, table=table)
    start = time.perf_counter()
    history = fit(model, train_loader, val_loader, epochs=epochs, lr=lr, seed=seed, verbose=verbose)
    seconds = time.perf_counter() - start
    return {
        "test_acc": evaluate(model, test_loader)["accuracy"],
        "val_acc": history.last["val_acc"],
        "params": count_params(model),
        "macs": count_macs(model, (1, 1, 8, 8)),
        "latency_ms": cpu_latency(model, (1, 1, 8, 8), threads=1).median_ms,
        "train_seconds": seconds,
    }
