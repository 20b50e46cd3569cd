import pytest

from effdl.claims import REGISTRY, Claim, claim, register, within
from effdl.claims.registry import QUICK_BUDGET_SECONDS, QUICK_SECONDS
from effdl.claims.runner import describe, format_costs, select


def _measure() -> dict:
    return {"x": 1.0}


@pytest.fixture
def scratch_registry():
    select()  # the real pillars first
    before = set(REGISTRY)
    yield
    for key in set(REGISTRY) - before:
        del REGISTRY[key]


def test_every_registered_claim_declares_a_positive_cost():
    select()
    for entry in REGISTRY.values():
        assert entry.cost_seconds is not None and entry.cost_seconds > 0, entry.id


def test_quick_keeps_only_cheap_claims_and_fits_the_budget():
    quick = select(quick=True)
    every = select()
    assert quick and len(quick) < len(every)
    assert all(c.cost_seconds <= QUICK_SECONDS for c in quick)
    assert {c.id for c in every} - {c.id for c in quick} == {
        c.id for c in every if c.cost_seconds > QUICK_SECONDS
    }
    assert "mnist1d-baselines" not in {c.id for c in quick}
    assert sum(c.cost_seconds for c in quick) < QUICK_BUDGET_SECONDS


def test_select_quick_uses_the_declared_cost(scratch_registry):
    register(Claim("cheap", "A 2020", "s", {"x": 1}, _measure, within(0.1), cost_seconds=2.0))
    register(Claim("dear", "A 2020", "s", {"x": 1}, _measure, within(0.1), cost_seconds=600.0))
    assert select(["cheap", "dear"], quick=True)[0].id == "cheap"
    assert [c.id for c in select(["cheap", "dear"], quick=True)] == ["cheap"]
    assert [c.id for c in select(["cheap", "dear"])] == ["cheap", "dear"]
    assert Claim("c", "A 2020", "s", {}, _measure, within(0.1), cost_seconds=30.0).quick
    assert not Claim("c", "A 2020", "s", {}, _measure, within(0.1), cost_seconds=30.5).quick


def test_a_claim_without_a_cost_is_refused(scratch_registry):
    with pytest.raises(ValueError, match="claim 'free' declares no cost_seconds"):

        @claim("free", source="A 2020", statement="s", published={"x": 1}, verdict=within(0.1))
        def measure_free() -> dict:
            return {"x": 1}

    assert "free" not in REGISTRY


@pytest.mark.parametrize("cost", [0, -1.0, float("inf"), float("nan"), True, "10"])
def test_a_bad_cost_is_refused(scratch_registry, cost):
    with pytest.raises(ValueError, match="cost_seconds of claim 'bad' must be a positive"):
        register(Claim("bad", "A 2020", "s", {"x": 1}, _measure, within(0.1), cost_seconds=cost))


def test_describe_and_format_costs_list_each_claim_with_its_cost():
    rows = describe()
    assert {r["id"] for r in rows} == set(REGISTRY)
    mnist = next(r for r in rows if r["id"] == "mnist1d-baselines")
    assert mnist["quick"] is False and mnist["cost_seconds"] > QUICK_SECONDS
    text = format_costs()
    assert "mnist1d-baselines" in text and "quick set" in text
    assert {r["id"] for r in describe(quick=True)} == {c.id for c in select(quick=True)}
