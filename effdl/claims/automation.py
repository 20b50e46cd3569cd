"""Ledger claims of automation (hyper-parameter optimisation). Lesson 09: Bergstra and Bengio
2012's random search, which finds configurations as good as or better than a grid's with the
same number of trials when only a few dimensions matter (their Figure 1: nine trials try three
distinct values of the important parameter on a grid and nine at random).

Lesson 10: Bayesian optimisation needs fewer trials than random search to get near the optimum
(Menghani 2021, Part 4), on the benchmarks of Snoek et al. 2012 (Branin, Hartmann6), in the
same run as scikit-optimize's gp_minimize and Optuna's GPSampler.

Lesson 09's row is measured on random functions of low effective dimensionality in [0, 1]^4
(one dimension that matters, three that barely do), the grid and random search with 16 trials
each, over 50 seeds.
"""

from __future__ import annotations

from effdl.claims.registry import claim, per_figure, within_range
from effdl.experiments.bo import BENCHMARKS, CHECKPOINTS, N_INITIAL, compare, compare_summary
from effdl.experiments.bo import SEEDS as BO_SEEDS
from effdl.experiments.early_stopping import (
    hyperband_vs_random,
    load_curves,
    median_stop_runs,
    summary,
)
from effdl.experiments.search import (
    MINOR_WEIGHT,
    N_AXES,
    PER_AXIS,
    SEEDS,
    grid_vs_random,
    grid_vs_random_summary,
)

BERGSTRA_2012 = (
    "Bergstra, Bengio 2012, Random Search for Hyper-Parameter Optimization (JMLR 13), "
    "section 2 and Figure 1"
)
#: Expected seconds: 50 seeds of 16 + 16 evaluations of a quadratic, and the 2-D setting of
#: the paper's figure (9 + 9): well under a second.
COST_RANDOM_VS_GRID = 2.0


@claim(
    "random-vs-grid",
    source=BERGSTRA_2012,
    statement="with the same number of trials, random search finds configurations as good as "
    "or better than grid search when few dimensions matter: on a 3x3 grid nine trials test the "
    "important parameter at 3 distinct values, random search at 9",
    # "As good or better" is read as: random search's best is at least as good as the grid's on
    # at least half of the functions (a share of 1 would be "always").
    published={"random_wins_share": 0.5},
    verdict=within_range(0.5, 1.0, close=0.2),
    cost_seconds=COST_RANDOM_VS_GRID,
)
def measure_random_vs_grid() -> dict:
    four = grid_vs_random_summary(grid_vs_random(SEEDS, verbose=False))
    two = grid_vs_random_summary(grid_vs_random(SEEDS, n_axes=2, per_axis=3, verbose=False))
    figures = {
        "random_wins_share": four["random_wins_share"],
        "grid_median_regret": four["grid_median"],
        "random_median_regret": four["random_median"],
        "grid_distinct": four["grid_distinct"],
        "random_distinct": four["random_distinct"],
        "random_wins_share_2d": two["random_wins_share"],
    }
    figures["note"] = (
        f"{four['seeds']} random functions on [0, 1]^{N_AXES}, one dimension with weight 1 and "
        f"{N_AXES - 1} with weight {MINOR_WEIGHT:g}, the optimum drawn per seed: the grid of "
        f"{PER_AXIS}^{N_AXES} = {four['trials']} points (cell centres) against {four['trials']} "
        f"random trials. Random search is at least as good on {four['random_wins_share']:.0%} "
        f"of the functions; median best value (the regret, the optimum is 0) grid "
        f"{four['grid_median']:.4f}, random {four['random_median']:.4f}; distinct values of the "
        f"important dimension tried: grid {four['grid_distinct']:.0f}, random "
        f"{four['random_distinct']:.0f}. The paper's own setting, 2 dimensions, a 3x3 grid "
        f"against 9 random trials: random at least as good on "
        f"{two['random_wins_share']:.0%} (grid {two['grid_distinct']:.0f} distinct values, "
        f"random {two['random_distinct']:.0f}). The paper's evidence is neural networks and deep "
        f"belief networks on image tasks; ours is the mechanism on a function built to have one "
        f"effective dimension"
    )
    return figures


MENGHANI_PART4 = (
    "Menghani 2021, High-Performance Deep Learning Part 4 (Bayesian optimization); benchmarks "
    "of Snoek, Larochelle, Adams 2012, Practical Bayesian Optimization (NIPS), section 4.1"
)
#: The issue's goals for the kit's BO, reported beside the verdict: a regret no worse than
#: scikit-optimize's and Optuna's, and no more seconds per suggestion than Optuna's GPSampler.
#: Expected seconds on 2 cores: 5 seeds x 2 functions x 50 evaluations for each of four
#: methods; gp_minimize (about 0.6 s per suggestion, more as the points grow) dominates.
COST_BO_VS_RANDOM = 600.0


@claim(
    "bo-vs-random",
    source=MENGHANI_PART4,
    statement="Bayesian optimization improves over random search: the search is guided, so "
    "fewer trials are required to reach the optimum",
    # Read as: after the same number of evaluations, BO's best is closer to the optimum than
    # random search's on at least half of the runs (a share of 1 would be "always").
    published={"bo_wins_share": 0.5},
    verdict=within_range(0.5, 1.0, close=0.2),
    cost_seconds=COST_BO_VS_RANDOM,
)
def measure_bo_vs_random() -> dict:
    rows = compare(verbose=True)
    table = compare_summary(rows)
    last = max(CHECKPOINTS)
    final = {(r["benchmark"], r["method"], r["seed"]): r["regret"][last - 1] for r in rows}
    runs = [(b, s) for b in BENCHMARKS for s in BO_SEEDS]
    wins = sum(final[(b, "kit-bo", s)] < final[(b, "random", s)] for b, s in runs) / len(runs)
    figures: dict = {"bo_wins_share": wins}
    for bench, methods in table.items():
        for method, entry in methods.items():
            key = f"{bench}_{method.replace('-', '_')}"
            for k in CHECKPOINTS:
                figures[f"{key}_regret{k}"] = entry[f"regret@{k}"]
            figures[f"{key}_s_per_suggestion"] = entry["seconds_per_suggestion"]
    goals = []
    for bench, methods in table.items():
        kit = methods["kit-bo"][f"regret@{last}"]
        peers = [methods[m][f"regret@{last}"] for m in ("skopt-gp", "optuna-gp")]
        goals.append(f"{bench} regret {'met' if kit <= min(peers) else 'not met'}")
        faster = methods["kit-bo"]["seconds_per_suggestion"]
        faster = faster <= methods["optuna-gp"]["seconds_per_suggestion"]
        goals.append(f"{bench} speed {'met' if faster else 'not met'}")
    lines = []
    for bench, methods in table.items():
        cells = ", ".join(
            f"{m} {e['regret@30']:.2g} / {e[f'regret@{last}']:.2g} "
            f"({e['seconds_per_suggestion']:.3f} s)"
            for m, e in methods.items()
        )
        lines.append(f"{bench}: {cells}")
    figures["note"] = (
        f"median regret after 30 / {last} evaluations over {len(BO_SEEDS)} seeds, and the median "
        f"seconds per suggestion, every method in this run, model-based ones from {N_INITIAL} "
        f"random points: " + "; ".join(lines) + f". BO beats random search after {last} "
        f"evaluations on {wins:.0%} of the {len(runs)} runs. The issue's goals (the kit's "
        f"regret no worse than scikit-optimize's and Optuna's, no more seconds per suggestion "
        f"than Optuna's): " + ", ".join(goals) + ". Seconds move by tens of percent with the "
        "load of this shared machine; compare them within a run"
    )
    return figures


# --------------------------------------------------------------------------- lesson 11

LI_2018 = (
    "Li, Jamieson, DeSalvo, Rostamizadeh, Talwalkar 2018, Hyperband: A Novel Bandit-Based "
    "Approach to Hyperparameter Optimization (JMLR 18), abstract and section 1"
)
#: Expected seconds: 20 Hyperband runs and their random-search twins, by table lookup.
COST_HYPERBAND = 10.0


@claim(
    "hyperband",
    source=LI_2018,
    statement="Hyperband is 5x to 30x faster than popular Bayesian optimization algorithms and "
    "gives over an order-of-magnitude speed-up over its competitors",
    published={"speedup": 5.0},
    # The published range is 5x to 30x; at least half of its lower end is close.
    verdict=within_range(5.0, 30.0, close=0.5),
    cost_seconds=COST_HYPERBAND,
)
def measure_hyperband() -> dict:
    table = load_curves()
    rows = hyperband_vs_random(table)
    matched = [r for r in rows if r["speedup"] is not None]
    figures = {
        "speedup": summary(rows, "speedup"),
        "matched_share": len(matched) / len(rows),
        "hyperband_best": summary(rows, "hyperband_best"),
        "random_best": summary(rows, "random_best"),
        "hyperband_epochs": summary(rows, "hyperband_epochs"),
    }
    figures["note"] = (
        f"the shipped table of {len(table['configs'])} real learning curves of the mnist1d CNN "
        f"({table['epochs']} epochs each, lr, weight decay and width drawn from lesson 09's "
        f"space), {len(rows)} seeds, eta 3: Hyperband spends a median "
        f"{figures['hyperband_epochs']:.0f} epochs; random search trains as many "
        f"configurations to {table['epochs']} epochs as that budget allows. Speed-up = random "
        f"search's epochs / the epochs Hyperband needed to match random search's best, median "
        f"{figures['speedup']:.1f}x over the {len(matched)} seeds where Hyperband matched it "
        f"({figures['matched_share']:.0%}). Median best validation error: Hyperband "
        f"{figures['hyperband_best']:.1f}%, random search {figures['random_best']:.1f}%. The "
        f"paper's 5x-30x is against Bayesian optimisation on larger problems with resources up "
        f"to hundreds of units (its R); here R = {table['epochs']} epochs limits the brackets "
        f"to four, and the comparison is with random search"
    )
    return figures


GOLOVIN_2017 = (
    "Golovin, Solnik, Moitra, Kochanski, Karro, Sculley 2017, Google Vizier: A Service for "
    "Black-Box Optimization (KDD), sections 3.2.2 and 4.4.2"
)
#: Expected seconds: 20 runs of 27 trials looked up in the table.
COST_MEDIAN_STOP = 5.0


@claim(
    "median-stop",
    source=GOLOVIN_2017,
    statement="the median stopping rule (stop a trial whose best value so far is worse than "
    "the median of the completed trials' running averages) speeds up a random search 2-3x, "
    "and the best trial is always found",
    published={"saving": 2.0, "best_survived_share": 1.0},
    # Both halves of the claim are judged: the speed-up spans 2x to 3x (1.5x, a quarter below,
    # is still close), and "always found" is a share of 1 (at least 0.9 is close).
    verdict=per_figure(
        {
            "saving": within_range(2.0, 3.0, close=0.25),
            "best_survived_share": within_range(1.0, 1.0, close=0.1),
        }
    ),
    cost_seconds=COST_MEDIAN_STOP,
)
def measure_median_stop() -> dict:
    table = load_curves()
    rows = median_stop_runs(table)
    survived = sum(r["best_survived"] for r in rows)
    figures = {
        "saving": summary(rows, "saving"),
        "best_survived_share": survived / len(rows),
        "best_full": summary(rows, "best_full"),
        "best_stopped": summary(rows, "best_stopped"),
    }
    figures["note"] = (
        f"random search of 27 configurations drawn from the shipped table of "
        f"{len(table['configs'])} mnist1d CNN learning curves ({table['epochs']} epochs), "
        f"{len(rows)} seeds, trained one after another with and without Vizier's median rule: "
        f"a median {figures['saving']:.2f}x fewer epochs; the best configuration of the full "
        f"run survived on {survived} of {len(rows)} seeds (median best error "
        f"{figures['best_stopped']:.1f}% with the rule against {figures['best_full']:.1f}% "
        f"without). Vizier reports its 2-3x on its own workloads; the saving here depends on how "
        f"early bad curves separate from good ones"
    )
    return figures
