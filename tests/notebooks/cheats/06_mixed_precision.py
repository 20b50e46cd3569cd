"""One-call answers to lesson 06's exercises, keyed by solution-cell grade_id.

The first calls the kit's underflow_fraction; the second wraps torch.amp.GradScaler; the third
reads the answer off the kit's sweep. The lesson's grade cells must fail on every one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-underflow": """def underflow_fraction(t, dtype):
    ### BEGIN SOLUTION
    return M.underflow_fraction(t, dtype)
    ### END SOLUTION
""",
    "ex2-loss-scaler": """class MyLossScaler:
    ### BEGIN SOLUTION
    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000):
        self._inner = torch.amp.GradScaler(
            "cpu", init_scale=init_scale, growth_factor=growth_factor,
            backoff_factor=backoff_factor, growth_interval=growth_interval,
        )

    @property
    def scale(self):
        return self._inner.get_scale()

    def step(self, optimizer):
        before = self._inner.get_scale()
        self._inner.step(optimizer)
        self._inner.update()
        return self._inner.get_scale() >= before
    ### END SOLUTION
""",
    "ex3-loss-scale": """def pick_loss_scale(grads, max_exponent=24, percent=1.0):
    ### BEGIN SOLUTION
    return E.smallest_safe_exponent(E.scale_sweep(grads, range(max_exponent + 1)), percent)
    ### END SOLUTION


SCALE_EXPONENT = pick_loss_scale(grads)
BF16_NEEDS_SCALING = E.scale_sweep(grads, [0])[0]["bf16_underflow"] >= 1.0
""",
}
