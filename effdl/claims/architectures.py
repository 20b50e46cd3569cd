"""Ledger claims of the efficient-architectures pillar (lessons 01 and 02)."""

from __future__ import annotations

from effdl.claims.registry import claim, exact
from effdl.models.conv import fc_vs_conv_params


@claim(
    "fc-vs-conv",
    source="000 Efficient Architectures",
    statement="a 100x100x3 input: each FC neuron has 30,000 connections, a 5x5 filter 75 params",
    published={"fc_connections": 30_000, "conv_params": 75},
    verdict=exact(),
)
def measure_fc_vs_conv() -> dict:
    return fc_vs_conv_params((100, 100, 3), kernel_size=5)
