"""Attention from matmul and softmax: scaled dot-product and multi-head attention (Vaswani et
al. 2017, eq. 1 and section 3.2.2), and Bahdanau et al. 2015's additive attention in a GRU
encoder-decoder. Start with `scaled_dot_product_attention`, then `MultiHeadAttention`, then
`Seq2Seq`; the experiment that shows the information bottleneck attention removes is
`effdl.experiments.attention.bottleneck_experiment`.
Boolean masks keep True pairs, as in F.scaled_dot_product_attention (nn.MultiheadAttention: block).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from effdl._checks import check_positive_int


def causal_mask(num_queries: int, num_keys: int | None = None) -> torch.Tensor:
    """Return a boolean (num_queries, num_keys) mask, True where query t may see key s <= t.

    This is the lower triangle: position t attends to itself and to the past, never to the
    future, which is what lets a decoder be trained on whole sequences at once.

    Source: Vaswani et al. 2017, "Attention Is All You Need", section 3.2.3 (decoder masking).
    """
    num_keys = num_queries if num_keys is None else num_keys
    check_positive_int("num_queries", num_queries)
    check_positive_int("num_keys", num_keys)
    return torch.ones(num_queries, num_keys, dtype=torch.bool).tril()


def attention_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """Return softmax(q k^T / sqrt(d_k) + mask), the (..., L, S) attention weights.

    `q` is (..., L, d_k) and `k` is (..., S, d_k). `attn_mask` broadcasts to (..., L, S): a
    boolean mask keeps the True pairs, a float mask is added to the scores. `is_causal` adds
    `causal_mask(L, S)` (combined with `attn_mask` if both are given).

    Source: Vaswani et al. 2017, "Attention Is All You Need", eq. 1.
    """
    if q.dim() < 2 or k.dim() < 2 or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must be (..., L, d) and (..., S, d) with the same d, got q of shape "
            f"{tuple(q.shape)} and k of shape {tuple(k.shape)}"
        )
    # The 1/sqrt(d_k) keeps the dot products' variance near 1, so softmax does not saturate.
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        scores = _apply_mask(scores, attn_mask, "attn_mask")
    if is_causal:
        length, keys = scores.shape[-2:]
        scores = _apply_mask(scores, causal_mask(length, keys).to(q.device), "is_causal")
    return scores.softmax(dim=-1)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """Return softmax(q k^T / sqrt(d_k) + mask) v, the (..., L, d_v) attention output.

    Each output row is a weighted mean of the rows of `v` (..., S, d_v), weighted by how well
    its query matches each key; see `attention_weights` for the masks.

    Source: Vaswani et al. 2017, "Attention Is All You Need", eq. 1.
    """
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of positions S, got k of shape "
            f"{tuple(k.shape)} and v of shape {tuple(v.shape)}"
        )
    return attention_weights(q, k, attn_mask, is_causal) @ v


class MultiHeadAttention(nn.Module):
    """Multi-head attention from two `nn.Linear`s: a packed q/k/v projection and an output one.

    `in_proj` stacks W_q, W_k, W_v as rows (3 * embed_dim, embed_dim), the layout of
    `torch.nn.MultiheadAttention.in_proj_weight`, so `from_torch` copies weights one to one.
    Inputs are batch first: (N, L, embed_dim). Each of the `num_heads` heads attends in its
    own embed_dim / num_heads slice; the heads' outputs are concatenated and projected.
    Boolean `attn_mask` keeps True pairs (see the module docstring).

    Source: Vaswani et al. 2017, "Attention Is All You Need", section 3.2.2.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        check_positive_int("embed_dim", embed_dim)
        check_positive_int("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be divisible by num_heads, got embed_dim={embed_dim}, "
                f"num_heads={num_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.in_proj = nn.Linear(embed_dim, 3 * embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """Return a MultiHeadAttention holding a copy of a `torch.nn.MultiheadAttention`'s weights.

        Ours takes batch-first inputs whatever `module.batch_first` says; the weights are the same.

        Source: torch.nn.MultiheadAttention documentation (in_proj_weight, out_proj).
        """
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(f"module must be nn.MultiheadAttention, got {type(module).__name__}")
        if module.in_proj_weight is None:
            raise ValueError(
                "module must have kdim == vdim == embed_dim (a packed in_proj_weight), got "
                f"kdim={module.kdim}, vdim={module.vdim}, embed_dim={module.embed_dim}"
            )
        ours = cls(
            module.embed_dim,
            module.num_heads,
            dropout=module.dropout,
            bias=module.in_proj_bias is not None,
        )
        with torch.no_grad():
            ours.in_proj.weight.copy_(module.in_proj_weight)
            ours.out_proj.weight.copy_(module.out_proj.weight)
            if module.in_proj_bias is not None:
                ours.in_proj.bias.copy_(module.in_proj_bias)
                ours.out_proj.bias.copy_(module.out_proj.bias)
        return ours

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = True,
        average_attn_weights: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the (N, L, E) output and the weights, (N, L, S) averaged over heads (or
        (N, H, L, S) if not `average_attn_weights`; None if not `need_weights`).

        `key` and `value` default to `query` (self-attention). `key_padding_mask` is (N, S),
        True (or -inf) at padding; `attn_mask` is (L, S) or (N * num_heads, L, S), boolean True
        where attention is allowed, or float added to the scores. The returned weights are
        those before dropout.

        Source: Vaswani et al. 2017, "Attention Is All You Need", section 3.2.2.
        """
        key = query if key is None else key
        value = key if value is None else value
        self._check_inputs(query, key, value)
        batch, length, _ = query.shape
        keys = key.shape[1]
        if query is key and key is value:
            # Self-attention: one matmul projects q, k and v together.
            q, k, v = self.in_proj(query).chunk(3, dim=-1)
        else:
            w_q, w_k, w_v = self.in_proj.weight.chunk(3)
            b_q, b_k, b_v = (None,) * 3 if self.in_proj.bias is None else self.in_proj.bias.chunk(3)
            q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
        q, k, v = (self._split_heads(t) for t in (q, k, v))
        mask = self._combined_mask(key_padding_mask, attn_mask, batch, length, keys, query)
        weights = attention_weights(q, k, mask, is_causal)
        heads = self.dropout(weights) @ v  # (N, H, L, head_dim)
        output = self.out_proj(heads.transpose(1, 2).reshape(batch, length, self.embed_dim))
        if not need_weights:
            return output, None
        return output, weights.mean(dim=1) if average_attn_weights else weights

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def _check_inputs(self, query, key, value) -> None:
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3 or t.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"{name} must be (batch, length, embed_dim={self.embed_dim}), got shape "
                    f"{tuple(t.shape)}"
                )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                "query, key and value must share the batch size and key and value the length, "
                f"got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
            )

    def _combined_mask(self, key_padding_mask, attn_mask, batch, length, keys, like):
        """Return one additive (N or 1, H or 1, L or 1, S) float mask, or None."""
        mask = None
        if attn_mask is not None:
            allowed = {(length, keys), (batch * self.num_heads, length, keys)}
            if tuple(attn_mask.shape) not in allowed:
                raise ValueError(
                    f"attn_mask must have shape (L, S)=({length}, {keys}) or "
                    f"(N * num_heads, L, S)=({batch * self.num_heads}, {length}, {keys}), "
                    f"got {tuple(attn_mask.shape)}"
                )
            mask = _additive(attn_mask, keep=True, like=like)
            if mask.dim() == 3:
                mask = mask.view(batch, self.num_heads, length, keys)
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (batch, keys):
                raise ValueError(
                    f"key_padding_mask must have shape (N, S)=({batch}, {keys}), "
                    f"got {tuple(key_padding_mask.shape)}"
                )
            padding = _additive(key_padding_mask, keep=False, like=like)[:, None, None, :]
            mask = padding if mask is None else mask + padding
        return mask


class AdditiveAttention(nn.Module):
    """Bahdanau's alignment model: score(q, k) = v^T tanh(W_q q + W_k k), softmax over keys.

    The keys' projection W_k k does not depend on the decoder step, so a decoder computes it
    once per sequence (`project_keys`) and passes it to every step, as the paper's appendix
    notes.

    Source: Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and
    Translate", eq. 6 and appendix A.1.2.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        for name, value in (("query_dim", query_dim), ("key_dim", key_dim), ("attn_dim", attn_dim)):
            check_positive_int(name, value)
        self.query_proj = nn.Linear(query_dim, attn_dim, bias=False)  # W_a in the paper
        self.key_proj = nn.Linear(key_dim, attn_dim, bias=False)  # U_a
        self.score = nn.Linear(attn_dim, 1, bias=False)  # v_a

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """Return W_k k for (N, S, key_dim) keys: the step-independent half of the score.

        Source: Bahdanau et al. 2015, appendix A.1.2 (U_a h_j can be pre-computed).
        """
        return self.key_proj(keys)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor | None = None,
        *,
        key_padding_mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the (N, value_dim) context and the (N, S) weights that sum to 1 over S.

        `query` is (N, query_dim), `keys` (N, S, key_dim); `values` default to `keys` (the
        encoder states are both in Bahdanau et al.). `key_padding_mask` (N, S) is True at
        padding. Pass `projected_keys = project_keys(keys)` to reuse it across decoder steps.

        Source: Bahdanau et al. 2015, eqs. 5-6 (context c_i = sum_j alpha_ij h_j).
        """
        values = keys if values is None else values
        if query.dim() != 2 or keys.dim() != 3 or query.shape[0] != keys.shape[0]:
            raise ValueError(
                f"query must be (N, query_dim) and keys (N, S, key_dim), got query of shape "
                f"{tuple(query.shape)} and keys of shape {tuple(keys.shape)}"
            )
        projected = self.project_keys(keys) if projected_keys is None else projected_keys
        scores = self.score(torch.tanh(self.query_proj(query)[:, None, :] + projected)).squeeze(-1)
        if key_padding_mask is not None:
            if key_padding_mask.shape != scores.shape:
                raise ValueError(
                    f"key_padding_mask must have shape (N, S)={tuple(scores.shape)}, "
                    f"got {tuple(key_padding_mask.shape)}"
                )
            scores = scores + _additive(key_padding_mask, keep=False, like=scores)
        weights = scores.softmax(dim=-1)
        return torch.bmm(weights[:, None, :], values).squeeze(1), weights


class Seq2Seq(nn.Module):
    """A GRU encoder-decoder over a vocabulary of `vocab` tokens, with or without attention.

    The encoder is a (by default bidirectional) GRU whose states h_j are the annotations. Both
    variants feed the decoder a context vector at every step, so they differ only in that
    vector: without attention it is the encoder's last states, the same at every step (Cho et
    al. 2014: the bottleneck); with attention it is a fresh weighted sum of all h_j (Bahdanau
    et al. 2015). The decoder starts from tanh(W_s [last states]) and a beginning-of-sequence
    token (index `vocab`). Start with `decode`.

    Source: Bahdanau et al. 2015, section 3 and appendix A; Cho et al. 2014, section 2.2.
    """

    def __init__(
        self,
        vocab: int,
        hidden: int,
        attention: bool,
        *,
        embed_dim: int | None = None,
        bidirectional: bool = True,
    ):
        super().__init__()
        embed_dim = hidden if embed_dim is None else embed_dim
        for name, value in (("vocab", vocab), ("hidden", hidden), ("embed_dim", embed_dim)):
            check_positive_int(name, value)
        self.vocab, self.hidden, self.bos = vocab, hidden, vocab
        self.source_embedding = nn.Embedding(vocab, embed_dim)
        self.target_embedding = nn.Embedding(vocab + 1, embed_dim)  # + the BOS token
        self.encoder = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=bidirectional)
        annotation = 2 * hidden if bidirectional else hidden  # h_j = [forward_j; backward_j]
        self.attention = AdditiveAttention(hidden, annotation, hidden) if attention else None
        self.init_state = nn.Linear(annotation, hidden)  # s_0 = tanh(W_s [last states])
        # s_i = GRU(s_{i-1}, [y_{i-1}; c_i]); the logits read [s_i; c_i].
        self.decoder = nn.GRUCell(embed_dim + annotation, hidden)
        self.output = nn.Linear(hidden + annotation, vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor | None = None) -> torch.Tensor:
        """Return (N, T, vocab) logits: teacher-forced on `tgt` if given, else greedy.

        Source: Bahdanau et al. 2015, section 3.1.
        """
        return self.decode(src, tgt)[0]

    def decode(
        self, src: torch.Tensor, tgt: torch.Tensor | None = None, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (N, T, vocab) logits and the (N, T, S) attention weights (None without).

        With `tgt` (N, T) the decoder reads the true previous token (teacher forcing);
        without, it reads its own argmax for `length` steps (default: the source length).

        Source: Bahdanau et al. 2015, eqs. 4-6; Williams & Zipser 1989 (teacher forcing).
        """
        if src.dim() != 2 or src.dtype != torch.long:
            raise ValueError(
                f"src must be an (N, S) tensor of token ids, got {src.dtype} of shape "
                f"{tuple(src.shape)}"
            )
        states, last = self.encoder(self.source_embedding(src))  # (N, S, A), (D, N, H)
        summary = torch.cat(list(last), -1)  # the last state of each direction: (N, A)
        state = torch.tanh(self.init_state(summary))
        steps = tgt.shape[1] if tgt is not None else (length or src.shape[1])
        projected = self.attention.project_keys(states) if self.attention is not None else None
        previous = torch.full((src.shape[0], 1), self.bos, dtype=torch.long, device=src.device)
        if tgt is not None:  # teacher forcing: every decoder input is known, embed them at once
            inputs = self.target_embedding(torch.cat([previous, tgt[:, :-1]], 1))
        features, all_weights = [], []
        for i in range(steps):
            if self.attention is None:
                context = summary  # the bottleneck: one vector for the whole source
            else:
                context, weights = self.attention(state, states, projected_keys=projected)
                all_weights.append(weights)
            embedded = inputs[:, i] if tgt is not None else self.target_embedding(previous[:, 0])
            state = self.decoder(torch.cat([embedded, context], -1), state)
            features.append(torch.cat([state, context], -1))
            if tgt is None:
                previous = self.output(features[-1]).argmax(-1, keepdim=True)
        weights = torch.stack(all_weights, 1) if all_weights else None
        # The output layer does not feed the recurrence, so it runs once on all steps.
        return self.output(torch.stack(features, 1)), weights

    @torch.no_grad()
    def generate(
        self, src: torch.Tensor, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return greedy (N, T) tokens and the (N, T, S) attention weights (None without).

        Source: greedy decoding, as in Sutskever et al. 2014, section 3.2 with beam size 1.
        """
        was_training = self.training
        self.eval()
        try:
            logits, weights = self.decode(src, length=length)
        finally:
            self.train(was_training)
        return logits.argmax(-1), weights


def _apply_mask(scores: torch.Tensor, mask: torch.Tensor, name: str) -> torch.Tensor:
    try:
        shape = torch.broadcast_shapes(mask.shape, scores.shape)
    except RuntimeError:
        shape = None
    if shape != scores.shape:
        raise ValueError(
            f"{name} must broadcast to the scores' shape (..., L, S)={tuple(scores.shape)}, "
            f"got {tuple(mask.shape)}"
        )
    return scores + _additive(mask, keep=True, like=scores)


def _additive(mask: torch.Tensor, *, keep: bool, like: torch.Tensor) -> torch.Tensor:
    """Return a float mask to add to scores: 0 / -inf from a boolean mask (True = keep if
    `keep`, True = block if not), or the float mask itself."""
    if mask.dtype == torch.bool:
        blocked = ~mask if keep else mask
        return torch.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(
            blocked, float("-inf")
        )
    if not mask.is_floating_point():
        raise ValueError(f"masks must be bool or float tensors, got dtype {mask.dtype}")
    return mask.to(like.dtype)
