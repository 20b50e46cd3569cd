import pytest
import torch

from effdl.experiments.attention import (
    CLIP_NORM,
    bottleneck_experiment,
    make_reversal_task,
    seq2seq_accuracy,
    token_loader,
)
from effdl.models.attention import Seq2Seq
from effdl.train import fit


def test_reversal_task_is_deterministic_by_seed():
    src, tgt = make_reversal_task(50, 8, seed=3)
    src2, tgt2 = make_reversal_task(50, 8, seed=3)
    other, _ = make_reversal_task(50, 8, seed=4)
    assert torch.equal(src, src2) and torch.equal(tgt, tgt2)
    assert not torch.equal(src, other)
    assert torch.equal(tgt, src.flip(1))
    assert src.dtype == torch.long and src.shape == (50, 8)
    assert 0 <= int(src.min()) and int(src.max()) <= 9


def test_attention_seq2seq_learns_length_8_reversal():
    src, tgt = make_reversal_task(2000, 8, seed=0)
    test_src, test_tgt = make_reversal_task(200, 8, seed=1)
    torch.manual_seed(0)
    model = Seq2Seq(10, 32, attention=True)
    loader = token_loader((src, tgt), tgt, batch_size=100, seed=0)
    history = fit(model, loader, epochs=5, lr=1e-2, clip=CLIP_NORM, verbose=False)
    scores = seq2seq_accuracy(model, test_src, test_tgt)
    assert history["train_loss"][-1] < history["train_loss"][0]
    # Chance is 0.1 per digit; about 0.78 after these 100 steps, at any seed tried.
    assert scores["token_accuracy"] > 0.5


def test_bottleneck_experiment_reports_every_length_and_an_example():
    result = bottleneck_experiment(
        (2, 3), hidden=8, train_samples=60, test_samples=20, epochs=1, batch_size=30, verbose=False
    )
    assert result.lengths == [2, 3]
    for table in (result.token_accuracy, result.sequence_accuracy):
        assert set(table) == {"attention", "no_attention"}
        assert all(len(v) == 2 and all(0 <= a <= 1 for a in v) for v in table.values())
    assert result.example_weights.shape == (3, 3)
    assert len(result.example_source) == len(result.example_prediction) == 3
    assert result.params["attention"] > result.params["no_attention"]


def test_token_loader_batches_inputs_then_target_in_a_seeded_order():
    src, tgt = make_reversal_task(10, 3, seed=0)
    batches = list(token_loader((src, tgt), tgt, batch_size=4, seed=1))
    again = list(token_loader((src, tgt), tgt, batch_size=4, seed=1))
    assert [len(b) for b in batches] == [3, 3, 3] and [len(b[0]) for b in batches] == [4, 4, 2]
    pairs = zip(batches, again, strict=True)
    assert all(torch.equal(a, b) for x, y in pairs for a, b in zip(x, y, strict=True))
    assert all(torch.equal(b[2], b[0].flip(1)) for b in batches)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="length must be a positive int, got 0"):
        make_reversal_task(10, 0, seed=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got True"):
        token_loader((torch.zeros(3, 2).long(),), torch.zeros(3, 2).long(), batch_size=True, seed=0)
