"""One-call answers to lesson 09's exercises, keyed by solution-cell grade_id.

The first calls the kit's grid; the second the kit's random_search; the third reads the kit's
grid_vs_random_summary. The lesson's grade cells must fail on every one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-grid": """def grid(space):
    ### BEGIN SOLUTION
    return G.grid({name: Categorical(tuple(values)) for name, values in space.items()})
    ### END SOLUTION
""",
    "ex2-random-search": """def random_search(objective, space, n, rng):
    ### BEGIN SOLUTION
    return R.random_search(objective, space, n, rng)
    ### END SOLUTION
""",
    "ex3-grid-vs-random": """def read_search(rows):
    ### BEGIN SOLUTION
    s = X.grid_vs_random_summary(rows)
    return (s["grid_median"], s["random_median"], s["grid_distinct"], s["random_distinct"],
            s["random_median"] < s["grid_median"])
    ### END SOLUTION


ANSWER = read_search(rows)
""",
}
