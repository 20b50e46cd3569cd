"""One-call answers to lesson 04's exercises, keyed by solution-cell grade_id.

The first two define the exercise's function by calling the kit's own
(`lowrank.break_even_rank`, `prune.magnitude_mask`); the third takes the three accuracies
and the winner from the kit's `budget_comparison`. The lesson's grade cells must fail on
every one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-break-even-rank": """def break_even_rank(m, n):
    ### BEGIN SOLUTION
    return lowrank.break_even_rank(m, n)
    ### END SOLUTION
""",
    "ex2-magnitude-mask": """def magnitude_mask(weight, sparsity):
    ### BEGIN SOLUTION
    return prune.magnitude_mask(weight, sparsity)
    ### END SOLUTION
""",
    "ex3-budget": """def compare_at_budget(model, splits, budget_fraction=0.25):
    ### BEGIN SOLUTION
    kit = budget_comparison(budget_fraction, seed=SEED, model=model, splits=splits)
    out = {
        m: {"accuracy": kit[f"{m}_accuracy"], "bytes": kit[f"{m}_bytes"]}
        for m in ("pruning", "sharing", "lowrank")
    }
    out["winner"] = kit["winner"]
    return out
    ### END SOLUTION


BUDGET = compare_at_budget(model, splits)
for method in ("pruning", "sharing", "lowrank"):
    print(f"{method:8s}: {BUDGET[method]['accuracy']:5.1f}% in {BUDGET[method]['bytes']:,d} bytes")
print("winner:", BUDGET["winner"])
""",
}
