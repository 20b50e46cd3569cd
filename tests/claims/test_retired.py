"""Checks that hold by construction: retired from the ledger, kept as tests."""

import torch
from torch import nn

from effdl.measure import sequential_steps
from effdl.models.attention import MultiHeadAttention
from effdl.models.conv import fc_vs_conv_params
from effdl.models.transformer import SelfAttention, StepwiseGRU


def test_fc_vs_conv_counts_of_the_efficient_architectures_lecture():
    # A 100x100x3 image: one fully connected neuron has 30,000 weights, a 5x5 filter 75.
    counts = fc_vs_conv_params((100, 100, 3), 5)
    assert counts["fc_connections"] == 30_000
    assert counts["conv_params"] == 75
    assert counts["ratio"] == 400


def test_self_attention_takes_one_sequential_step_and_a_gru_n():
    # Vaswani et al. 2017, Table 1: O(1) vs O(n) sequential operations.
    n, width = 37, 16
    x = torch.randn(1, n, width, generator=torch.Generator().manual_seed(0))
    gru = StepwiseGRU.from_torch(nn.GRU(width, width, batch_first=True))
    assert sequential_steps(SelfAttention(width, 4), x, MultiHeadAttention) == 1
    assert sequential_steps(gru, x, nn.GRUCell) == n
