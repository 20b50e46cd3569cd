"""Search spaces, grid and random search: sampling distributions, the unit-cube round trip,
Cartesian order, the source's 2x2 example, and the reproducibility of random search."""

import math

import numpy as np
import pytest
from sklearn.model_selection import ParameterGrid

from effdl.hpo.grid import GridSampler, grid, grid_size
from effdl.hpo.random_search import RandomSampler, best_of, random_search
from effdl.hpo.space import Categorical, Float, Int, check_params, from_unit, sample, to_unit

SPACE = {
    "lr": Float(1e-4, 1e-1, log=True),
    "width": Int(16, 256, log=True),
    "depth": Int(1, 4),
    "act": Categorical(("relu", "tanh", "gelu")),
    "dropout": Float(0.0, 0.5),
}


def test_log_uniform_draws_put_half_below_the_geometric_midpoint():
    rng = np.random.default_rng(0)
    dim = Float(1e-4, 1e-1, log=True)
    draws = np.array([dim.sample(rng) for _ in range(4000)])
    assert abs(np.mean(draws < math.sqrt(1e-4 * 1e-1)) - 0.5) < 0.03
    # each of the three decades gets a third of the draws
    for lo in (1e-4, 1e-3, 1e-2):
        assert abs(np.mean((draws >= lo) & (draws < 10 * lo)) - 1 / 3) < 0.03
    assert draws.min() >= 1e-4 and draws.max() <= 1e-1


def test_integers_and_categories_are_uniform_with_their_ends_included():
    rng = np.random.default_rng(1)
    counts = np.bincount([Int(0, 3).sample(rng) for _ in range(8000)], minlength=4)
    assert np.all(np.abs(counts / 8000 - 0.25) < 0.02), counts
    picks = [Categorical(("a", "b", "c")).sample(rng) for _ in range(6000)]
    assert all(abs(picks.count(c) / 6000 - 1 / 3) < 0.025 for c in "abc")
    logs = [Int(1, 8, log=True).sample(rng) for _ in range(8000)]
    assert set(logs) == set(range(1, 9)) and logs.count(1) > logs.count(8)


def test_unit_cube_round_trip():
    rng = np.random.default_rng(2)
    for _ in range(200):
        point = sample(SPACE, rng)
        u = to_unit(SPACE, point)
        assert u.shape == (5,) and np.all((u >= 0) & (u <= 1))
        back = from_unit(SPACE, u)
        assert {k: back[k] for k in ("width", "depth", "act")} == {
            k: point[k] for k in ("width", "depth", "act")
        }
        assert back["lr"] == pytest.approx(point["lr"], rel=1e-12)
        assert back["dropout"] == pytest.approx(point["dropout"], abs=1e-12)
    # every cell of the unit interval maps to its own integer or category
    assert [Int(0, 3).from_unit(u) for u in (0.0, 0.24, 0.26, 0.74, 0.76, 1.0)] == [
        0,
        0,
        1,
        2,
        3,
        3,
    ]
    assert (
        Categorical(("a", "b")).from_unit(0.5) == "b"
        and Categorical(("a", "b")).to_unit("a") == 0.25
    )
    assert Float(1e-3, 1e-1, log=True).to_unit(1e-2) == pytest.approx(0.5)


def test_grid_is_cartesian_like_sklearns_parameter_grid_and_counts_the_product():
    # The source's example: learning rate {0.01, 0.05} by decay {0.1, 0.2} is 4 trials.
    two_by_two = {"lr": Categorical((0.01, 0.05)), "decay": Categorical((0.1, 0.2))}
    assert grid(two_by_two) == [
        {"lr": 0.01, "decay": 0.1},
        {"lr": 0.01, "decay": 0.2},
        {"lr": 0.05, "decay": 0.1},
        {"lr": 0.05, "decay": 0.2},
    ]
    assert grid_size(two_by_two) == 4
    points = grid(SPACE, per_axis=3)
    assert len(points) == grid_size(SPACE, 3) == 3 * 3 * 3 * 3 * 3
    assert points[0] == {"lr": 1e-4, "width": 16, "depth": 1, "act": "relu", "dropout": 0.0}
    assert points[1]["dropout"] == 0.25 and points[3]["act"] == "tanh"  # last axis fastest
    # the same points as scikit-learn's ParameterGrid over the same value lists
    lists = {name: dim.grid(3) for name, dim in SPACE.items()}
    assert sorted(map(repr, points)) == sorted(
        repr({k: p[k] for k in SPACE}) for p in ParameterGrid(lists)
    )
    assert Float(1e-3, 1e-1, log=True).grid(3) == pytest.approx([1e-3, 1e-2, 1e-1])
    assert Int(0, 3).grid(10) == [0, 1, 2, 3] and Int(16, 256, log=True).grid(5) == [
        16,
        32,
        64,
        128,
        256,
    ]


class _Trial:
    def __init__(self, params, state="complete", error=None):
        self.params, self.state, self.error = params, state, error


def test_grid_sampler_skips_asked_points_but_asks_interrupted_ones_again():
    space = {"a": Categorical((1, 2)), "b": Categorical(("x", "y"))}
    sampler, rng = GridSampler(), np.random.default_rng(0)
    trials = []
    for _ in range(4):
        trials.append(_Trial(sampler.suggest(space, trials, rng)))
    assert [t.params for t in trials] == grid(space)
    assert sampler.suggest(space, trials, rng) is None
    trials[1] = _Trial(trials[1].params, "failed", "interrupted: the process stopped")
    assert sampler.suggest(space, trials, rng) == {"a": 1, "b": "y"}
    trials[1] = _Trial(trials[1].params, "failed", "ValueError: diverged")
    assert sampler.suggest(space, trials, rng) is None  # a real failure is not retried


def test_random_search_is_reproducible_and_finds_the_best():
    def objective(p):
        return (math.log10(p["lr"]) + 2) ** 2 + (p["act"] != "tanh")

    first = random_search(objective, SPACE, 50, np.random.default_rng(7))
    again = random_search(objective, SPACE, 50, np.random.default_rng(7))
    assert first == again and len(first) == 50
    params, value = best_of(first)
    assert value == min(v for _, v in first) and params["act"] == "tanh"
    assert len({p["lr"] for p, _ in first}) == 50  # every trial tries a new learning rate
    other = random_search(objective, SPACE, 50, np.random.default_rng(8))
    assert other != first
    assert RandomSampler().suggest(SPACE, [], np.random.default_rng(7)) == first[0][0]


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Categorical(()), ValueError, "choices must not be empty"),
        (lambda: Categorical(("a", "a")), ValueError, "distinct"),
        (lambda: Float(1.0, 1.0), ValueError, r"low < high, got low=1.0, high=1.0"),
        (lambda: Int(5, 2), ValueError, "low < high"),
        (lambda: Float(0.0, 1.0, log=True), ValueError, r"log=True needs low > 0, got low=0.0"),
        (lambda: Int(0, 8, log=True), ValueError, "log=True needs low > 0"),
        (lambda: Int(0.5, 2), TypeError, "Int low must be an int"),
        (lambda: Float(0.0, math.inf), ValueError, "high must be finite"),
        (lambda: grid({}), ValueError, "at least one dimension"),
        (
            lambda: grid({"a": [1, 2]}),
            TypeError,
            r"space\['a'\] must be a Float, Int or Categorical",
        ),
        (lambda: random_search(len, SPACE, 0, np.random.default_rng(0)), ValueError, "n must be"),
        (lambda: sample(SPACE, 0), TypeError, "rng must be a numpy.random.Generator"),
        (
            lambda: check_params({"a": Int(0, 3)}, {"a": 1, "b": 2}),
            ValueError,
            r"unknown names \['b'\]",
        ),
        (lambda: check_params({"a": Int(0, 3)}, {"a": 7}), ValueError, r"params\['a'\].*outside"),
    ],
)
def test_bad_input_names_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()
