"""One-call answers to lesson 07's exercises, keyed by solution-cell grade_id.

The first calls the kit's apply_masks_; the second the kit's sparse_phase; the third reads the
kit's summary. The lesson's grade cells must fail on every one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-apply-masks": """def apply_masks(model, masks):
    ### BEGIN SOLUTION
    return D.apply_masks_(model, masks)
    ### END SOLUTION
""",
    "ex2-sparse-phase": """def sparse_phase(model, masks, batches, optimizer):
    ### BEGIN SOLUTION
    return D.sparse_phase(model, masks, batches, optimizer)[0]
    ### END SOLUTION
""",
    "ex3-dsd-gain": """def read_gain(rows):
    ### BEGIN SOLUTION
    s = X.dsd_summary(rows)
    return s["gain"], s["gain_std"], s["significant"]
    ### END SOLUTION


GAIN, GAIN_STD, SIGNIFICANT = read_gain(rows)
""",
}
