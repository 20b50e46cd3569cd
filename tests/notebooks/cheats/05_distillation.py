"""One-call answers to lesson 05's exercises, keyed by solution-cell grade_id.

The first two define the exercise's function by calling torch's softmax or the kit's
distillation loss; the third is the naive reading of the sweep (one run per temperature, the
last seed read, instead of the mean over seeds). The lesson's grade cells must fail on every
one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-soft-targets": """def soft_targets(logits, T):
    ### BEGIN SOLUTION
    return F.softmax(logits / T, dim=-1)
    ### END SOLUTION
""",
    "ex2-distill-loss": """def distill_loss(student_logits, teacher_logits, target, T, alpha):
    ### BEGIN SOLUTION
    return D.distillation_loss(student_logits, teacher_logits, target, T=T, alpha=alpha)
    ### END SOLUTION
""",
    "ex3-best-temperature": """def read_sweep(rows):
    ### BEGIN SOLUTION
    last = {r["T"]: r["accuracy"] for r in rows}
    alone = last.pop(None)
    return alone, last, max(last, key=last.get)
    ### END SOLUTION


ALONE, DISTILLED, BEST_T = read_sweep(sweep_rows)
print(f"alone {ALONE:.1f}%, distilled {DISTILLED}, best T = {BEST_T}")
""",
}
