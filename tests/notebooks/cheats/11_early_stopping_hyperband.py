"""One-call answers to lesson 11's exercises, keyed by solution-cell grade_id.

The first calls the kit's stop_epoch; the second the kit's successive halving (through
halving_rungs' engine); the third re-runs the kit's bracket experiment. The lesson's grade cells
must fail on every one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-stop-epoch": """def stop_epoch(losses, patience, min_delta=0.0):
    ### BEGIN SOLUTION
    return E.stop_epoch(losses, patience, min_delta)
    ### END SOLUTION
""",
    "ex2-successive-halving": """def successive_halving(curves, n, r_min, eta):
    ### BEGIN SOLUTION
    run = X.halving_rungs(curves, n, r_min, eta)
    return [(r, list(ids)) for r, ids in run["rungs"]], run["spent"]
    ### END SOLUTION
""",
    "ex3-brackets": """def read_brackets(rows):
    ### BEGIN SOLUTION
    fresh = X.bracket_runs(table, draws=20, seed=SEED)
    out = {}
    for r in fresh:
        dropped, epochs = out.get(r["r_min"], (0, r["epochs"]))
        out[r["r_min"]] = (dropped + bool(r["dropped_best"]), r["epochs"])
    return out
    ### END SOLUTION


BRACKETS = read_brackets(rows)
""",
}
