"""The compression claims (int8-size, int8-speed) and the range rule that judges int8-speed."""

import pytest

from effdl.claims import REGISTRY
from effdl.claims import compression as compression_claims
from effdl.claims.registry import within_range
from effdl.claims.runner import run_claim, select


def test_within_range_judges_inside_near_and_far():
    rule = within_range(2.0, 4.0, close=0.2)
    published = {"speedup": 3.0}
    assert rule(published, {"speedup": 2.0}).verdict == "reproduced"
    assert rule(published, {"speedup": 4.0}).verdict == "reproduced"
    assert rule(published, {"speedup": 3.7}).verdict == "reproduced"
    # 20% outside either end: 1.6..2 and 4..4.8 are close
    assert rule(published, {"speedup": 4.7}).verdict == "close"
    assert rule(published, {"speedup": 1.7}).verdict == "close"
    far = rule(published, {"speedup": 10.9})
    assert far.verdict == "differs" and "10.9, range 2..4" in far.reason
    assert rule(published, {"speedup": 1.5}).verdict == "differs"
    assert rule(published, {}).verdict == "differs"  # not measured


def test_within_range_refuses_bad_ranges_and_published_figures_outside():
    with pytest.raises(ValueError, match="0 < low <= high"):
        within_range(4.0, 2.0)
    with pytest.raises(ValueError, match="0 < low <= high"):
        within_range(0.0, 2.0)
    with pytest.raises(ValueError, match="outside it"):
        within_range(2.0, 4.0)({"speedup": 5.0}, {"speedup": 3.0})


def test_int8_claims_are_registered_with_pytorchs_figures():
    select()
    size, speed = REGISTRY["int8-size"], REGISTRY["int8-speed"]
    for entry in (size, speed):
        assert entry.source.startswith(
            "PyTorch documentation, Quantization, Introduction to Quantization"
        )
        assert entry.quick
    assert size.published == {"size_ratio": 4.0}
    assert "4x reduction in the model size" in size.statement
    assert speed.published == {"speedup": 3.0}
    assert "2 to 4 times faster" in speed.statement


def test_int8_size_rule_allows_five_percent():
    rule, published = REGISTRY["int8-size"].verdict, {"size_ratio": 4.0}
    assert rule(published, {"size_ratio": 3.995}).verdict == "reproduced"
    assert rule(published, {"size_ratio": 3.85}).verdict == "reproduced"
    assert rule(published, {"size_ratio": 3.5}).verdict == "close"
    assert rule(published, {"size_ratio": 2.2}).verdict == "differs"


def test_int8_size_claim_accounts_for_the_bytes_beyond_one_per_weight():
    result = run_claim(REGISTRY["int8-size"])
    measured = result.measured
    assert result.verdict == "reproduced"
    assert measured["weight_count"] == 1024 * 4096 + 4096 * 4096 + 4096 * 1024
    assert measured["bias_count"] == 4096 + 4096 + 1024
    assert measured["int8_overhead_bytes"] == measured["int8_bytes"] - measured["weight_count"]
    # float32 biases are most of the overhead; the rest (qparams, headers) is a few KB
    assert 4 * measured["bias_count"] < measured["int8_overhead_bytes"]
    assert measured["int8_overhead_bytes"] - 4 * measured["bias_count"] < 20_000
    # fp32: four bytes a parameter plus a small header
    params = measured["weight_count"] + measured["bias_count"]
    assert 0 < measured["fp32_bytes"] - 4 * params < 20_000
    assert "36,864 of float32 biases" in result.reason


FAKE_SPEED = {
    "fp32_ms": 60.0,
    "int8_ms": 20.0,
    "speedup": 3.0,
    "kit_linear_ms": 20.0,
    "torch_int8_linear_ms": 10.0,
    "kit_vs_torch": 2.0,
}


def test_int8_speed_row_reports_the_issue_targets(monkeypatch):
    monkeypatch.setattr(compression_claims, "int8_speed", lambda: dict(FAKE_SPEED))
    result = run_claim(REGISTRY["int8-speed"])
    assert result.verdict == "reproduced"
    assert result.measured["kit_vs_torch"] == 2.0
    assert "target is >= 2.5x: met" in result.reason
    assert "target within 1.5x: not met" in result.reason
    assert "batch 64, 2 threads" in result.reason and "ARM" in result.reason

    slow = {**FAKE_SPEED, "int8_ms": 30.0, "speedup": 2.0, "kit_vs_torch": 1.2}
    monkeypatch.setattr(compression_claims, "int8_speed", lambda: dict(slow))
    result = run_claim(REGISTRY["int8-speed"])
    assert result.verdict == "reproduced"
    assert "target is >= 2.5x: not met" in result.reason
    assert "target within 1.5x: met" in result.reason
