"""Lesson 02, part 2: the Transformer against the recurrent baseline. `compare_with_gru` trains
both on mnist1d, `forward_time_vs_length` times and counts self-attention against a GRU (the
ledger claim `attention-parallel`, effdl/claims/attention.py, calls it), and
`next_token_experiment` trains a tiny GPT. All are called by
course/02_attention_and_transformers.ipynb. Start with `forward_time_vs_length`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from effdl._checks import check_positive_int
from effdl.data.splits import Splits
from effdl.experiments.attention import CLIP_NORM, token_loader
from effdl.experiments.foundations import (
    PAPER_BATCH_SIZE,
    PAPER_LR,
    ClassifierRun,
    train_each,
)
from effdl.measure import count_macs, count_params, cpu_latency, sequential_steps
from effdl.models.attention import MultiHeadAttention
from effdl.models.baselines import GRUNet
from effdl.models.transformer import SelfAttention, StepwiseGRU, TinyGPT, TransformerClassifier
from effdl.train import fit

#: Adam learning rate for the Transformer classifier. The GRU's 1e-2 trains it worse on
#: mnist1d, and this rate trains the GRU worse; `compare_with_gru(splits, transformer_lr=...,
#: gru_lr=...)` re-makes either comparison.
TRANSFORMER_LR = 3e-3


def compare_with_gru(
    splits: Splits,
    *,
    epochs: int = 20,
    batch_size: int = PAPER_BATCH_SIZE,
    transformer_lr: float = TRANSFORMER_LR,
    gru_lr: float = PAPER_LR,
    seed: int = 0,
    latency: bool = True,
    verbose: bool = True,
    **transformer_kwargs,
) -> dict[str, ClassifierRun]:
    """Return a `TransformerClassifier` and the `GRUNet` baseline trained for the same epochs
    and batch size, each at its own Adam learning rate, with test accuracy and footprint.

    The GRU keeps the mnist1d recipe's rate (1e-2); the Transformer gets `TRANSFORMER_LR`.
    `transformer_kwargs` go to `TransformerClassifier`. Both models are seeded by `seed`.

    Source: Greydanus 2020 (mnist1d GRU baseline and recipe); Vaswani et al. 2017 (the encoder).
    """
    loaders = splits.loaders(batch_size=batch_size, seed=seed)
    length = splits.sample_shape[-1]
    builders = {
        "transformer": (
            lambda: TransformerClassifier(length, splits.num_classes, **transformer_kwargs),
            transformer_lr,
        ),
        "gru": (lambda: GRUNet(length, num_classes=splits.num_classes), gru_lr),
    }
    return train_each(
        builders, splits, loaders, epochs=epochs, seed=seed, latency=latency, verbose=verbose
    )


@dataclass
class TimeVsLength:
    """Forward time, sequential steps and MACs of self-attention and a GRU at each length."""

    lengths: list[int]
    width: int
    threads: int
    attention_ms: list[float] = field(default_factory=list)
    rnn_ms: list[float] = field(default_factory=list)
    attention_steps: list[int] = field(default_factory=list)
    rnn_steps: list[int] = field(default_factory=list)
    attention_macs: list[int] = field(default_factory=list)
    rnn_macs: list[int] = field(default_factory=list)

    def growth(self) -> dict[str, float]:
        """Return each layer's time at the longest length over its time at the shortest."""
        return {
            "attention": self.attention_ms[-1] / self.attention_ms[0],
            "rnn": self.rnn_ms[-1] / self.rnn_ms[0],
        }


def forward_time_vs_length(
    lengths: Sequence[int] = (8, 32, 128, 512),
    *,
    width: int = 64,
    num_heads: int = 4,
    batch_size: int = 1,
    threads: int = 1,
    min_run_time: float = 0.1,
    seed: int = 0,
    verbose: bool = True,
) -> TimeVsLength:
    """Return the CPU time of one forward pass of a self-attention layer and of a GRU of the
    same width at each sequence length, with the sequential steps and MACs of each.

    Times come from `effdl.measure.cpu_latency` (torch.utils.benchmark) on torch's own
    `nn.GRU` (its fused loop) and our `MultiHeadAttention`, in one run so that their ratios are
    comparable. Steps are counted by `sequential_steps` on `SelfAttention` and on a
    `StepwiseGRU` holding the same GRU's weights. MACs by `effdl.measure.count_macs`: the
    layer costs of Table 1, n^2 d for attention and n d^2 for the recurrence.

    Source: Vaswani et al. 2017, "Attention Is All You Need", Table 1 and section 4.
    """
    lengths = sorted(int(n) for n in lengths)
    if not lengths or lengths[0] < 1:
        raise ValueError(f"lengths must be a non-empty list of positive ints, got {lengths}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        attention = SelfAttention(width, num_heads)
        gru = nn.GRU(width, width, batch_first=True)
    stepwise = StepwiseGRU.from_torch(gru)
    result = TimeVsLength(lengths=lengths, width=width, threads=threads)
    generator = torch.Generator().manual_seed(seed)
    for n in tqdm(lengths, desc="lengths", disable=not verbose):
        x = torch.randn(batch_size, n, width, generator=generator)
        result.attention_ms.append(
            cpu_latency(attention, x, threads=threads, min_run_time=min_run_time).median_ms
        )
        result.rnn_ms.append(
            cpu_latency(gru, x, threads=threads, min_run_time=min_run_time).median_ms
        )
        result.attention_steps.append(sequential_steps(attention, x, MultiHeadAttention))
        result.rnn_steps.append(sequential_steps(stepwise, x, nn.GRUCell))
        result.attention_macs.append(count_macs(attention, x) // batch_size)
        result.rnn_macs.append(count_macs(stepwise, x) // batch_size)
    return result


def make_arithmetic_corpus(
    num_samples: int, length: int, seed: int, vocab: int = 10
) -> torch.Tensor:
    """Return (num_samples, length) sequences x_t = (a + t b) mod vocab, a and b random.

    After two tokens the rest is determined, but only by looking back: a next-token model must
    attend to earlier positions to find b.

    Source: a generated corpus for this kit (no published counterpart).
    """
    for name, value in (("num_samples", num_samples), ("length", length), ("vocab", vocab)):
        check_positive_int(name, value)
    generator = torch.Generator().manual_seed(seed)
    start = torch.randint(0, vocab, (num_samples, 1), generator=generator)
    step = torch.randint(0, vocab, (num_samples, 1), generator=generator)
    return (start + step * torch.arange(length)) % vocab


def next_token_experiment(
    *,
    train_samples: int = 2000,
    test_samples: int = 500,
    length: int = 12,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 3e-3,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, float]:
    """Return a `TinyGPT`'s greedy next-token test accuracy on the arithmetic corpus, over the
    positions that are determined (from the third token on), with its parameter count.

    Source: Radford et al. 2018 (GPT), section 3.1 (the language-modelling objective).
    """
    corpus = make_arithmetic_corpus(train_samples, length, seed=seed)
    test = make_arithmetic_corpus(test_samples, length, seed=seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyGPT(10, length - 1)
    history = fit(
        model,
        token_loader((corpus[:, :-1],), corpus[:, 1:], batch_size=batch_size, seed=seed),
        epochs=epochs,
        lr=lr,
        clip=CLIP_NORM,
        seed=seed,
        verbose=verbose,
    )
    model.eval()
    with torch.no_grad():
        predicted = model(test[:, :-1]).argmax(-1)
    # Target t+1 is determined once tokens 0 and 1 are seen: score positions 1.. of the output.
    accuracy = (predicted[:, 1:] == test[:, 2:]).float().mean().item()
    return {
        "accuracy": accuracy,
        "final_loss": history.last["train_loss"],
        "params": count_params(model),
        "chance": 1 / 10,
    }
