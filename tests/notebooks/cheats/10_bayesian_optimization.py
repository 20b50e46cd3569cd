"""One-call answers to lesson 10's exercises, keyed by solution-cell grade_id.

The first calls the kit's expected_improvement; the second scikit-learn's
GaussianProcessRegressor; the third the kit's evaluations_needed. The lesson's grade cells must
fail on every one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-expected-improvement": """def expected_improvement(mu, sigma, best):
    ### BEGIN SOLUTION
    return B.expected_improvement(np.asarray(mu), np.asarray(sigma), best)
    ### END SOLUTION
""",
    "ex2-gp-posterior": """def gp_posterior(x_train, y_train, x_test, lengthscale, variance, noise):
    ### BEGIN SOLUTION
    gp = GaussianProcessRegressor(
        kernel=ConstantKernel(variance, "fixed") * RBF(lengthscale, "fixed"),
        alpha=noise,
        optimizer=None,
    ).fit(x_train, y_train)
    return gp.predict(x_test, return_std=True)
    ### END SOLUTION
""",
    "ex3-bo-vs-random": """def evaluations_needed(rows, target_regret):
    ### BEGIN SOLUTION
    return X.evaluations_needed(rows, target_regret)
    ### END SOLUTION


NEEDED = evaluations_needed(rows, 0.1)
""",
}
