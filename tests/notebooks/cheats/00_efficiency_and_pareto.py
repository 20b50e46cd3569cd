"""One-call answers to lesson 00's exercises, keyed by solution-cell grade_id: each defines the
same function by calling the kit's oracle (`pareto_front`) or, for the storage exercise, the
naive weights-only answer; tests/notebooks/test_oracles_blocked.py checks that each fails its
grade cell."""

CHEATS: dict[str, str] = {
    "ex1-dominates": """def dominates(a, b, objectives):
    ### BEGIN SOLUTION
    return pareto_front([b, a], objectives) == [1]
    ### END SOLUTION
""",
    "ex2-pareto-front": """def my_pareto_front(points, objectives):
    ### BEGIN SOLUTION
    return pareto_front(points, objectives)
    ### END SOLUTION
""",
    "ex3-storage-budget": """def best_within(rows, budget_bytes, bits):
    ### BEGIN SOLUTION
    fits = [r for r in rows if r["params"] * bits / 8 <= budget_bytes]
    return max(fits, key=lambda r: r["accuracy"])["model"] if fits else None
    ### END SOLUTION


### BEGIN SOLUTION
CNN_BITS = max(b for b in range(1, 33) if best_within(e_rows[2:], 8192, b))
### END SOLUTION
""",
}
