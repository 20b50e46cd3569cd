"""forbid / run_blocked: the one-call answer fails in a grade cell, a from-scratch one passes."""

import math
import textwrap

import pytest
import torch
from torch.nn import functional as F

import effdl.measure
from effdl.course.grading import forbid, run_blocked
from effdl.measure import pareto_front

SDPA = F.scaled_dot_product_attention

SETUP = """
import math
import torch
from torch.nn import functional as F
from torch.nn.functional import scaled_dot_product_attention
"""

SCRATCH = """
def attend(q, k, v):
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return w @ v
"""

# Each one passes the numbers but reaches the oracle by another route.
CHEATS = {
    "imported name": """
def attend(q, k, v):
    return scaled_dot_product_attention(q, k, v)
""",
    "module attribute": """
def attend(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)
""",
    "torch.nn.functional": """
def attend(q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)
""",
    "in-function import": """
def attend(q, k, v):
    from torch.nn.functional import scaled_dot_product_attention as s
    return s(q, k, v)
""",
    "alias made before": """
sdpa = F.scaled_dot_product_attention
def attend(q, k, v):
    return sdpa(q, k, v)
""",
    "default argument": """
def attend(q, k, v, fn=F.scaled_dot_product_attention):
    return fn(q, k, v)
""",
    "keyword-only default": """
def attend(q, k, v, *, fn=F.scaled_dot_product_attention):
    return fn(q, k, v)
""",
    "closure": """
def make():
    fn = F.scaled_dot_product_attention
    def attend(q, k, v):
        return fn(q, k, v)
    return attend
attend = make()
""",
    "helper with a closure": """
def make():
    fn = F.scaled_dot_product_attention
    def helper(q, k, v):
        return fn(q, k, v)
    return helper
def attend(q, k, v, helper=make()):
    return helper(q, k, v)
""",
    "caught and recomputed": """
def attend(q, k, v):
    try:
        F.scaled_dot_product_attention(q, k, v)
    except AssertionError:
        pass
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return w @ v
""",
}


def _notebook(solution: str) -> dict:
    namespace = {"__name__": "__main__"}
    exec(SETUP + textwrap.dedent(solution), namespace)
    return namespace


def _qkv():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, 5, 8, generator=g) for _ in range(3)]


def test_scratch_solution_passes_and_matches_the_oracle():
    ns = _notebook(SCRATCH)
    q, k, v = _qkv()
    expected = SDPA(q, k, v)
    with forbid(SDPA, namespace=ns):
        mine = ns["attend"](q, k, v)
    torch.testing.assert_close(mine, expected)
    torch.testing.assert_close(
        run_blocked(ns["attend"], q, k, v, oracles=[SDPA], namespace=ns), expected
    )


@pytest.mark.parametrize("route", sorted(CHEATS))
def test_every_route_to_the_oracle_fails(route):
    ns = _notebook(CHEATS[route])
    q, k, v = _qkv()
    torch.testing.assert_close(ns["attend"](q, k, v), SDPA(q, k, v))  # unblocked, it works
    with pytest.raises(AssertionError, match="is blocked in this exercise"):
        with forbid(SDPA, namespace=ns):
            ns["attend"](q, k, v)
    with pytest.raises(AssertionError, match="is blocked in this exercise"):
        run_blocked(ns["attend"], q, k, v, oracles=[SDPA], namespace=ns)


def test_effdl_reexports_are_blocked_too():
    ns = {"__name__": "__main__"}
    exec("import effdl\ndef front(p, o):\n    return effdl.measure.pareto_front(p, o)", ns)
    points, objectives = [{"a": 1}, {"a": 2}], {"a": "min"}
    assert ns["front"](points, objectives) == [0]
    with pytest.raises(AssertionError, match="pareto_front is blocked"):
        run_blocked(ns["front"], points, objectives, oracles=[pareto_front], namespace=ns)


def test_defaults_are_refused_before_anything_runs():
    ns = _notebook(CHEATS["default argument"])
    with pytest.raises(AssertionError, match="attend holds .*scaled_dot_product_attention"):
        with forbid(SDPA, namespace=ns):
            pytest.fail("the body must not run")


def test_everything_is_restored_after_the_with_and_after_an_error():
    ns = _notebook(CHEATS["alias made before"])
    before = {
        "F": F.scaled_dot_product_attention,
        "C": torch._C._nn.scaled_dot_product_attention,
        "measure": effdl.measure.pareto_front,
        "top": effdl.pareto_front,
    }
    for raise_inside in (False, True):
        with pytest.raises(ZeroDivisionError) if raise_inside else _nothing():
            with forbid(SDPA, pareto_front, namespace=ns):
                assert F.scaled_dot_product_attention is not SDPA
                assert effdl.measure.pareto_front is not pareto_front
                assert ns["sdpa"] is not SDPA
                ns["made_inside"] = 1
                if raise_inside:
                    raise ZeroDivisionError("raised inside the with")
        assert F.scaled_dot_product_attention is before["F"] is SDPA
        assert torch._C._nn.scaled_dot_product_attention is before["C"]
        assert effdl.measure.pareto_front is before["measure"] is pareto_front
        assert effdl.pareto_front is before["top"]
        assert ns["sdpa"] is SDPA and ns["scaled_dot_product_attention"] is SDPA
        assert ns.pop("made_inside") == 1  # unlike patch.dict, names bound inside survive
    assert math.isclose(SDPA(*[torch.ones(1, 1, 1)] * 3).item(), 1.0)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_bad_arguments():
    with pytest.raises(TypeError, match="oracles"):
        with forbid():
            pass
    with pytest.raises(TypeError, match="oracles"):
        with forbid("F.scaled_dot_product_attention"):
            pass
    with pytest.raises(TypeError, match="namespace"):
        with forbid(SDPA, namespace=[1]):
            pass


def test_in_a_real_jupyter_kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    grade = textwrap.dedent("""
        from effdl.course.grading import forbid
        q, k, v = (torch.randn(1, 4, 8) for _ in range(3))
        expected = F.scaled_dot_product_attention(q, k, v)
        with forbid(F.scaled_dot_product_attention, namespace=globals()):
            mine = attend(q, k, v)
        assert torch.allclose(mine, expected, atol=1e-6)
        print("passed")
    """)
    cells = [SETUP, SCRATCH, grade, CHEATS["alias made before"], grade, CHEATS["closure"], grade]
    cells += ["assert F.scaled_dot_product_attention is scaled_dot_product_attention is sdpa"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    errors = [next((o for o in c.outputs if o.output_type == "error"), None) for c in nb.cells]
    assert [e and e.ename for e in errors] == [None] * 3 + [None, "AssertionError"] * 2 + [None]
    assert "passed" in nb.cells[2].outputs[0].text
    assert "is blocked in this exercise" in errors[4].evalue
