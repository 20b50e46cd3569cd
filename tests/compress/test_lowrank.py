import pytest
import torch
from torch import nn

from effdl.compress.lowrank import (
    break_even_rank,
    factorize_conv,
    factorize_linear,
    lowrank_model,
    rank_for_energy,
)
from effdl.compress.prune import apply_masks_, global_magnitude_masks
from effdl.measure import count_params

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def seeded(build, seed: int = 0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def product(pair: nn.Sequential) -> torch.Tensor:
    return pair[1].weight @ pair[0].weight


# --- Linear ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("out_f", "in_f", "bias"), [(12, 20, True), (20, 12, False), (7, 7, True)])
def test_full_rank_linear_reproduces_the_layer(out_f, in_f, bias):
    layer = seeded(lambda: nn.Linear(in_f, out_f, bias=bias))
    pair = factorize_linear(layer, min(out_f, in_f))
    assert (pair[0].in_features, pair[0].out_features) == (in_f, min(out_f, in_f))
    assert pair[0].bias is None and (pair[1].bias is not None) == bias
    x = torch.randn(9, in_f, generator=gen(1))
    torch.testing.assert_close(pair(x), layer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_truncated_linear_meets_eckart_young(rank):
    layer = seeded(lambda: nn.Linear(16, 10))
    w = layer.weight.detach()
    s = torch.linalg.svdvals(w.double())
    pair = factorize_linear(layer, rank)
    error = torch.linalg.matrix_norm(product(pair).double() - w.double())
    assert float(error) == pytest.approx(float(s[rank:].pow(2).sum().sqrt()), rel=1e-5)
    # the factors are balanced: both carry sqrt(S), so their Gram matrices share a spectrum
    first, second = pair[0].weight.double(), pair[1].weight.double()
    torch.testing.assert_close(first @ first.T, second.T @ second, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.linalg.svdvals(first @ first.T), s[:rank])
    assert count_params(pair) == rank * (16 + 10) + 10


# --- Conv2d --------------------------------------------------------------------------------------


CONVS = {
    "plain": dict(kernel_size=3),
    "stride_pad": dict(kernel_size=3, stride=2, padding=1),
    "rect_dilated": dict(kernel_size=(3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1)),
    "same": dict(kernel_size=3, padding="same"),
    "no_bias": dict(kernel_size=3, padding=1, bias=False),
}


@pytest.mark.parametrize("scheme", ["channel", "spatial"])
@pytest.mark.parametrize("kind", CONVS)
def test_full_rank_conv_reproduces_the_output(scheme, kind):
    conv = seeded(lambda: nn.Conv2d(3, 5, **CONVS[kind]))
    n, c, kh, kw = conv.weight.shape
    rank = min(n, c * kh * kw) if scheme == "channel" else min(c * kh, n * kw)
    pair = factorize_conv(conv, rank, scheme=scheme)
    x = torch.randn(2, 3, 11, 10, generator=gen(2))
    torch.testing.assert_close(pair(x), conv(x), rtol=1e-4, atol=1e-4)
    if scheme == "spatial":
        assert pair[0].kernel_size == (kh, 1) and pair[1].kernel_size == (1, kw)
    else:
        assert pair[0].kernel_size == (kh, kw) and pair[1].kernel_size == (1, 1)


@pytest.mark.parametrize("scheme", ["channel", "spatial"])
def test_truncated_conv_meets_eckart_young_on_its_matrix(scheme):
    conv = seeded(lambda: nn.Conv2d(4, 6, 3))
    w = conv.weight.detach().double()
    rank = 3
    pair = factorize_conv(conv, rank, scheme=scheme)
    a, b = pair[0].weight.double(), pair[1].weight.double()
    if scheme == "channel":
        approx = torch.einsum("nr,rcyx->ncyx", b[:, :, 0, 0], a)
        matrix = w.reshape(6, -1)
    else:  # W[n, c, y, x] ~ sum_r H[n, r, x] V[r, c, y]
        approx = torch.einsum("nrx,rcy->ncyx", b[:, :, 0, :], a[:, :, :, 0])
        matrix = w.permute(1, 2, 0, 3).reshape(4 * 3, 6 * 3)
    s = torch.linalg.svdvals(matrix)
    error = torch.linalg.vector_norm(approx - w)
    assert float(error) == pytest.approx(float(s[rank:].pow(2).sum().sqrt()), rel=1e-5)
    params = rank * 4 * 9 + rank * 6 if scheme == "channel" else rank * 4 * 3 + rank * 6 * 3
    assert count_params(pair) == params + 6


# --- choosing the rank ---------------------------------------------------------------------------


def test_rank_for_energy_by_hand():
    s = torch.tensor([3.0, 2.0, 1.0, 1.0])  # squares 9, 4, 1, 1: total 15
    assert rank_for_energy(s, 9 / 15) == 1
    assert rank_for_energy(s, 9 / 15 + 1e-9) == 2
    assert rank_for_energy(s, 13 / 15) == 2
    assert rank_for_energy(s, 0.9) == 3
    assert rank_for_energy(s, 1.0) == 4
    assert rank_for_energy(torch.tensor([1.0, 2.0, 3.0, 1.0]), 0.6) == 1  # order does not matter


@pytest.mark.parametrize(("m", "n"), [(1, 1), (2, 2), (3, 5), (64, 300), (300, 100), (7, 1000)])
def test_break_even_rank_is_the_largest_rank_that_saves(m, n):
    r = break_even_rank(m, n)
    assert r * (m + n) < m * n or r == 0
    assert (r + 1) * (m + n) >= m * n
    if r > 0:
        pair = factorize_linear(nn.Linear(n, m, bias=False), r)
        assert count_params(pair) < m * n
    if r < min(m, n):
        pair = factorize_linear(nn.Linear(n, m, bias=False), r + 1)
        assert count_params(pair) >= m * n
    assert break_even_rank(2, 2) == 0 and break_even_rank(300, 100) == 74


# --- whole models --------------------------------------------------------------------------------


def cnn() -> nn.Sequential:
    return seeded(
        lambda: nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )
    )


@pytest.mark.parametrize("scheme", ["channel", "spatial"])
def test_lowrank_model_full_energy_reproduces_and_leaves_the_original(scheme):
    model = cnn()
    x = torch.randn(2, 3, 8, 8, generator=gen(3))
    same = lowrank_model(model, energy=1.0, scheme=scheme, only_if_smaller=False)
    assert isinstance(same[2], nn.Sequential) and isinstance(same[6], nn.Sequential)
    torch.testing.assert_close(same(x), model(x), rtol=1e-4, atol=1e-4)
    assert isinstance(model[2], nn.Conv2d)  # the original is untouched
    # with only_if_smaller, full-rank factors (more parameters) are not used
    kept = lowrank_model(model, energy=1.0, scheme=scheme)
    assert all(not isinstance(m, nn.Sequential) for m in kept)


def test_lowrank_model_by_energy_and_by_name():
    model = cnn()
    small = lowrank_model(model, energy=0.5)
    for name in ("2", "6"):
        layer = model.get_submodule(name)
        w = layer.weight.detach()
        r = rank_for_energy(torch.linalg.svdvals(w.reshape(w.shape[0], -1)), 0.5)
        replaced = small.get_submodule(name)
        assert isinstance(replaced, nn.Sequential)
        assert replaced[0].weight.shape[0] == r
    assert count_params(small) < count_params(model)
    named = lowrank_model(model, ranks={"6": 4})
    assert named[6][0].out_features == 4 and isinstance(named[2], nn.Conv2d)


def test_lowrank_model_bakes_masks_in_first():
    model = cnn()
    apply_masks_(model, global_magnitude_masks(model, 0.5))
    out = lowrank_model(model, ranks={"8": 10}, only_if_smaller=False)
    x = torch.randn(2, 3, 8, 8, generator=gen(4))
    torch.testing.assert_close(out(x), model(x), rtol=1e-4, atol=1e-4)


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [0, 13, -1, 2.0, True])
def test_rank_outside_the_matrix_is_refused(rank):
    with pytest.raises(ValueError, match=r"rank must be an int in \[1, 12\] for a 12 x 20"):
        factorize_linear(nn.Linear(20, 12), rank)


def test_bad_input_names_the_argument():
    conv = nn.Conv2d(4, 6, 3)
    with pytest.raises(ValueError, match=r"rank must be an int in \[1, 6\]"):
        factorize_conv(conv, 7)
    with pytest.raises(ValueError, match=r"rank must be an int in \[1, 12\]"):
        factorize_conv(conv, 13, scheme="spatial")
    with pytest.raises(ValueError, match="groups"):
        factorize_conv(nn.Conv2d(4, 6, 3, groups=2), 1)
    with pytest.raises(ValueError, match="scheme"):
        factorize_conv(conv, 1, scheme="tucker")
    with pytest.raises(ValueError, match="padding_mode"):
        factorize_conv(nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect"), 1, scheme="spatial")
    with pytest.raises(TypeError, match="linear"):
        factorize_linear(conv, 1)
    with pytest.raises(TypeError, match="conv"):
        factorize_conv(nn.Linear(2, 2), 1)
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"energy must be in \(0, 1\]"):
            rank_for_energy(torch.ones(3), bad)
        with pytest.raises(ValueError, match="energy"):
            lowrank_model(cnn(), energy=bad)
    with pytest.raises(TypeError, match="energy"):
        rank_for_energy(torch.ones(3), "0.5")
    with pytest.raises(ValueError, match="singular_values"):
        rank_for_energy(torch.tensor([1.0, -1.0]), 0.5)
    with pytest.raises(ValueError, match="energy"):
        lowrank_model(cnn())
    with pytest.raises(ValueError, match="ranks names"):
        lowrank_model(cnn(), ranks={"nope": 2})
    with pytest.raises(ValueError, match="m must be a positive int"):
        break_even_rank(0, 3)
    with pytest.raises(TypeError, match="singular_values"):
        rank_for_energy(torch.ones(2, 2), 0.5)
    assert rank_for_energy(torch.zeros(2), 0.5) == 1  # a zero matrix: rank 1 is as good as any
