"""Lesson 08's experiments: training on several workers. Called by
course/08_parallel_training.ipynb and by the ledger claims `data-parallel` and `param-server`
(effdl/claims/training.py). Start with `scaling_rule_runs` and `scaling_summary` (Goyal et
al.'s linear scaling rule as the batch grows with the workers), then `throughput_rows` and
`scaling_efficiency` (samples per second of 1 and 2 processes), `bubble_rows` (a GPipe
pipeline's idle time against the formula) and `param_server_runs` (asynchronous updates
through a parameter server against synchronous SGD).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from effdl._checks import check_in, check_positive_int, check_seeds
from effdl.data import load_mnist1d
from effdl.measure import torch_threads
from effdl.models.baselines import ConvNet1d
from effdl.parallel.data_parallel import THROUGHPUT_SIZES, measure_throughput, warmup_lr
from effdl.parallel.model_parallel import make_pipeline_mlp, measure_bubble
from effdl.parallel.param_server import train_param_server, train_synchronous
from effdl.train import evaluate

#: The scaling-rule runs: the mnist1d CNN, SGD with momentum 0.9, `epochs` epochs at every
#: worker count. One worker takes batches of `base_batch` at `base_lr`; k workers take k *
#: base_batch (so k times fewer steps per epoch). The warm-up lasts `warmup_epochs` (Goyal et
#: al. warm up for 5 of 90 epochs; our runs are short, so a fifth of them).
SCALING = {"base_batch": 25, "base_lr": 0.03, "epochs": 15, "warmup_epochs": 3, "momentum": 0.9}
WORKER_COUNTS = (1, 2, 4, 8)
#: "fixed": k workers keep the one-worker rate; "linear": k times the rate from the first
#: step; "linear+warmup": from the one-worker rate up to k times it over the warm-up.
SCALING_RULES = ("fixed", "linear", "linear+warmup")
SEEDS = (0, 1, 2)
#: A worker count "degrades" when its mean test accuracy falls more than this share below
#: one worker's (0.10: below 90% of it).
WORSE = 0.10
#: The global batches of the throughput sweep, on the Linear-heavy MLP of data_parallel.
THROUGHPUT_BATCHES = (32, 128, 512, 2048)
#: The pipeline of the bubble experiment: `make_pipeline_mlp(width=512, depth=8)` on one batch
#: of 2,048 random samples, cut into 2 stages.
BUBBLE = {"width": 512, "depth": 8, "batch": 2048, "stages": 2}
BUBBLE_MICRO_BATCHES = (1, 2, 4, 8)
#: Parameter-server runs: 2 workers, the defaults of `train_param_server`.
PS_WORKERS = 2
REDUCED = {"ps_seeds": (0,)}


def scaling_rule_runs(
    workers: Sequence[int] = WORKER_COUNTS,
    rules: Sequence[str] = SCALING_RULES,
    seeds: Sequence[int] = SEEDS,
    *,
    verbose: bool = True,
) -> list[dict]:
    """Train the mnist1d CNN as k synchronous workers would, for each k in `workers`, learning
    rate rule in `rules` and seed, and return one row per run: "seed", "workers", "rule",
    "batch" (k * base_batch), "lr" (the rate after warm-up), "steps", "accuracy" (test %),
    "loss_curve" (mean training loss per epoch).

    k workers with b samples each and averaged gradients take exactly the step of one worker
    with k*b samples (`effdl.parallel.data_parallel` shows it across processes, and the
    ConvNet has no batch norm whose statistics would depend on the split), so each run is one
    process at batch k*b. One worker is trained once per seed and reported under every rule:
    the three rules coincide at k = 1.

    Source: Goyal et al. 2017, sections 2.1-2.2 (linear scaling rule, gradual warm-up).
    """
    workers = [check_positive_int("workers", k) for k in workers]
    for rule in rules:
        check_in("rules", rule, SCALING_RULES)
    seeds = check_seeds(seeds)
    splits = load_mnist1d(seed=0)
    _, _, test = splits.loaders(batch_size=500)
    runs = [(s, k, r) for s in seeds for k in workers for r in (rules if k > 1 else rules[:1])]
    rows = []
    with torch_threads(1):
        for seed, k, rule in tqdm(runs, desc="scaling runs", disable=not verbose, leave=False):
            row = _train_at_scale(splits, test, k, rule, seed)
            for r in rules if k == 1 else (rule,):
                rows.append({**row, "rule": r})
    return rows


def scaling_summary(rows: Sequence[dict], worse: float = WORSE) -> dict:
    """Return what `scaling_rule_runs` rows say: "base" (one worker's mean test %),
    "accuracy" ({rule: {k: mean test %}}), "first_fixed_worse" (the smallest k whose fixed-rate
    accuracy is more than `worse` below base, relative; None if none), "holds" ({rule: whether
    it stays within `worse` of base at the largest k}), "largest" (that k), "seeds".

    Source: Goyal et al. 2017, section 5 (a large batch matches the small one's accuracy
    under the linear scaling rule with warm-up, and not without).
    """
    if not 0 < worse < 1:
        raise ValueError(f"worse must lie in (0, 1), got {worse!r}")
    table: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r.get("rule") not in SCALING_RULES or "workers" not in r:
            raise ValueError(f"rows must be scaling_rule_runs rows, got {r!r}")
        table.setdefault(r["rule"], {}).setdefault(r["workers"], []).append(r["accuracy"])
    ones = [a for rule in table.values() for a in rule.get(1, [])]
    if not ones:
        raise ValueError("rows must include one-worker runs (workers=1) as the baseline")
    base = statistics.fmean(ones)  # one worker's runs, the same under every rule
    accuracy = {
        rule: {k: statistics.fmean(v) for k, v in sorted(by_k.items())}
        for rule, by_k in table.items()
    }
    floor = (1 - worse) * base
    fixed = accuracy.get("fixed", {})
    first = next((k for k, a in fixed.items() if a < floor), None)
    largest = max(k for by_k in accuracy.values() for k in by_k)
    return {
        "base": base,
        "accuracy": accuracy,
        "first_fixed_worse": first,
        "holds": {
            rule: by_k[largest] >= floor for rule, by_k in accuracy.items() if largest in by_k
        },
        "largest": largest,
        "seeds": len({r["seed"] for r in rows}),
    }


def throughput_rows(
    workers: Sequence[int] = (1, 2),
    batches: Sequence[int] = THROUGHPUT_BATCHES,
    *,
    steps: int = 5,
) -> list[dict]:
    """Return `measure_throughput` rows of the MLP `THROUGHPUT_SIZES` for every worker count
    and global batch: "workers", "batch", "samples_per_s", "step_ms", "compute_ms", "comm_ms".

    Source: Goyal et al. 2017, section 5.5 (throughput against workers).
    """
    return measure_throughput(workers, batches, THROUGHPUT_SIZES, steps=steps)


def scaling_efficiency(rows: Sequence[dict], batch: int | None = None) -> dict:
    """Return the scaling of the most workers in `rows` over one worker at global batch `batch`
    (default: the largest batch measured with both): "batch", "workers", "speedup" (samples/s
    over one worker's), "efficiency" (speedup / workers), "comm_share" (the all-reduce's
    share of the step time).

    Source: Goyal et al. 2017, section 5.5 (scaling efficiency = speed-up / ideal speed-up).
    """
    by = {(r["workers"], r["batch"]): r for r in rows}
    most = max(k for k, _ in by)
    both = sorted(b for k, b in by if k == most and (1, b) in by)
    if most < 2 or not both:
        raise ValueError("rows must hold one worker and more than one at the same global batch")
    if batch is None:
        batch = both[-1]
    elif batch not in both:
        raise ValueError(f"batch must be one of the batches measured with both {both}, got {batch}")
    one, many = by[(1, batch)], by[(most, batch)]
    speedup = many["samples_per_s"] / one["samples_per_s"]
    return {
        "batch": batch,
        "workers": most,
        "speedup": speedup,
        "efficiency": speedup / most,
        "comm_share": many["comm_ms"] / many["step_ms"],
    }


def bubble_rows(
    micro_batches: Sequence[int] = BUBBLE_MICRO_BATCHES, *, repeats: int = 3, seed: int = 0
) -> list[dict]:
    """Return `measure_bubble` rows ("micro_batches", "formula", "measured", "measured_best",
    "stage_idle", "step_seconds", ...) of the `BUBBLE` pipeline on 2 processes, one launch.

    Source: Huang et al. 2019, "GPipe", section 2.3.
    """
    b = BUBBLE
    model = make_pipeline_mlp(width=b["width"], depth=b["depth"], seed=seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(b["batch"], 40, generator=generator)
    y = torch.randint(0, 10, (b["batch"],), generator=generator)
    return measure_bubble(
        model, x, y, stages=b["stages"], micro_batches=micro_batches, repeats=repeats, warmup=1
    )


def param_server_runs(
    seeds: Sequence[int] = (0, 1, 2), n_workers: int = PS_WORKERS, *, verbose: bool = True
) -> list[dict]:
    """For each seed, train the mnist1d MLP through a parameter server with `n_workers`
    asynchronous workers and then synchronously in one process with as many updates; return
    one row per run: "seed", "mode" ("async" or "sync"), "accuracy" (test %), "updates",
    "samples", "samples_per_s", "final_loss" (mean of the last 50 updates' losses), and for
    "async" "staleness_mean", "staleness_max" and "updates_per_worker".

    Source: Dean et al. 2012, section 4.1 (Downpour SGD).
    """
    seeds = check_seeds(seeds)
    n_workers = check_positive_int("n_workers", n_workers)
    rows = []
    for seed in tqdm(seeds, desc="parameter-server runs", disable=not verbose, leave=False):
        run = train_param_server(n_workers, seed=seed)
        rows.append(
            {
                "seed": seed,
                "mode": "async",
                "accuracy": run["accuracy"],
                "updates": run["version"],
                "samples": run["samples"],
                "samples_per_s": run["samples_per_s"],
                "final_loss": statistics.fmean(run["loss"][-50:]),
                "staleness_mean": statistics.fmean(run["staleness"]),
                "staleness_max": max(run["staleness"]),
                "updates_per_worker": run["updates_per_worker"],
            }
        )
        with torch_threads(1):
            sync = train_synchronous(n_workers, updates=run["version"], seed=seed)
        rows.append(
            {
                "seed": seed,
                "mode": "sync",
                "accuracy": sync["accuracy"],
                "updates": run["version"],
                "samples": sync["samples"],
                "samples_per_s": sync["samples_per_s"],
                "final_loss": statistics.fmean(sync["loss"][-50:]),
            }
        )
    return rows


def param_server_summary(rows: Sequence[dict]) -> dict:
    """Return the paired comparison of `param_server_runs` rows: "async" and "sync" (mean test
    %), "gap" (mean of async minus sync per seed, points), "speedup" (async samples/s over the
    one-process synchronous run's, mean over seeds), "staleness_mean", "staleness_max",
    "seeds".

    Source: Dean et al. 2012, section 5 (speed-up over one machine; accuracy of Downpour).
    """
    by_seed: dict[int, dict[str, dict]] = {}
    for r in rows:
        if r.get("mode") not in ("async", "sync"):
            raise ValueError(f"rows must be param_server_runs rows, got {r!r}")
        by_seed.setdefault(r["seed"], {})[r["mode"]] = r
    paired = [m for m in by_seed.values() if len(m) == 2]
    if not paired:
        raise ValueError("rows must hold an async and a sync run of at least one seed")
    return {
        "async": statistics.fmean(m["async"]["accuracy"] for m in paired),
        "sync": statistics.fmean(m["sync"]["accuracy"] for m in paired),
        "gap": statistics.fmean(m["async"]["accuracy"] - m["sync"]["accuracy"] for m in paired),
        "speedup": statistics.fmean(
            m["async"]["samples_per_s"] / m["sync"]["samples_per_s"] for m in paired
        ),
        "staleness_mean": statistics.fmean(m["async"]["staleness_mean"] for m in paired),
        "staleness_max": max(m["async"]["staleness_max"] for m in paired),
        "seeds": len(paired),
    }


def _train_at_scale(splits, test, workers: int, rule: str, seed: int) -> dict:
    """Train one run of `scaling_rule_runs` and return its row (without "rule")."""
    s = SCALING
    batch = workers * s["base_batch"]
    train, _, _ = splits.loaders(batch_size=batch, seed=seed)
    target = s["base_lr"] if rule == "fixed" else workers * s["base_lr"]
    warmup_steps = s["warmup_epochs"] * len(train) if rule == "linear+warmup" else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ConvNet1d()
    optimizer = torch.optim.SGD(model.parameters(), lr=target, momentum=s["momentum"])
    losses, step = [], 0
    for _ in range(s["epochs"]):
        total, seen = 0.0, 0
        for x, y in train:
            lr = warmup_lr(step, target_lr=target, warmup_steps=warmup_steps, start_lr=s["base_lr"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            seen += len(y)
            step += 1
        losses.append(total / seen)
    return {
        "seed": seed,
        "workers": workers,
        "batch": batch,
        "lr": target,
        "steps": step,
        "accuracy": 100 * evaluate(model, test)["accuracy"],
        "loss_curve": losses,
    }
