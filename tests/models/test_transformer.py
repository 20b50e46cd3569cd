import pytest
import torch
from torch import nn
from torch.testing import assert_close

from effdl.measure import sequential_steps
from effdl.models.attention import MultiHeadAttention, causal_mask
from effdl.models.transformer import (
    SelfAttention,
    StepwiseGRU,
    TinyGPT,
    TransformerClassifier,
    TransformerEncoder,
    TransformerEncoderLayer,
)

EMBED, HEADS = 16, 4


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_equals_torch(norm_first, activation):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(
        EMBED,
        HEADS,
        32,
        dropout=0.0,
        activation=activation,
        batch_first=True,
        norm_first=norm_first,
    ).eval()
    ours = TransformerEncoderLayer.from_torch(ref).eval()
    x = torch.randn(3, 7, EMBED)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 5:] = True
    with torch.no_grad():
        assert_close(ours(x), ref(x))
        # torch's fast path leaves padded query rows at 0, so compare the rows that are real.
        got, want = ours(x, key_padding_mask=padding), ref(x, src_key_padding_mask=padding)
        assert_close(got[~padding], want[~padding])
        causal = ours(x, attn_mask=causal_mask(7))
        assert_close(causal, ref(x, src_mask=~causal_mask(7)))


def test_encoder_layer_keeps_shape_and_pre_and_post_norm_differ():
    torch.manual_seed(0)
    pre = TransformerEncoderLayer(EMBED, HEADS, norm_first=True)
    post = TransformerEncoderLayer(EMBED, HEADS, norm_first=False)
    post.load_state_dict(pre.state_dict())  # same weights: only the norm placement differs
    x = torch.randn(2, 5, EMBED)
    assert pre(x).shape == post(x).shape == (2, 5, EMBED)
    assert not torch.allclose(pre(x), post(x), atol=1e-3)
    # Post-norm ends in a LayerNorm: every position has zero mean and unit variance.
    assert_close(post(x).mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    assert pre.linear1.out_features == 4 * EMBED  # the paper's d_ff = 4 d_model


def test_encoder_causal_output_at_t_ignores_later_positions():
    torch.manual_seed(0)
    encoder = TransformerEncoder(2, EMBED, HEADS).eval()
    x = torch.randn(1, 8, EMBED)
    changed = x.clone()
    changed[:, 5:] = torch.randn(1, 3, EMBED)
    with torch.no_grad():
        before, after = encoder(x, is_causal=True), encoder(changed, is_causal=True)
    assert_close(after[:, :5], before[:, :5])
    assert not torch.allclose(after[:, 5:], before[:, 5:])


@pytest.mark.parametrize(("patch_size", "pool"), [(1, "cls"), (4, "cls"), (5, "mean")])
def test_classifier_on_mnist1d_shapes(patch_size, pool):
    torch.manual_seed(0)
    model = TransformerClassifier(patch_size=patch_size, pool=pool)
    assert model(torch.randn(6, 1, 40)).shape == (6, 10)
    assert model(torch.randn(6, 40)).shape == (6, 10)
    tokens = 40 // patch_size + (pool == "cls")
    assert model.position_embedding.shape == (1, tokens, 32)


def test_stepwise_gru_equals_torch_gru_and_counts_n_steps():
    torch.manual_seed(0)
    gru = nn.GRU(8, 12, batch_first=True)
    stepwise = StepwiseGRU.from_torch(gru)
    x = torch.randn(2, 9, 8)
    with torch.no_grad():
        assert_close(stepwise(x), gru(x)[0])
    assert sequential_steps(stepwise, x, nn.GRUCell) == 9
    assert sequential_steps(SelfAttention(8, 2), x, MultiHeadAttention) == 1


def test_tiny_gpt_is_causal_and_generates():
    torch.manual_seed(0)
    model = TinyGPT(10, context=8).eval()
    tokens = torch.randint(0, 10, (2, 8), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 10
    with torch.no_grad():
        assert_close(model(changed)[:, :6], model(tokens)[:, :6])
    assert model.generate(tokens[:, :3], steps=7).shape == (2, 10)


def test_bad_inputs_raise_value_errors_that_name_the_argument():
    with pytest.raises(ValueError, match=r"embed_dim must be divisible by num_heads.*=30.*=4"):
        TransformerEncoderLayer(30, 4)
    with pytest.raises(ValueError, match="activation must be one of"):
        TransformerEncoderLayer(16, 4, activation="tanh")
    with pytest.raises(ValueError, match="patch_size must be a positive int dividing length=40"):
        TransformerClassifier(patch_size=3)
    with pytest.raises(ValueError, match="pool must be one of"):
        TransformerClassifier(pool="max")
    with pytest.raises(ValueError, match="x must hold 40 values per sample"):
        TransformerClassifier()(torch.randn(2, 1, 41))
    with pytest.raises(ValueError, match="tokens must be"):
        TinyGPT(10, context=4)(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        TransformerEncoder(0, 16, 4)
    with pytest.raises(ValueError, match="gru must have num_layers=1"):
        StepwiseGRU.from_torch(nn.GRU(4, 4, batch_first=True, bidirectional=True))
