"""One-call answers to lesson 08's exercises, keyed by solution-cell grade_id.

The first calls the kit's bubble_fraction; the second the kit's data_parallel_step; the third
reads the kit's scaling_summary. The lesson's grade cells must fail on every one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-bubble-fraction": """def bubble_fraction(stages, micro_batches):
    ### BEGIN SOLUTION
    return M.bubble_fraction(stages, micro_batches)
    ### END SOLUTION
""",
    "ex2-data-parallel-step": """def data_parallel_step(model, x, y, workers, lr):
    ### BEGIN SOLUTION
    return D.data_parallel_step(model, x, y, workers, lr)
    ### END SOLUTION
""",
    "ex3-scaling-rule": """def read_scaling(rows):
    ### BEGIN SOLUTION
    s = X.scaling_summary(rows)
    return s["first_fixed_worse"], s["holds"]["linear+warmup"]
    ### END SOLUTION


FIRST_WORSE, HOLDS = read_scaling(scaling)
""",
}
