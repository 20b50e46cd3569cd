"""One-call answers to lesson 01's exercises, keyed by solution-cell grade_id.

Each defines the exercise's function by calling the kit or torch instead of working from the
layer shapes (or, for the experiment, by the alpha^2 rho^2 law instead of measuring); the
lesson's grade cells must fail on every one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-conv-params": """def conv_params(in_ch, out_ch, kernel, groups=1, bias=False):
    ### BEGIN SOLUTION
    return count_params(nn.Conv2d(in_ch, out_ch, kernel, groups=groups, bias=bias))
    ### END SOLUTION
""",
    "ex2-mobilenet-madds": """def mobilenet_v1_madds(alpha, resolution):
    ### BEGIN SOLUTION
    return count_macs(mobilenet_v1(alpha=alpha), (1, 3, resolution, resolution))
    ### END SOLUTION
""",
    "ex3-madds-budget": """def most_params_under(budget_madds, alphas, resolutions):
    ### BEGIN SOLUTION
    fits = [
        (a, r)
        for a in alphas
        for r in resolutions
        if 568_740_352 * a**2 * (r / 224) ** 2 <= budget_madds
    ]
    return max(fits) if fits else None
    ### END SOLUTION
""",
}
