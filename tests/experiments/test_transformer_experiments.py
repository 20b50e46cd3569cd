import torch
from matplotlib.figure import Figure

from effdl.data import load_mnist1d
from effdl.experiments.transformer import (
    compare_with_gru,
    forward_time_vs_length,
    make_arithmetic_corpus,
    next_token_experiment,
)
from effdl.plots import plot_time_vs_length


def test_compare_with_gru_trains_both_and_reports_footprints():
    splits = load_mnist1d(seed=0, num_samples=200)
    runs = compare_with_gru(splits, epochs=1, latency=False, verbose=False, embed_dim=16)
    assert set(runs) == {"transformer", "gru"}
    for run in runs.values():
        assert 0 <= run.test_accuracy <= 1 and len(run.history) == 1
        assert run.footprint["params"] > 0 and run.footprint["macs"] > 0


def test_forward_time_vs_length_reports_steps_macs_and_times():
    result = forward_time_vs_length((4, 16), width=8, num_heads=2, min_run_time=0.01, verbose=False)
    assert result.attention_steps == [1, 1]
    assert result.rnn_steps == [4, 16]
    assert all(t > 0 for t in result.attention_ms + result.rnn_ms)
    # Table 1 cost per layer: attention's grows with n^2, the recurrence's with n.
    assert result.rnn_macs[1] == 4 * result.rnn_macs[0]
    assert result.attention_macs[1] > 4 * result.attention_macs[0]
    assert set(result.growth()) == {"attention", "rnn"}
    fig = plot_time_vs_length(
        result.lengths,
        {"attention": result.attention_ms, "GRU": result.rnn_ms},
        {"attention": result.attention_steps, "GRU": result.rnn_steps},
    )
    assert isinstance(fig, Figure)


def test_arithmetic_corpus_is_deterministic_and_arithmetic():
    corpus = make_arithmetic_corpus(20, 6, seed=1)
    assert torch.equal(corpus, make_arithmetic_corpus(20, 6, seed=1))
    steps = (corpus[:, 1:] - corpus[:, :-1]) % 10
    assert (steps == steps[:, :1]).all()


def test_next_token_model_beats_chance():
    result = next_token_experiment(train_samples=1000, test_samples=200, epochs=8, verbose=False)
    # Chance is 0.1; about 0.9 after these 80 steps (0.45 after 40).
    assert result["accuracy"] > 0.5
