"""The Transformer encoder from `nn.Linear` and our `MultiHeadAttention` (Vaswani et al. 2017,
section 3), an encoder classifier for mnist1d, a GPT-style next-token model, and the measurement
behind Table 1's "self-attention: O(1) sequential operations, recurrent layer: O(n)". Start with
`TransformerEncoderLayer` (pre-norm by default, post-norm by a flag), then `forward_time_vs_length`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from effdl.data.splits import Splits
from effdl.measure import count_params, cpu_latency
from effdl.models.attention import MultiHeadAttention, fit_tokens
from effdl.models.baselines import (
    MNIST1D_LENGTH,
    NUM_CLASSES,
    PAPER_BATCH_SIZE,
    PAPER_LR,
    ClassifierRun,
    GRUNet,
    train_classifier,
)

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
        if not isinstance(ff_dim, int) or ff_dim < 1:
            raise ValueError(f"ff_dim must be a positive int, got {ff_dim!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(_ACTIVATIONS)}, got {activation!r}")
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
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
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
    tokens, a 16x smaller attention matrix (and 4 beat 2 on mnist1d: 0.85 vs 0.79 test
    accuracy, CLS pooling, 30 epochs). Mean pooling is the default: it beat the CLS token on mnist1d
    (0.89 vs 0.85 after 30 epochs). Input: (N, 1, length) or (N, length).

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
        if not isinstance(patch_size, int) or patch_size < 1 or length % patch_size:
            raise ValueError(
                f"patch_size must be a positive int dividing length={length}, got {patch_size!r}"
            )
        if pool not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {pool!r}")
        self.length, self.patch_size, self.pool = length, patch_size, pool
        self.num_patches = length // patch_size
        tokens = self.num_patches + (pool == "cls")
        self.patch_embedding = nn.Linear(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if pool == "cls" else None
        # Small random positions, as in BERT and ViT (truncated normal, std 0.02).
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


#: Adam learning rate for the Transformer classifier: 1e-2 (the GRU's) trains it worse on
#: mnist1d (0.83 vs 0.86 test accuracy after 20 epochs), 3e-3 trains the GRU worse (0.63 vs 0.89).
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
    length = splits.input_shape[-1]
    builders = {
        "transformer": (
            lambda: TransformerClassifier(length, splits.num_classes, **transformer_kwargs),
            transformer_lr,
        ),
        "gru": (lambda: GRUNet(length, num_classes=splits.num_classes), gru_lr),
    }
    runs = {}
    for name, (build, lr) in tqdm(builders.items(), desc="models", disable=not verbose):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build()
        runs[name] = train_classifier(
            name,
            model,
            splits,
            loaders,
            epochs=epochs,
            lr=lr,
            seed=seed,
            latency=latency,
            verbose=verbose,
        )
    return runs


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


def sequential_steps(model: nn.Module, x: torch.Tensor, step_type: type[nn.Module]) -> int:
    """Return the longest chain of calls to `step_type` submodules in which each call takes
    the previous call's output as input: the steps that must run one after another.

    Counted with forward hooks during one forward pass: a self-attention layer is one call
    over all positions (1); a recurrent cell is called once per position, each on the last
    one's state (n).

    Source: Vaswani et al. 2017, Table 1 ("sequential operations"), measured rather than assumed.
    """
    depth_of_output: dict[int, int] = {}
    kept: list[torch.Tensor] = []  # holding every output keeps its id() from being reused
    longest = 0

    def record(module, inputs, output):
        nonlocal longest
        tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
        depth = 1 + max((depth_of_output.get(id(t), 0) for t in tensors), default=0)
        outputs = output if isinstance(output, tuple) else (output,)
        for out in outputs:
            if isinstance(out, torch.Tensor):
                depth_of_output[id(out)] = depth
                kept.append(out)
        longest = max(longest, depth)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, step_type)]
    if not handles:
        raise ValueError(f"model has no submodule of step_type {step_type.__name__}")
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return longest


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
    from effdl.measure import count_macs

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
        for name, value in (("vocab", vocab), ("context", context)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
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


def make_arithmetic_corpus(
    num_samples: int, length: int, seed: int, vocab: int = 10
) -> torch.Tensor:
    """Return (num_samples, length) sequences x_t = (a + t b) mod vocab, a and b random.

    After two tokens the rest is determined, but only by looking back: a next-token model must
    attend to earlier positions to find b.

    Source: a generated corpus for this kit (no published counterpart).
    """
    for name, value in (("num_samples", num_samples), ("length", length), ("vocab", vocab)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
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
    losses = fit_tokens(
        model,
        (corpus[:, :-1],),
        corpus[:, 1:],
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
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
        "final_loss": losses[-1],
        "params": count_params(model),
        "chance": 1 / 10,
    }
