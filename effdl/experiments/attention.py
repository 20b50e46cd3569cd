"""Lesson 02, part 1: the information bottleneck of an encoder-decoder without attention, on digit
reversal. Called by course/02_attention_and_transformers.ipynb (the bottleneck section); the
Bahdanau figure-2 shape it shows has no ledger claim yet. Start with `bottleneck_experiment`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from effdl._checks import check_positive_int
from effdl.models.attention import Seq2Seq
from effdl.train import fit

#: Digits 0-9: the vocabulary of the reversal task.
DIGITS = 10
#: Gradient-norm bound for the recurrent models, the guard Bahdanau et al. 2015 use (4.2).
CLIP_NORM = 1.0


def token_loader(
    inputs: Sequence[torch.Tensor], target: torch.Tensor, *, batch_size: int, seed: int
) -> DataLoader:
    """Return a DataLoader of `(*inputs, target)` batches shuffled by a generator seeded `seed`.

    This is the loader `effdl.train.fit` takes for a token predictor: `model(*inputs)` gives
    (N, T, vocab) logits for the (N, T) target.

    Source: torch.utils.data documentation (TensorDataset, DataLoader with a generator).
    """
    check_positive_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(seed)
    dataset = TensorDataset(*inputs, target)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)


def make_reversal_task(
    num_samples: int, length: int, seed: int, vocab: int = DIGITS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (source, target): (num_samples, length) random digit strings and their reverses.

    Reversal needs every source digit, and the first digit to come out is the last to go in:
    without attention, the whole string must pass through one state vector.

    Source: the reversal task of Sutskever et al. 2014, section 3.3 (reversed source order).
    """
    for name, value in (("num_samples", num_samples), ("length", length), ("vocab", vocab)):
        check_positive_int(name, value)
    generator = torch.Generator().manual_seed(seed)
    source = torch.randint(0, vocab, (num_samples, length), generator=generator)
    return source, source.flip(1)


def seq2seq_accuracy(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor) -> dict[str, float]:
    """Return greedy-decoding accuracy: per token and per whole sequence (all tokens right).

    Source: exact-match and token accuracy, the usual scores for algorithmic sequence tasks.
    """
    predicted, _ = model.generate(src, length=tgt.shape[1])
    correct = predicted == tgt
    return {
        "token_accuracy": correct.float().mean().item(),
        "sequence_accuracy": correct.all(dim=1).float().mean().item(),
    }


@dataclass
class BottleneckResult:
    """Accuracy vs source length with and without attention, and one example's weights."""

    lengths: list[int]
    token_accuracy: dict[str, list[float]] = field(default_factory=dict)
    sequence_accuracy: dict[str, list[float]] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    #: One test example at the longest length: its source, the attention model's prediction and
    #: its (T, S) attention weights, rows = output steps, columns = source positions.
    example_source: list[int] = field(default_factory=list)
    example_prediction: list[int] = field(default_factory=list)
    example_weights: torch.Tensor | None = None
    seconds: float = 0.0


#: The experiment's default size, a visible constant: 300 Adam steps per model and length
#: (2,000 samples / batch 100 x 15 epochs). `bottleneck_experiment` with these defaults
#: re-makes the accuracies that lesson 02 prints.
BOTTLENECK_DEFAULTS = {
    "hidden": 32,
    "train_samples": 2000,
    "test_samples": 500,
    "epochs": 15,
    "batch_size": 100,
    "lr": 1e-2,
}


def bottleneck_experiment(
    lengths: Sequence[int] = (4, 8, 12, 16),
    *,
    hidden: int = BOTTLENECK_DEFAULTS["hidden"],
    train_samples: int = BOTTLENECK_DEFAULTS["train_samples"],
    test_samples: int = BOTTLENECK_DEFAULTS["test_samples"],
    epochs: int = BOTTLENECK_DEFAULTS["epochs"],
    batch_size: int = BOTTLENECK_DEFAULTS["batch_size"],
    lr: float = BOTTLENECK_DEFAULTS["lr"],
    seed: int = 0,
    verbose: bool = True,
) -> BottleneckResult:
    """Return test accuracy vs string length of `Seq2Seq` with and without attention on
    digit reversal, and the attention weights of one test example at the longest length.

    Both models have the same hidden size and training budget at every length; models and
    data are seeded by `seed`. Without attention accuracy falls as the string grows; with
    attention it stays high, and the weights show the anti-diagonal of a reversal.

    Source: Bahdanau et al. 2015, section 5.1 and figure 2 (BLEU vs sentence length), figure 3.
    """
    lengths = [int(n) for n in lengths]
    if not lengths or any(n < 1 for n in lengths):
        raise ValueError(f"lengths must be a non-empty list of positive ints, got {lengths}")
    start = time.perf_counter()
    result = BottleneckResult(lengths=lengths)
    variants = {"attention": True, "no_attention": False}
    for name in variants:
        result.token_accuracy[name], result.sequence_accuracy[name] = [], []
    runs = [(n, name) for n in lengths for name in variants]
    for length, name in tqdm(runs, desc="bottleneck", disable=not verbose):
        src, tgt = make_reversal_task(train_samples, length, seed=seed)
        test_src, test_tgt = make_reversal_task(test_samples, length, seed=seed + 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Seq2Seq(DIGITS, hidden, attention=variants[name])
        fit(
            model,
            token_loader((src, tgt), tgt, batch_size=batch_size, seed=seed),
            epochs=epochs,
            lr=lr,
            clip=CLIP_NORM,
            seed=seed,
            verbose=False,
        )
        scores = seq2seq_accuracy(model, test_src, test_tgt)
        result.token_accuracy[name].append(scores["token_accuracy"])
        result.sequence_accuracy[name].append(scores["sequence_accuracy"])
        result.params[name] = sum(p.numel() for p in model.parameters())
        if name == "attention" and length == max(lengths):
            predicted, weights = model.generate(test_src[:1])
            result.example_source = test_src[0].tolist()
            result.example_prediction = predicted[0].tolist()
            result.example_weights = weights[0]
    result.seconds = time.perf_counter() - start
    return result
