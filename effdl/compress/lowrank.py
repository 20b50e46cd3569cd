"""Low-rank factorisation: replace a layer by two thinner ones from the truncated SVD of its
weight, after Denton et al. 2014 (a conv as a thin conv and a 1x1 conv) and Jaderberg et al.
2014 (a conv as a vertical and a horizontal conv). Start with `factorize_linear` (the
Eckart-Young theorem in one layer), then `factorize_conv`, `rank_for_energy` and last
`lowrank_model`, which factorises a whole network.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from effdl._checks import check_in, check_positive_int
from effdl.compress.prune import baked_copy

#: Layer types `lowrank_model` factorises unless told otherwise.
FACTORIZABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)

SCHEMES = ("channel", "spatial")


def factorize_linear(linear: nn.Linear, rank: int) -> nn.Sequential:
    """Return Sequential(Linear(in, rank, bias=False), Linear(rank, out)) computing the best
    rank-`rank` approximation of `linear`'s weight W (out x in), bias unchanged.

    From the SVD W = U S V^T: the first layer's weight is sqrt(S_r) V_r^T and the second's
    U_r sqrt(S_r), so their product is U_r S_r V_r^T, the truncated SVD. Splitting sqrt(S) over
    both sides keeps the two factors on one scale, which helps when fine-tuning them. By the
    Eckart-Young theorem no rank-r matrix is closer to W in Frobenius norm: the error is
    sqrt(sum of the dropped s_i^2). Parameters fall from in*out to rank*(in + out).

    Source: Denton et al. 2014, "Exploiting Linear Structure Within Convolutional Networks for
    Efficient Evaluation", section 3.2; Eckart & Young 1936.
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
    out_features, in_features = linear.weight.shape
    left, right = _split_svd(linear.weight.detach(), rank)  # (out, r), (r, in)
    first = _like(nn.Linear(in_features, rank, bias=False), linear)
    second = _like(nn.Linear(rank, out_features, bias=linear.bias is not None), linear)
    return _pair(first, second, right, left, linear)


def factorize_conv(conv: nn.Conv2d, rank: int, *, scheme: str = "channel") -> nn.Sequential:
    """Return Sequential of two thinner convolutions approximating `conv` at rank `rank`.

    "channel": conv(C -> rank, kh x kw, conv's stride/padding/dilation, no bias) then a 1x1
    conv(rank -> N, bias), from the SVD of the weight reshaped N x (C kh kw); `rank` at most
    min(N, C kh kw). "spatial": conv(C -> rank, kh x 1) then conv(rank -> N, 1 x kw), from the
    SVD of the weight rearranged (C kh) x (N kw), each conv taking the stride, padding and
    dilation of its own axis; `rank` at most min(C kh, N kw). Both factor pairs are the best of
    their form in Frobenius norm (truncated SVD, sqrt(S) on each side), and full rank
    reproduces `conv`. groups != 1 is refused.

    Source: Denton et al. 2014, section 3.2 (and Zhang et al. 2016 for the 1x1 form);
    Jaderberg, Vedaldi, Zisserman 2014, "Speeding up Convolutional Neural Networks with Low
    Rank Expansions", section 3, scheme 2 (its SVD solution: Tai et al. 2016, section 3).
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    check_in("scheme", scheme, SCHEMES)
    if conv.groups != 1:
        raise ValueError(f"conv must have groups=1 to be factorised, got groups={conv.groups}")
    n, c, kh, kw = conv.weight.shape
    weight = conv.weight.detach()
    if scheme == "channel":
        left, right = _split_svd(weight.reshape(n, c * kh * kw), rank)
        first = _conv_like(conv, c, rank, (kh, kw), conv.stride, conv.padding, conv.dilation)
        second = _conv_like(conv, rank, n, (1, 1), 1, 0, 1, bias=conv.bias is not None)
        first_weight = right.reshape(rank, c, kh, kw)
        second_weight = left.reshape(n, rank, 1, 1)
    else:
        if conv.padding_mode != "zeros":
            raise ValueError(
                f"scheme 'spatial' needs conv.padding_mode='zeros', got {conv.padding_mode!r}"
            )
        # A[(c, y), (n, x)] = W[n, c, y, x]: a rank-r A is r vertical then r horizontal filters
        matrix = weight.permute(1, 2, 0, 3).reshape(c * kh, n * kw)
        left, right = _split_svd(matrix, rank)  # (C kh, r), (r, N kw)
        sh, sw = conv.stride
        dh, dw = conv.dilation
        ph, pw = conv.padding if isinstance(conv.padding, tuple) else (conv.padding,) * 2
        first = _conv_like(conv, c, rank, (kh, 1), (sh, 1), _axis_pad(ph, 0), (dh, 1))
        second = _conv_like(
            conv, rank, n, (1, kw), (1, sw), _axis_pad(0, pw), (1, dw), bias=conv.bias is not None
        )
        first_weight = left.T.reshape(rank, c, kh, 1)
        second_weight = right.reshape(rank, n, kw).permute(1, 0, 2).reshape(n, rank, 1, kw)
    return _pair(first, second, first_weight, second_weight, conv)


def rank_for_energy(singular_values: Tensor, energy: float) -> int:
    """Return the smallest rank r whose singular values keep the fraction `energy` of the
    squared Frobenius norm: sum_{i<=r} s_i^2 >= energy * sum_i s_i^2 (s sorted descending).

    Source: Denton et al. 2014, section 3 (rank chosen by the kept share of the spectrum);
    Eckart & Young 1936.
    """
    if not isinstance(singular_values, Tensor) or singular_values.dim() != 1:
        raise TypeError("singular_values must be a 1-D torch.Tensor")
    if singular_values.numel() == 0 or bool((singular_values < 0).any()):
        raise ValueError("singular_values must be non-empty and >= 0")
    _check_energy(energy)
    squares = torch.sort(singular_values.double(), descending=True).values ** 2
    cumulative = torch.cumsum(squares, 0)
    if cumulative[-1] == 0:
        return 1
    reached = cumulative >= energy * cumulative[-1]
    return int(torch.nonzero(reached)[0]) + 1


def break_even_rank(m: int, n: int) -> int:
    """Return the largest rank r at which an m x n matrix stored as two factors (m x r and
    r x n) has fewer parameters than the matrix itself: r (m + n) < m n; 0 when none does.

    Source: Denton et al. 2014, section 3 (the parameter count of a factored layer).
    """
    check_positive_int("m", m)
    check_positive_int("n", n)
    return (m * n - 1) // (m + n)


def lowrank_model(
    model: nn.Module,
    *,
    energy: float | None = None,
    ranks: Mapping[str, int] | None = None,
    scheme: str = "channel",
    types: tuple[type[nn.Module], ...] = FACTORIZABLE,
    only_if_smaller: bool = True,
) -> nn.Module:
    """Return a copy of `model` in which `types` layers are replaced by their factorisation.

    A layer named in `ranks` gets that rank; every other `types` layer gets, when `energy` is
    given, the smallest rank keeping that share of its weight's energy (`rank_for_energy` on
    the singular values `factorize_linear` / `factorize_conv` would use), and is left alone
    when it is not. With `only_if_smaller`, a layer whose factors would have as many
    parameters as the layer or more is left alone. Conv2d layers use `scheme`; weight
    parametrizations (masks) are baked into the copy. `model` is not changed.

    Source: Denton et al. 2014, section 3; Jaderberg et al. 2014, section 3.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_in("scheme", scheme, SCHEMES)
    if energy is None and ranks is None:
        raise ValueError("give energy (a fraction in (0, 1]) or ranks (layer name -> rank)")
    if energy is not None:
        _check_energy(energy)
    ranks = dict(ranks or {})
    new = baked_copy(model)
    layers = {name: m for name, m in new.named_modules() if isinstance(m, types) and name}
    unknown = sorted(set(ranks) - set(layers))
    if unknown:
        raise ValueError(f"ranks names {unknown}, not {types} layers of model: {sorted(layers)}")
    for name, layer in layers.items():
        if not isinstance(layer, nn.Linear | nn.Conv2d) or getattr(layer, "groups", 1) != 1:
            continue
        matrix = _matrix(layer, scheme)
        if name in ranks:
            rank = ranks[name]
        elif energy is not None:
            rank = rank_for_energy(torch.linalg.svdvals(matrix), energy)
        else:
            continue
        factored = (
            factorize_linear(layer, rank)
            if isinstance(layer, nn.Linear)
            else factorize_conv(layer, rank, scheme=scheme)
        )
        if only_if_smaller and _n_params(factored) >= _n_params(layer):
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(new.get_submodule(parent_name), child, factored)
    return new


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _pair(
    first: nn.Module, second: nn.Module, first_weight: Tensor, second_weight: Tensor, old: nn.Module
) -> nn.Sequential:
    """Return Sequential(first, second) holding the two factors, `old`'s bias on the second layer
    and `old`'s training mode."""
    with torch.no_grad():
        first.weight.copy_(first_weight)
        second.weight.copy_(second_weight)
        if old.bias is not None:
            second.bias.copy_(old.bias)
    return nn.Sequential(first, second).train(old.training)


def _split_svd(matrix: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """Return (U_r sqrt(S_r), sqrt(S_r) V_r^T), whose product is the truncated SVD."""
    limit = min(matrix.shape)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= limit:
        raise ValueError(
            f"rank must be an int in [1, {limit}] for a {matrix.shape[0]} x {matrix.shape[1]} "
            f"matrix, got {rank!r}"
        )
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    root = s[:rank].sqrt()
    return (u[:, :rank] * root).to(matrix.dtype), (root[:, None] * vh[:rank]).to(matrix.dtype)


def _matrix(layer: nn.Module, scheme: str) -> Tensor:
    weight = layer.weight.detach()
    if isinstance(layer, nn.Linear):
        return weight
    n, c, kh, kw = weight.shape
    if scheme == "channel":
        return weight.reshape(n, c * kh * kw)
    return weight.permute(1, 2, 0, 3).reshape(c * kh, n * kw)


def _conv_like(conv, in_ch, out_ch, kernel, stride, padding, dilation, *, bias=False):
    new = nn.Conv2d(
        in_ch,
        out_ch,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=bias,
        padding_mode=conv.padding_mode,
    )
    return _like(new, conv)


def _axis_pad(ph: int | str, pw: int | str) -> tuple[int, int] | str:
    # padding="same"/"valid" is per axis already; numbers go to their own axis
    if isinstance(ph, str) or isinstance(pw, str):
        return ph if isinstance(ph, str) else pw
    return (ph, pw)


def _like(new: nn.Module, old: nn.Module) -> nn.Module:
    return new.to(device=old.weight.device, dtype=old.weight.dtype)


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _check_energy(energy: object) -> None:
    if isinstance(energy, bool) or not isinstance(energy, int | float):
        raise TypeError(f"energy must be a float in (0, 1], got {type(energy).__name__}")
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
