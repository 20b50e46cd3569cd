"""The Transformer encoder from `nn.Linear` and our `MultiHeadAttention` (Vaswani et al. 2017,
section 3), an encoder classifier for mnist1d, a GPT-style next-token model, and the two layers
that Table 1's "self-attention: O(1) sequential operations, recurrent layer: O(n)" compares
(`SelfAttention`, `StepwiseGRU`). Start with `TransformerEncoderLayer` (pre-norm by default,
post-norm by a flag). The experiments that train and time these models live in
`effdl.experiments.transformer`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from effdl._checks import check_in, check_positive_int
from effdl.models.attention import MultiHeadAttention
from effdl.models.baselines import MNIST1D_LENGTH, NUM_CLASSES

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}
_POOLS = ("cls", "mean")


class TransformerEncoderLayer(nn.Module):
    """Self-attention then a position-wise feed-forward net, each inside a residual connection
    with LayerNorm: pre-norm by default, post-norm (the paper's) with `norm_first=False`.

    Pre-norm (x + f(LayerNorm(x))) is our default, as in GPT-2, ViT and most recent models:
    the residual path stays an identity from input to output, so gradients reach early layers
    undamped and small stacks train without a learning-rate warm-up (Xiong et al. 2020).
    Post-norm (LayerNorm(x + f(x))) is the paper's layout and BERT's; it normalises after each
    sum and usually needs warm-up to train deep stacks.

    Submodule names follow `torch.nn.TransformerEncoderLayer` (self_attn, linear1, linear2,
    norm1, norm2), so `from_torch` copies one in. Inputs are batch first: (N, L, embed_dim).

    Source: Vaswani et al. 2017, "Attention Is All You Need", section 3.1 and figure 1.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ff_dim: int | None = None,
        *,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = True,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        ff_dim = 4 * embed_dim if ff_dim is None else ff_dim  # the paper: 512 -> 2048
        check_positive_int("ff_dim", ff_dim)
        check_in("activation", activation, tuple(_ACTIVATIONS))
        self.self_attn = MultiHeadAttention(embed_dim, num_heads, dropout=dropout)
        self.linear1 = nn.Linear(embed_dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, embed_dim)
        self.norm1 = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)  # inside the feed-forward net
        self.dropout1 = nn.Dropout(dropout)  # on each sublayer's output, before the residual sum
        self.dropout2 = nn.Dropout(dropout)
        self.activation, self.norm_first = activation, norm_first

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> TransformerEncoderLayer:
        """Return a layer holding a copy of a batch-first `nn.TransformerEncoderLayer`'s weights.

        Source: torch.nn.TransformerEncoderLayer documentation.
        """
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(f"layer must be nn.TransformerEncoderLayer, got {type(layer).__name__}")
        if not layer.self_attn.batch_first:
            raise ValueError("layer must be built with batch_first=True, got batch_first=False")
        activation = {1: "relu", 2: "gelu"}.get(getattr(layer, "activation_relu_or_gelu", 0))
        if activation is None:
            raise ValueError(f"layer's activation must be relu or gelu, got {layer.activation}")
        ours = cls(
            layer.self_attn.embed_dim,
            layer.self_attn.num_heads,
            layer.linear1.out_features,
            dropout=layer.dropout.p,
            activation=activation,
            norm_first=layer.norm_first,
            layer_norm_eps=layer.norm1.eps,
        )
        ours.self_attn = MultiHeadAttention.from_torch(layer.self_attn)
        for name in ("linear1", "linear2", "norm1", "norm2"):
            getattr(ours, name).load_state_dict(getattr(layer, name).state_dict())
        return ours

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Return the (N, L, embed_dim) output; masks as in `MultiHeadAttention.forward`.

        Source: Vaswani et al. 2017, section 3.1; Xiong et al. 2020, figure 1 (pre-norm).
        """
        masks = {"key_padding_mask": key_padding_mask, "attn_mask": attn_mask}
        if self.norm_first:
            x = x + self._attend(self.norm1(x), masks, is_causal)
            return x + self._feed_forward(self.norm2(x))
        x = self.norm1(x + self._attend(x, masks, is_causal))
        return self.norm2(x + self._feed_forward(x))

    def _attend(self, x, masks, is_causal) -> torch.Tensor:
        out, _ = self.self_attn(x, **masks, is_causal=is_causal, need_weights=False)
        return self.dropout1(out)

    def _feed_forward(self, x) -> torch.Tensor:
        # FFN(x) = max(0, x W1 + b1) W2 + b2, eq. 2 of the paper, applied at every position.
        hidden = _ACTIVATIONS[self.activation](self.linear1(x))
        return self.dropout2(self.linear2(self.dropout(hidden)))


class TransformerEncoder(nn.Module):
    """A stack of `num_layers` encoder layers; pre-norm stacks end with one more LayerNorm,
    since their residual stream is never normalised otherwise.

    Source: Vaswani et al. 2017, section 3.1 (N = 6 identical layers); Radford et al. 2019
    (GPT-2, section 2.3: the final LayerNorm of a pre-norm stack).
    """

    def __init__(
        self,
        num_layers: int,
        embed_dim: int,
        num_heads: int,
        ff_dim: int | None = None,
        *,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = True,
    ):
        super().__init__()
        check_positive_int("num_layers", num_layers)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                embed_dim,
                num_heads,
                ff_dim,
                dropout=dropout,
                activation=activation,
                norm_first=norm_first,
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dim) if norm_first else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Return the (N, L, embed_dim) output of every layer in turn.

        Source: Vaswani et al. 2017, section 3.1.
        """
        for layer in self.layers:
            x = layer(
                x, key_padding_mask=key_padding_mask, attn_mask=attn_mask, is_causal=is_causal
            )
        return self.norm(x)


class TransformerClassifier(nn.Module):
    """An encoder classifier for 1-D signals: cut the signal into patches of `patch_size`
    values, embed each with one `nn.Linear`, add a learned position embedding, encode, pool
    (a CLS token or the mean over patches) and classify with a linear head.

    With `patch_size=1` every position is a token (40 for mnist1d); the default 4 gives 10
    tokens, a 16x smaller attention matrix. Patch size 4 and mean pooling are the defaults
    because they trained best among the settings we tried on mnist1d;
    `effdl.experiments.transformer.compare_with_gru(splits, patch_size=..., pool=...)` re-runs
    any such setting. Input: (N, 1, length) or (N, length).

    Source: Dosovitskiy et al. 2021 (ViT), section 3.1, on 1-D patches; Devlin et al. 2019
    (BERT), section 3 (the CLS token).
    """

    def __init__(
        self,
        length: int = MNIST1D_LENGTH,
        num_classes: int = NUM_CLASSES,
        *,
        patch_size: int = 4,
        embed_dim: int = 32,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int | None = 64,
        dropout: float = 0.0,
        pool: str = "mean",
        norm_first: bool = True,
    ):
        super().__init__()
        check_positive_int("length", length)
        check_positive_int("patch_size", patch_size)
        if length % patch_size:
            raise ValueError(
                f"patch_size must be a positive int dividing length={length}, got {patch_size!r}"
            )
        check_in("pool", pool, _POOLS)
        self.length, self.patch_size, self.pool = length, patch_size, pool
        self.num_patches = length // patch_size
        tokens = self.num_patches + (pool == "cls")
        self.patch_embedding = nn.Linear(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if pool == "cls" else None
        # Small random positions: a normal with std 0.02, the scale BERT and ViT use (they
        # truncate it at two standard deviations; at this scale that makes no difference).
        self.position_embedding = nn.Parameter(torch.randn(1, tokens, embed_dim) * 0.02)
        self.encoder = TransformerEncoder(
            num_layers, embed_dim, num_heads, ff_dim, dropout=dropout, norm_first=norm_first
        )
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (N, num_classes) logits for (N, 1, length) or (N, length) signals.

        Source: Dosovitskiy et al. 2021 (ViT), eqs. 1-4, with 1-D patches.
        """
        signal = x.flatten(1)
        if signal.shape[1] != self.length:
            raise ValueError(
                f"x must hold {self.length} values per sample, got shape {tuple(x.shape)}"
            )
        tokens = self.patch_embedding(signal.view(len(signal), self.num_patches, self.patch_size))
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        encoded = self.encoder(tokens + self.position_embedding)
        pooled = encoded[:, 0] if self.pool == "cls" else encoded.mean(dim=1)
        return self.head(pooled)


class StepwiseGRU(nn.Module):
    """A one-layer GRU that calls an `nn.GRUCell` once per position, h_t = cell(x_t, h_{t-1}):
    the recurrence written out, so that its sequential steps can be counted.

    `from_torch` copies an `nn.GRU`'s weights; the outputs then equal the GRU's.

    Source: Cho et al. 2014, section 2.3 (the gated recurrent unit).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.cell = nn.GRUCell(input_size, hidden_size)

    @classmethod
    def from_torch(cls, gru: nn.GRU) -> StepwiseGRU:
        """Return a StepwiseGRU with the weights of a one-layer, one-way, batch-first `nn.GRU`.

        Source: torch.nn.GRU and torch.nn.GRUCell documentation (same gate layout r, z, n).
        """
        if gru.num_layers != 1 or gru.bidirectional or not gru.batch_first or not gru.bias:
            raise ValueError(
                "gru must have num_layers=1, bidirectional=False, batch_first=True, bias=True, "
                f"got num_layers={gru.num_layers}, bidirectional={gru.bidirectional}, "
                f"batch_first={gru.batch_first}, bias={gru.bias}"
            )
        ours = cls(gru.input_size, gru.hidden_size)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ours.cell, name).copy_(getattr(gru, f"{name}_l0"))
        return ours

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (N, L, hidden) states for an (N, L, input) sequence.

        Source: Cho et al. 2014, eqs. 5-8.
        """
        state = x.new_zeros(x.shape[0], self.cell.hidden_size)
        states = []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)  # needs h_{t-1}: step t waits for step t-1
            states.append(state)
        return torch.stack(states, dim=1)


class SelfAttention(nn.Module):
    """`MultiHeadAttention` with query = key = value = x, returning the output only."""

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.attention = MultiHeadAttention(embed_dim, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (N, L, embed_dim) self-attention output.

        Source: Vaswani et al. 2017, section 3.2.
        """
        return self.attention(x, need_weights=False)[0]


class TinyGPT(nn.Module):
    """A decoder-only Transformer: token and position embeddings, a causally masked encoder
    stack (pre-norm), and a linear head that predicts the next token at every position.

    BERT stacks the same encoder layers without the causal mask and trains them to fill in
    masked tokens; GPT keeps the mask so that position t sees only tokens <= t.

    Source: Radford et al. 2018 (GPT), section 3.1; Radford et al. 2019 (GPT-2), section 2.3.
    """

    def __init__(
        self,
        vocab: int,
        context: int,
        *,
        embed_dim: int = 32,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int | None = None,
    ):
        super().__init__()
        check_positive_int("vocab", vocab)
        check_positive_int("context", context)
        self.context = context
        self.token_embedding = nn.Embedding(vocab, embed_dim)
        self.position_embedding = nn.Parameter(torch.randn(1, context, embed_dim) * 0.02)
        self.blocks = TransformerEncoder(
            num_layers, embed_dim, num_heads, ff_dim, activation="gelu"
        )
        self.head = nn.Linear(embed_dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return (N, T, vocab) next-token logits for (N, T) token ids, T <= context.

        Source: Radford et al. 2018 (GPT), eq. 2.
        """
        if tokens.dim() != 2 or not 1 <= tokens.shape[1] <= self.context:
            raise ValueError(
                f"tokens must be (N, T) with 1 <= T <= context={self.context}, got shape "
                f"{tuple(tokens.shape)}"
            )
        x = self.token_embedding(tokens) + self.position_embedding[:, : tokens.shape[1]]
        return self.head(self.blocks(x, is_causal=True))

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, steps: int) -> torch.Tensor:
        """Return `prompt` (N, T) followed by `steps` greedily chosen tokens.

        Source: Radford et al. 2019 (GPT-2), section 3 (autoregressive sampling), greedy.
        """
        tokens = prompt
        for _ in range(steps):
            logits = self(tokens[:, -self.context :])
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        return tokens
