import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F
from torch.testing import assert_close

from effdl.models.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    Seq2Seq,
    attention_weights,
    causal_mask,
    scaled_dot_product_attention,
)
from effdl.plots import plot_accuracy_vs_length, plot_attention_heatmap

EMBED, HEADS, BATCH, LENGTH = 16, 4, 3, 6


def _qkv(length=5, keys=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (2, 3)  # batch and heads
    return (
        torch.randn(*shape, length, 8, generator=g),
        torch.randn(*shape, keys, 8, generator=g),
        torch.randn(*shape, keys, 4, generator=g),
    )


def test_causal_mask_is_the_lower_triangle():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, True],
    ]
    assert causal_mask(2, 3).shape == (2, 3)


@pytest.mark.parametrize("length", [5, 7])
def test_sdpa_equals_torch_without_mask_and_causal(length):
    q, k, v = _qkv(length=length, keys=7)
    assert_close(scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    assert_close(
        scaled_dot_product_attention(q, k, v, is_causal=True),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
    )


@pytest.mark.parametrize("mask_shape", [(5, 7), (2, 1, 5, 7), (2, 3, 5, 7)])
def test_sdpa_equals_torch_with_boolean_mask(mask_shape):
    q, k, v = _qkv()
    mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[..., 0] = True  # every query keeps at least one key, so no row is all -inf
    assert_close(
        scaled_dot_product_attention(q, k, v, attn_mask=mask),
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
    )


def test_sdpa_equals_torch_with_float_mask():
    q, k, v = _qkv()
    bias = torch.randn(5, 7, generator=torch.Generator().manual_seed(2))
    assert_close(
        scaled_dot_product_attention(q, k, v, attn_mask=bias),
        F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
    )


def test_attention_weights_are_a_distribution_and_zero_where_masked():
    q, k, _ = _qkv()
    weights = attention_weights(q, k, is_causal=True)
    assert_close(weights.sum(-1), torch.ones(2, 3, 5))
    assert (weights[..., ~causal_mask(5, 7)] == 0).all()


def _torch_and_ours(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(EMBED, HEADS, batch_first=True, dropout=dropout).eval()
    with torch.no_grad():  # non-zero biases, so that copying them is tested too
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    return ref, MultiHeadAttention.from_torch(ref).eval()


def _padding(batch=BATCH, length=LENGTH):
    padding = torch.zeros(batch, length, dtype=torch.bool)
    padding[0, 4:] = True
    padding[2, 1:3] = True
    return padding


@pytest.mark.parametrize("masks", ["none", "causal", "padding", "causal+padding", "float"])
@pytest.mark.parametrize("average", [True, False])
def test_mha_equals_torch_multihead_attention(masks, average):
    ref, ours = _torch_and_ours()
    x = torch.randn(BATCH, LENGTH, EMBED, generator=torch.Generator().manual_seed(3))
    theirs_kw, ours_kw = {}, {}
    if "causal" in masks:
        # torch's boolean attn_mask blocks True pairs; ours keeps them (as F.sdpa does).
        theirs_kw["attn_mask"] = ~causal_mask(LENGTH)
        ours_kw["attn_mask"] = causal_mask(LENGTH)
    if "padding" in masks:
        theirs_kw["key_padding_mask"] = ours_kw["key_padding_mask"] = _padding()
    if masks == "float":
        bias = torch.randn(
            BATCH * HEADS, LENGTH, LENGTH, generator=torch.Generator().manual_seed(4)
        )
        theirs_kw["attn_mask"] = ours_kw["attn_mask"] = bias
    with torch.no_grad():
        want, want_weights = ref(x, x, x, average_attn_weights=average, **theirs_kw)
        got, got_weights = ours(x, average_attn_weights=average, **ours_kw)
    assert_close(got, want)
    assert_close(got_weights, want_weights)
    assert got_weights.shape == (
        (BATCH, LENGTH, LENGTH) if average else (BATCH, HEADS, LENGTH, LENGTH)
    )


def test_mha_equals_torch_in_cross_attention():
    ref, ours = _torch_and_ours(seed=1)
    g = torch.Generator().manual_seed(5)
    query, key, value = (torch.randn(BATCH, n, EMBED, generator=g) for n in (4, 9, 9))
    padding = _padding(length=9)
    with torch.no_grad():
        want, want_weights = ref(query, key, value, key_padding_mask=padding)
        got, got_weights = ours(query, key, value, key_padding_mask=padding)
    assert_close(got, want)
    assert_close(got_weights, want_weights)


def test_mha_is_causal_flag_equals_causal_mask():
    _, ours = _torch_and_ours()
    x = torch.randn(BATCH, LENGTH, EMBED)
    with torch.no_grad():
        flag, _ = ours(x, is_causal=True)
        mask, _ = ours(x, attn_mask=causal_mask(LENGTH))
    assert_close(flag, mask)


def test_causal_output_at_t_ignores_later_positions():
    _, ours = _torch_and_ours()
    x = torch.randn(1, LENGTH, EMBED, generator=torch.Generator().manual_seed(6))
    changed = x.clone()
    t = 2
    changed[:, t + 1 :] = torch.randn(1, LENGTH - t - 1, EMBED)
    with torch.no_grad():
        before, _ = ours(x, is_causal=True)
        after, _ = ours(changed, is_causal=True)
        unmasked, _ = ours(changed)
    assert_close(after[:, : t + 1], before[:, : t + 1])
    assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])
    assert not torch.allclose(unmasked[:, : t + 1], before[:, : t + 1])  # the mask mattered


def test_mha_returns_no_weights_when_not_needed():
    _, ours = _torch_and_ours()
    out, weights = ours(torch.randn(2, 3, EMBED), need_weights=False)
    assert out.shape == (2, 3, EMBED) and weights is None


def test_additive_attention_shapes_and_weights_sum_to_one():
    torch.manual_seed(0)
    attention = AdditiveAttention(query_dim=5, key_dim=7, attn_dim=11)
    query, keys = torch.randn(4, 5), torch.randn(4, 9, 7)
    padding = torch.zeros(4, 9, dtype=torch.bool)
    padding[1, 6:] = True
    context, weights = attention(query, keys, key_padding_mask=padding)
    assert context.shape == (4, 7) and weights.shape == (4, 9)
    assert_close(weights.sum(-1), torch.ones(4))
    assert (weights[1, 6:] == 0).all()
    # The context is the weighted mean of the values, and precomputed keys change nothing.
    assert_close(context, torch.einsum("ns,nsd->nd", weights, keys))
    again, _ = attention(
        query, keys, key_padding_mask=padding, projected_keys=attention.project_keys(keys)
    )
    assert_close(again, context)


@pytest.mark.parametrize("attention", [True, False])
def test_seq2seq_shapes(attention):
    torch.manual_seed(0)
    model = Seq2Seq(10, 12, attention=attention)
    src = torch.randint(0, 10, (4, 5))
    tgt = src.flip(1)
    logits, weights = model.decode(src, tgt)
    assert logits.shape == (4, 5, 10)
    assert (weights.shape == (4, 5, 5)) if attention else weights is None
    tokens, weights = model.generate(src, length=7)
    assert tokens.shape == (4, 7)
    if attention:
        assert weights.shape == (4, 7, 5)
        assert_close(weights.sum(-1), torch.ones(4, 7))


def test_plots_return_figures():
    heatmap = plot_attention_heatmap(causal_mask(4).float() / 4, x_labels="abcd")
    curves = plot_accuracy_vs_length(
        [4, 8], {"attention": [1.0, 0.9], "no": [1.0, 0.5]}, chance=0.1
    )
    assert isinstance(heatmap, Figure) and isinstance(curves, Figure)
    with pytest.raises(ValueError, match="weights must be a 2-D"):
        plot_attention_heatmap(torch.ones(2, 2, 2))


def test_bad_inputs_raise_value_errors_that_name_the_argument():
    with pytest.raises(ValueError, match=r"embed_dim must be divisible by num_heads.*=10.*=4"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="num_heads must be a positive int"):
        MultiHeadAttention(8, 0)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 5, 8)
    with pytest.raises(
        ValueError, match=r"attn_mask must have shape \(L, S\)=\(5, 5\).*got \(4, 5\)"
    ):
        mha(x, attn_mask=torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(N, S\)=\(2, 5\)"):
        mha(x, key_padding_mask=torch.zeros(5, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="query must be"):
        mha(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="masks must be bool or float"):
        mha(x, attn_mask=torch.ones(5, 5, dtype=torch.long))
    q, k, v = _qkv()
    with pytest.raises(
        ValueError, match=r"attn_mask must broadcast to .*\(2, 3, 5, 7\), got \(7, 5\)"
    ):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(7, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="k and v must have the same number of positions"):
        scaled_dot_product_attention(q, k, v[..., :3, :])
    with pytest.raises(ValueError, match="num_queries must be a positive int, got 0"):
        causal_mask(0)
    with pytest.raises(ValueError, match="src must be an"):
        Seq2Seq(10, 4, True).decode(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="module must be nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(2, 2))
