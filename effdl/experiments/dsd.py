"""Lesson 07's experiments: Dense-Sparse-Dense against dense training with the same schedule.
Called by course/07_dense_sparse_dense.ipynb and by the ledger claim `dsd`
(effdl/claims/training.py). Start with `dsd_vs_dense` (paired runs per seed on mnist1d or
digits) and `dsd_summary`, then `sparsity_runs` (one seed at several sparsities, for the
explorer).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from effdl._checks import check_fraction, check_in, check_seeds
from effdl.data import load_digits, load_mnist1d
from effdl.experiments.pruning import build_lenet
from effdl.learn.dsd import DSD_SPARSITY, train_dsd
from effdl.measure import torch_threads
from effdl.models.baselines import ConvNet1d
from effdl.train import evaluate

#: Each data set's model and schedule: (dense, sparse, re-dense) epochs of SGD with momentum
#: 0.9 at `lr`, the re-dense phase at a tenth of it. mnist1d: lesson 00's CNN; digits: the
#: LeNet-300-100 of lesson 04.
SETTINGS = {
    "mnist1d": {"epochs": (15, 10, 10), "lr": 0.05, "batch_size": 100},
    "digits": {"epochs": (15, 10, 10), "lr": 0.05, "batch_size": 64},
}
SEEDS = (0, 1, 2, 3, 4)
#: The sparsities of the explorer's slider.
SLIDER_SPARSITIES = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
REDUCED = {"seeds": (0, 1, 2)}


def build_model(dataset: str, seed: int = 0) -> nn.Module:
    """Return the untrained model of `dataset` ("mnist1d": the 1-D CNN; "digits":
    LeNet-300-100), initialised from `seed` without touching the global generator.

    Source: Greydanus 2020 (mnist1d's CNN); LeCun et al. 1998 via Han et al. 2015 (LeNet-300-100).
    """
    check_in("dataset", dataset, tuple(SETTINGS))
    if dataset == "digits":
        return build_lenet(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConvNet1d()


def dsd_vs_dense(
    dataset: str = "mnist1d",
    seeds: Sequence[int] = SEEDS,
    *,
    sparsity: float = DSD_SPARSITY,
    cycles: int = 1,
    verbose: bool = True,
) -> list[dict]:
    """Train `dataset`'s model with DSD and with the same schedule at sparsity 0 (dense), once
    per seed, both from the same initial weights and batches; return one row per run:
    "dataset", "seed", "arm" ("dense" or "dsd"), "accuracy" (test %), "val_curve" (% per
    epoch), "phases" (the phase of each epoch), "sparsity_curve" (zero fraction per epoch).

    Source: Han et al. 2017, section 4 (DSD against the baseline trained as long).
    """
    check_in("dataset", dataset, tuple(SETTINGS))
    seeds = check_seeds(seeds)
    sparsity = check_fraction("sparsity", sparsity)
    setting = SETTINGS[dataset]
    splits = _splits(dataset)
    rows = []
    runs = [(seed, arm) for seed in seeds for arm in ("dense", "dsd")]
    with torch_threads(1):
        for seed, arm in tqdm(runs, desc=f"{dataset} runs", disable=not verbose, leave=False):
            train_loader, val_loader, test_loader = splits.loaders(
                batch_size=setting["batch_size"], seed=seed
            )
            model = build_model(dataset, seed)
            history = train_dsd(
                model, train_loader, val_loader,
                sparsity=sparsity if arm == "dsd" else 0.0,
                epochs=setting["epochs"], lr=setting["lr"], cycles=cycles, seed=seed,
            )  # fmt: skip
            rows.append(
                {
                    "dataset": dataset,
                    "seed": seed,
                    "arm": arm,
                    "accuracy": 100 * evaluate(model, test_loader)["accuracy"],
                    "val_curve": [100 * v for v in history["val_acc"]],
                    "phases": history["phase"],
                    "sparsity_curve": history["sparsity"],
                }
            )
    return rows


def dsd_summary(rows: Sequence[dict]) -> dict:
    """Return the paired comparison of `dsd_vs_dense` rows: "dense" and "dsd" (mean test %),
    their "dense_std" and "dsd_std", "gain" (mean over seeds of DSD minus dense, points),
    "gain_std" (sample std of the per-seed gains, 0 for one seed), "gains" (per seed) and
    "significant" (the mean gain exceeds twice its std), "seeds".

    Source: the kit's own summary (paired differences over seeds).
    """
    by_seed: dict[int, dict[str, float]] = {}
    for r in rows:
        if r.get("arm") not in ("dense", "dsd"):
            raise ValueError(f"rows must be dsd_vs_dense rows, got {r!r}")
        by_seed.setdefault(r["seed"], {})[r["arm"]] = r["accuracy"]
    paired = {s: a for s, a in by_seed.items() if len(a) == 2}
    if not paired:
        raise ValueError("rows must hold a dense and a dsd run of at least one seed")
    dense = [a["dense"] for a in paired.values()]
    dsd = [a["dsd"] for a in paired.values()]
    gains = [b - a for a, b in zip(dense, dsd, strict=True)]
    gain = statistics.fmean(gains)
    gain_std = statistics.stdev(gains) if len(gains) > 1 else 0.0
    return {
        "dense": statistics.fmean(dense),
        "dense_std": statistics.stdev(dense) if len(dense) > 1 else 0.0,
        "dsd": statistics.fmean(dsd),
        "dsd_std": statistics.stdev(dsd) if len(dsd) > 1 else 0.0,
        "gain": gain,
        "gain_std": gain_std,
        "gains": gains,
        "significant": gain > 2 * gain_std,
        "seeds": len(gains),
    }


def sparsity_runs(
    dataset: str = "mnist1d",
    sparsities: Sequence[float] = SLIDER_SPARSITIES,
    *,
    seed: int = 0,
    verbose: bool = True,
) -> list[dict]:
    """Train `dataset`'s model with DSD at each sparsity (one seed, same weights and batches);
    return one row per sparsity: "sparsity", "accuracy" (test %), "val_curve", "phases",
    "sparsity_curve". Sparsity 0 is the dense control.

    Source: Han et al. 2017, section 4 (the sparsity of the sparse phase).
    """
    check_in("dataset", dataset, tuple(SETTINGS))
    setting = SETTINGS[dataset]
    splits = _splits(dataset)
    rows = []
    with torch_threads(1):
        for s in tqdm(sparsities, desc="sparsities", disable=not verbose, leave=False):
            s = check_fraction("sparsities", s)
            train_loader, val_loader, test_loader = splits.loaders(
                batch_size=setting["batch_size"], seed=seed
            )
            model = build_model(dataset, seed)
            history = train_dsd(model, train_loader, val_loader, sparsity=s,
                                epochs=setting["epochs"], lr=setting["lr"], seed=seed)  # fmt: skip
            rows.append(
                {
                    "sparsity": s,
                    "accuracy": 100 * evaluate(model, test_loader)["accuracy"],
                    "val_curve": [100 * v for v in history["val_acc"]],
                    "phases": history["phase"],
                    "sparsity_curve": history["sparsity"],
                }
            )
    return rows


def _splits(dataset: str):
    return load_mnist1d(seed=0) if dataset == "mnist1d" else load_digits(seed=0)
