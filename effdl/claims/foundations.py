"""Ledger claims of the foundations lesson (00): the mnist1d baselines."""

from __future__ import annotations

import statistics

from tqdm.auto import tqdm

from effdl.claims.registry import claim, within_points
from effdl.data import load_mnist1d
from effdl.experiments.foundations import PAPER_STEPS, train_baselines

#: Greydanus 2020 test accuracies in percent (README table); the shuffled variant is 32/68/56/57.
MNIST1D_PUBLISHED = {"logreg": 32.0, "mlp": 68.0, "cnn": 94.0, "gru": 91.0}
#: The authors' own notebook (notebooks/mnist1d-classification.ipynb, seed 42): final test
#: accuracy after 6,000 steps. The README's figures are above all four.
MNIST1D_AUTHORS_FINAL = {"logreg": 31.5, "mlp": 65.1, "cnn": 92.3, "gru": 89.1}
#: Training seeds (model initialisation and batch order); the dataset is the fixed published one.
MNIST1D_SEEDS = (0, 1, 2)


@claim(
    "mnist1d-baselines",
    source="Greydanus 2020, mnist1d README (baselines table) and its classification notebook",
    statement="mnist1d test accuracy: logistic regression 32%, MLP 68%, CNN 94%, GRU 91%",
    published=MNIST1D_PUBLISHED,
    # Judged on the mean over seeds; the GRU alone moves by a few points from seed to seed.
    verdict=within_points(4.0),
    # Measured here, one torch thread on a 2-core machine busy with other work: the whole claim
    # (3 seeds x 4 models x 6,000 steps) took 910 s, most of it the GRU (about 4 min a seed).
    cost_seconds=1000.0,
)
def measure_mnist1d_baselines() -> dict:
    # All 4,000 training signals, no validation split: the authors train on all of them and
    # report test accuracy.
    splits = load_mnist1d(seed=0, val_fraction=0.0)
    names = tuple(MNIST1D_PUBLISHED)
    accuracy: dict[str, list[float]] = {name: [] for name in names}
    params: dict[str, int] = {}
    runs = [(seed, name) for seed in MNIST1D_SEEDS for name in names]
    progress = tqdm(runs, desc="mnist1d-baselines (seed, model)")
    for seed, name in progress:
        progress.set_postfix_str(f"{name} seed {seed}")
        run = train_baselines(
            splits, (name,), steps=PAPER_STEPS, seed=seed, latency=False, verbose=False
        )[name]
        accuracy[name].append(100 * run.test_accuracy)
        params[name] = int(run.footprint["params"])
    measured: dict = {}
    for name in names:
        measured[name] = round(statistics.mean(accuracy[name]), 1)
        measured[f"{name}_std"] = round(statistics.stdev(accuracy[name]), 1)
    measured.update({f"{name}_params": params[name] for name in names})
    per_seed = "; ".join(
        f"{name} " + "/".join(f"{a:.1f}" for a in accuracy[name]) for name in names
    )
    authors = "/".join(f"{MNIST1D_AUTHORS_FINAL[n]:g}" for n in names)
    measured["note"] = (
        f"mean and sample std over seeds {', '.join(map(str, MNIST1D_SEEDS))} of the final test "
        f"accuracy after {PAPER_STEPS:,} Adam steps (lr 1e-2, batch 100), one CPU thread; per "
        f"seed: {per_seed}. Protocol: the README does not say how its table was measured; the "
        "authors' classification notebook trains 6,000 steps, evaluates every 250 and prints "
        f"the final test accuracy, {authors} for logreg/MLP/CNN/GRU (one seed), all below the "
        "README's 32/68/94/91 (the GRU peaks at 90.3 at step 4,000). We follow the notebook "
        "and judge the README's figures, the ones usually quoted, on the mean"
    )
    return measured
