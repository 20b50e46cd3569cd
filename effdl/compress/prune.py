"""Pruning: remove the weights (or whole channels) that matter least, after Han et al. 2015
(magnitude pruning, iterated with fine-tuning) and Li et al. 2017 (L1 filter pruning). Start
with `magnitude_mask`, then `apply_masks_` (masks that hold through training), `prune_channels`
(a physically smaller CNN), the CSR format (`to_csr`, `csr_matmul`), and last `iterative_prune`
on Zhu & Gupta's gradual schedule.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from effdl._checks import (
    check_fraction,
    check_module,
    check_positive_int,
    check_positive_number,
    check_tensor,
)

#: Layer types whose weights the kit prunes unless told otherwise.
PRUNABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)

# Modules `prune_channels` may meet between a pruned Conv2d and the layer that reads its
# channels: they act on each channel separately (or not at all), so a removed channel stays
# removed through them.
_PER_CHANNEL = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Dropout2d,
)


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """Return a 0/1 mask (weight's dtype and shape) that removes the `sparsity` fraction of
    entries with the smallest |w|.

    k = round(sparsity * numel) entries are removed (Python's round: halves go to the even
    integer, so 2.5 removes 2). Among equal |w| the choice is `torch.topk`'s on the flattened
    |w|, exactly as `torch.nn.utils.prune.l1_unstructured(amount=sparsity)` makes it, so the
    two masks are equal, ties included.

    Source: Han et al. 2015, "Learning both Weights and Connections for Efficient Neural
    Networks", section 3.
    """
    check_tensor("weight", weight)
    sparsity = check_fraction("sparsity", sparsity)
    return _bottom_k_mask(weight, round(sparsity * weight.numel()))


def global_magnitude_masks(
    model_or_params: nn.Module | Mapping[str, Tensor],
    sparsity: float,
    *,
    types: tuple[type[nn.Module], ...] = PRUNABLE,
) -> dict[str, Tensor]:
    """Return one mask per layer, keyed by module name, from ONE |w| threshold across layers.

    `model_or_params` is a model (the weights of its `types` layers, in `named_modules` order)
    or a mapping name -> weight. The weights are flattened into one vector in that order and
    the round(sparsity * total) smallest |w| are removed, so layers with small weights lose
    more: the masks equal `prune.global_unstructured(..., pruning_method=prune.L1Unstructured,
    amount=sparsity)` over the same parameters in the same order.

    Source: Han et al. 2015, section 3 (one quality threshold for the whole network).
    """
    weights = _weights_of(model_or_params, types)
    sparsity = check_fraction("sparsity", sparsity)
    if not weights:
        raise ValueError(f"model_or_params has no weights of types {_names(types)} to prune")
    flat = torch.cat([w.detach().reshape(-1) for w in weights.values()])
    flat_mask = _bottom_k_mask(flat, round(sparsity * flat.numel()))
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = flat_mask[start : start + w.numel()].view_as(w).to(w.dtype)
        start += w.numel()
    return masks


def channel_mask(weight: Tensor, sparsity: float, *, norm: float = 1, dim: int = 0) -> Tensor:
    """Return a 0/1 mask (weight's dtype and shape) that zeroes whole slices along `dim`: the
    round(sparsity * size) slices with the smallest L-`norm`.

    With dim=0 on a Conv2d weight the slices are filters (output channels), ranked by the L1
    norm of their kernel weights as in Li et al. 2017. Equal to
    `prune.ln_structured(amount=sparsity, n=norm, dim=dim)`'s mask, ties included (both keep
    the slices `torch.topk` picks as largest).

    Source: Li et al. 2017, "Pruning Filters for Efficient ConvNets", section 3.1.
    """
    check_tensor("weight", weight)
    sparsity = check_fraction("sparsity", sparsity)
    check_positive_number("norm", norm)
    if weight.dim() < 2:
        raise ValueError(f"weight must have at least 2 dims to have channels, got {weight.dim()}")
    if not -weight.dim() <= dim < weight.dim():
        raise ValueError(f"dim must be in [{-weight.dim()}, {weight.dim()}), got {dim}")
    dim = dim % weight.dim()
    n_prune = round(sparsity * weight.shape[dim])
    if n_prune == 0:
        return torch.ones_like(weight)
    others = [d for d in range(weight.dim()) if d != dim]
    norms = torch.linalg.vector_norm(weight.detach(), ord=norm, dim=others)
    keep = torch.topk(norms, k=weight.shape[dim] - n_prune, largest=True).indices
    shape = [1] * weight.dim()
    shape[dim] = -1
    kept = torch.zeros(weight.shape[dim], dtype=weight.dtype)
    kept[keep] = 1
    return kept.view(shape).expand_as(weight).clone()


# ---------------------------------------------------------------------------------------------
# Masks that hold through training
# ---------------------------------------------------------------------------------------------


class MaskedWeight(nn.Module):
    """A parametrization weight = original * mask; `mask` is a buffer (saved in state_dict).

    Masking only the gradient would not keep pruned weights at zero: SGD's momentum and Adam's
    first moment carry gradients from before the pruning step (and Adam divides them by a tiny
    second moment), so "zero gradient" still moves a weight. Multiplying in the forward pass
    makes the weight the network sees exactly zero whatever the optimizer does to `original`.
    """

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().clone())

    def forward(self, original: Tensor) -> Tensor:
        return original * self.mask


def apply_masks_(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Return `model`, changed in place so that each named module's weight is
    `original * mask` (a `torch.nn.utils.parametrize` parametrization).

    A module already masked gets its mask replaced (masks are computed from the weight the
    network sees, so a later, sparser mask contains the earlier zeros). `module.weight` reads
    the masked weight; the trained values live in `parametrizations.weight.original`.

    Source: Han et al. 2015, section 3 (retraining with the pruned connections held at zero).
    """
    check_module("model", model)
    for name, mask in masks.items():
        module = _submodule(model, name)
        weight = module.weight
        if not isinstance(mask, Tensor) or mask.shape != weight.shape:
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(
                f"masks[{name!r}] must be a tensor of the weight's shape {tuple(weight.shape)}, "
                f"got {got}"
            )
        mask = mask.to(dtype=weight.dtype, device=weight.device)
        existing = _masked_parametrization(module)
        if existing is not None:
            existing.mask.copy_(mask)
        else:
            parametrize.register_parametrization(module, "weight", MaskedWeight(mask))
    return model


def remove_masks_(model: nn.Module) -> nn.Module:
    """Return `model` with every mask parametrization (pruning or weight sharing) baked in:
    each weight becomes a plain Parameter holding the masked (or shared) values.

    Safe on a `copy.deepcopy` of a masked model (see `bake_`).

    Source: torch.nn.utils.parametrize.remove_parametrizations (leave_parametrized=True).
    """
    check_module("model", model)
    for module in list(model.modules()):
        if _masked_parametrization(module) is not None:
            if set(module.parametrizations) == {"weight"}:
                _bake_module(module)
            else:  # other tensors stay parametrized
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


def bake_(model: nn.Module) -> nn.Module:
    """Return `model` with every parametrization (masks, shared weights, fake quantization)
    replaced in place by a plain Parameter holding its current value.

    torch's own `remove_parametrizations` deletes the tensor's property from the module's
    class, a class that `copy.deepcopy` shares between a model and its copies: removing a
    parametrization from a copy that way breaks the original. This restores the copy's own
    plain class instead and touches no shared class.

    Source: torch.nn.utils.parametrize (how parametrized modules are built).
    """
    check_module("model", model)
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            _bake_module(module)
    return model


def baked_copy(model: nn.Module) -> nn.Module:
    """Return a deep copy of `model` with every parametrization baked in (see `bake_`); the
    original keeps its parametrizations.

    Source: the kit's own convention.
    """
    return bake_(copy.deepcopy(model))


def masks_of(model: nn.Module) -> dict[str, Tensor]:
    """Return the mask of every masked module (pruning or weight sharing), keyed by name.

    Source: the kit's own convention (see `apply_masks_`).
    """
    check_module("model", model)
    out = {}
    for name, module in model.named_modules():
        masked = _masked_parametrization(module)
        if masked is not None:
            out[name] = masked.mask.clone()
    return out


def sparsity_of(model: nn.Module, *, types: tuple[type[nn.Module], ...] = PRUNABLE) -> float:
    """Return the fraction of exact zeros among the weights of `model`'s `types` layers.

    Source: Han et al. 2015 (sparsity = pruned connections / all connections).
    """
    weights = _weights_of(model, types)
    if not weights:
        raise ValueError(f"model has no weights of types {_names(types)}")
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    return zeros / sum(w.numel() for w in weights.values())


def layer_sparsities(
    model: nn.Module, *, types: tuple[type[nn.Module], ...] = PRUNABLE
) -> dict[str, float]:
    """Return each `types` layer's fraction of exact zeros in its weight, keyed by name.

    Source: Han et al. 2015, Table 2 (per-layer sparsity).
    """
    return {name: int((w == 0).sum()) / w.numel() for name, w in _weights_of(model, types).items()}


# ---------------------------------------------------------------------------------------------
# Structured pruning that shrinks the network
# ---------------------------------------------------------------------------------------------


def prune_channels(
    model: nn.Sequential, sparsity: float | Mapping[int, float], *, norm: float = 1
) -> nn.Sequential:
    """Return a NEW, smaller Sequential in which Conv2d layers lost whole output channels:
    those whose filters have the smallest L-`norm` (Li et al. 2017).

    `sparsity` is one fraction for every Conv2d, or a mapping from a Conv2d's position in the
    Sequential to its fraction (positions not named are left whole). Each removed channel also
    leaves the BatchNorm2d after it and the input channels of the next Conv2d, or the input
    features of the first Linear after a Flatten (in_features / channels features per channel,
    as Flatten lays them out channel by channel). A Conv2d whose channels no later layer reads
    (the model's output) is left whole when `sparsity` is a float and refused when named.
    The model may hold Conv2d (groups=1), BatchNorm2d, element-wise activations, pooling,
    Dropout, Flatten and Linear. The original model is not changed.

    The result computes what the original computes with the removed channels set to zero after
    their BatchNorm and activation; its parameters and MACs really fall (two stacked convs
    pruned by s: the second conv's MACs scale by (1 - s)^2).

    Source: Li et al. 2017, "Pruning Filters for Efficient ConvNets", section 3.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    check_positive_number("norm", norm)
    layers = list(model)
    fractions = _channel_fractions(layers, sparsity)
    new_layers: list[nn.Module] = []
    kept: Tensor | None = None  # indices of the channels the previous Conv2d kept
    channels = 0  # how many channels that Conv2d had before pruning
    flattened = False
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            if flattened:
                raise ValueError(f"model[{i}] is a Conv2d after a Flatten: not supported")
            keep_out = torch.arange(layer.out_channels)
            if fractions.get(i, 0.0) > 0:
                mask = channel_mask(layer.weight, fractions[i], norm=norm, dim=0)
                keep_out = torch.nonzero(mask.reshape(layer.out_channels, -1)[:, 0]).flatten()
                if keep_out.numel() == 0:
                    raise ValueError(
                        f"sparsity {fractions[i]} removes all {layer.out_channels} channels "
                        f"of model[{i}]: at least one must stay"
                    )
            new_layers.append(_sliced_conv(layer, keep_out, kept))
            kept, channels = keep_out, layer.out_channels
        elif isinstance(layer, nn.BatchNorm2d):
            new_layers.append(_sliced_batchnorm(layer, kept) if kept is not None else _copy(layer))
        elif isinstance(layer, nn.Flatten):
            flattened = True
            new_layers.append(_copy(layer))
        elif isinstance(layer, nn.Linear):
            if kept is not None and not flattened:
                raise ValueError(f"model[{i}] is a Linear reading conv channels without a Flatten")
            new = _copy(layer) if kept is None else _sliced_linear(layer, kept, channels, i)
            new_layers.append(new)
            kept = None
        elif isinstance(layer, _PER_CHANNEL):
            new_layers.append(_copy(layer))
        else:
            raise ValueError(
                f"model[{i}] is a {type(layer).__name__}; prune_channels supports Conv2d, "
                f"BatchNorm2d, Flatten, Linear and {_names(_PER_CHANNEL)}"
            )
    return nn.Sequential(*new_layers)


# ---------------------------------------------------------------------------------------------
# Compressed sparse rows
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CSR:
    """A matrix in compressed sparse row form: the non-zero `values` row by row, the column of
    each (`col_indices`), and where each row starts in them (`crow_indices`, rows + 1 entries,
    the last being the number of non-zeros)."""

    values: Tensor
    col_indices: Tensor
    crow_indices: Tensor
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:
        """Return the number of stored (non-zero) values."""
        return self.values.numel()

    def to_torch(self) -> Tensor:
        """Return the same matrix as torch's own sparse CSR tensor."""
        with warnings.catch_warnings():  # torch calls its sparse CSR support "beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                self.crow_indices,
                self.col_indices,
                self.values,
                size=self.shape,
                check_invariants=True,
            )

    def to_dense(self) -> Tensor:
        """Return the dense matrix."""
        dense = torch.zeros(self.shape, dtype=self.values.dtype)
        rows = _row_of_each_value(self)
        dense[rows, self.col_indices] = self.values
        return dense


def to_csr(weight: Tensor) -> CSR:
    """Return the CSR form of a 2-D tensor: the same three arrays (int64 indices) as
    `weight.to_sparse_csr()`, exact zeros (and -0.0) left out.

    Source: Saad 2003, "Iterative Methods for Sparse Linear Systems", section 3.4 (CSR).
    """
    check_tensor("weight", weight)
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (a matrix), got shape {tuple(weight.shape)}")
    weight = weight.detach()
    nonzero = weight != 0
    per_row = nonzero.sum(dim=1)
    crow = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(per_row, 0)])
    cols = torch.nonzero(nonzero)[:, 1]  # row-major order: row by row, columns ascending
    return CSR(weight[nonzero].clone(), cols, crow, (weight.shape[0], weight.shape[1]))


def csr_matmul(csr: CSR, x: Tensor) -> Tensor:
    """Return `csr @ x` for a dense x of shape (columns,) or (columns, k), in the CSR's dtype.

    Each stored value multiplies the row of x its column names, and the products are summed
    into their output rows (`index_add_`): work in proportion to the non-zeros, not the size.
    A Linear layer's y = x W^T is `csr_matmul(to_csr(W), x.T).T`. A readable reference, not
    a fast kernel: time torch's `csr.to_torch() @ x` for speed.

    Source: Saad 2003, section 3.4 (CSR matrix-vector product).
    """
    if not isinstance(csr, CSR):
        raise TypeError(f"csr must be a CSR (see to_csr), got {type(csr).__name__}")
    check_tensor("x", x)
    vector = x.dim() == 1
    x2 = x.unsqueeze(1) if vector else x
    if x2.dim() != 2 or x2.shape[0] != csr.shape[1]:
        raise ValueError(
            f"x must have shape ({csr.shape[1]},) or ({csr.shape[1]}, k) to multiply a "
            f"{csr.shape} matrix, got {tuple(x.shape)}"
        )
    out = torch.zeros(csr.shape[0], x2.shape[1], dtype=csr.values.dtype)
    rows = _row_of_each_value(csr)
    # chunks bound the (nnz, k) products held at once to a few MB
    step = max(1, 2**20 // max(1, x2.shape[1]))
    for start in range(0, csr.nnz, step):
        part = slice(start, start + step)
        products = csr.values[part, None] * x2[csr.col_indices[part]].to(csr.values.dtype)
        out.index_add_(0, rows[part], products)
    return out.squeeze(1) if vector else out


def csr_bytes(csr: CSR, *, value_bits: int = 32, index_bits: int = 32) -> int:
    """Return the bytes CSR storage takes: nnz values and column indices, rows + 1 row
    pointers, at the given widths (rounded up to whole bytes).

    torch stores int64 indices; 32 bits is what most CSR libraries use for a weight matrix.

    Source: Saad 2003, section 3.4; Han et al. 2016, "Deep Compression", section 2.
    """
    if not isinstance(csr, CSR):
        raise TypeError(f"csr must be a CSR (see to_csr), got {type(csr).__name__}")
    check_positive_int("value_bits", value_bits)
    check_positive_int("index_bits", index_bits)
    bits = csr.nnz * (value_bits + index_bits) + (csr.shape[0] + 1) * index_bits
    return math.ceil(bits / 8)


# ---------------------------------------------------------------------------------------------
# Sensitivity, schedules and iterative pruning
# ---------------------------------------------------------------------------------------------


def sensitivity_scan(
    model: nn.Module,
    score: Callable[[nn.Module], float],
    sparsities: Sequence[float],
    *,
    types: tuple[type[nn.Module], ...] = PRUNABLE,
) -> dict[str, list[float]]:
    """Return, for each `types` layer, `score(model)` with only that layer magnitude-pruned to
    each of `sparsities` (in order). Pruning happens on a copy: `model` is left unchanged.

    Source: Han et al. 2015, Figure 5 (sensitivity of each layer to pruning); Li et al. 2017,
    section 3.2.
    """
    check_module("model", model)
    if not callable(score):
        raise TypeError(f"score must be callable (model -> float), got {type(score).__name__}")
    sparsities = [check_fraction("sparsities", s) for s in sparsities]
    work = baked_copy(model)
    curves: dict[str, list[float]] = {}
    for name, weight in _weights_of(work, types).items():
        original = weight.detach().clone()
        curves[name] = []
        for s in sparsities:
            with torch.no_grad():
                weight.copy_(original * magnitude_mask(original, s))
            curves[name].append(float(score(work)))
        with torch.no_grad():
            weight.copy_(original)
    return curves


def gradual_sparsity(
    step: int, final_sparsity: float, n_steps: int, *, initial_sparsity: float = 0.0
) -> float:
    """Return Zhu & Gupta's sparsity at `step` of `n_steps`:
    s_t = s_f + (s_i - s_f) (1 - t / n)^3, which prunes fast while many weights are
    redundant and slowly near the end. Exactly s_i at step 0 and s_f at step n (and after).

    Source: Zhu & Gupta 2017, "To prune, or not to prune", section 3, eq. 1.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    check_positive_int("n_steps", n_steps)
    final_sparsity = check_fraction("final_sparsity", final_sparsity)
    initial_sparsity = check_fraction("initial_sparsity", initial_sparsity)
    if initial_sparsity > final_sparsity:
        raise ValueError(
            f"initial_sparsity must be <= final_sparsity ({final_sparsity}), got {initial_sparsity}"
        )
    if step >= n_steps:
        return final_sparsity
    return final_sparsity + (initial_sparsity - final_sparsity) * (1 - step / n_steps) ** 3


def iterative_prune(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    final_sparsity: float,
    *,
    steps: int = 5,
    epochs_per_step: int = 1,
    lr: float = 1e-3,
    seed: int = 0,
    global_: bool = True,
    types: tuple[type[nn.Module], ...] = PRUNABLE,
    verbose: bool = False,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Return (`model`, one row per step): at each step the model is pruned to the next
    sparsity of `gradual_sparsity` and fine-tuned with the masks held (`apply_masks_`), Adam
    at `lr` for `epochs_per_step` epochs of `effdl.train.fit`.

    Pruning is global (one threshold, `global_magnitude_masks`) or per layer (each layer to
    the same sparsity). `model` is changed in place and keeps its mask parametrizations
    (`remove_masks_` bakes them in). Rows: step, sparsity (the schedule's), measured_sparsity,
    val_acc_pruned (right after pruning) and val_acc (after fine-tuning).

    Source: Han et al. 2015, section 3.3 (iterative pruning); Zhu & Gupta 2017, section 3.
    """
    from effdl.train import evaluate, fit  # imported here: effdl.train is the heavier module

    check_module("model", model)
    final_sparsity = check_fraction("final_sparsity", final_sparsity)
    check_positive_int("steps", steps)
    check_positive_int("epochs_per_step", epochs_per_step)
    check_positive_number("lr", lr)
    rows = []
    for step in tqdm(range(1, steps + 1), desc="prune steps", disable=not verbose, leave=False):
        target = gradual_sparsity(step, final_sparsity, steps)
        if global_:
            masks = global_magnitude_masks(model, target, types=types)
        else:
            masks = {n: magnitude_mask(w, target) for n, w in _weights_of(model, types).items()}
        apply_masks_(model, masks)
        pruned_acc = evaluate(model, val_loader)["accuracy"]
        fit(model, train_loader, epochs=epochs_per_step, lr=lr, seed=seed + step, verbose=False)
        rows.append(
            {
                "step": step,
                "sparsity": target,
                "measured_sparsity": sparsity_of(model, types=types),
                "val_acc_pruned": pruned_acc,
                "val_acc": evaluate(model, val_loader)["accuracy"],
            }
        )
    return model, rows


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _bottom_k_mask(weight: Tensor, k: int) -> Tensor:
    mask = torch.ones_like(weight)
    if k > 0:  # the very call l1_unstructured makes, so that ties fall the same way
        smallest = torch.topk(weight.detach().abs().reshape(-1), k=k, largest=False).indices
        mask.view(-1)[smallest] = 0
    return mask


def _weights_of(
    model_or_params: nn.Module | Mapping[str, Tensor], types: tuple[type[nn.Module], ...]
) -> dict[str, Tensor]:
    if isinstance(model_or_params, nn.Module):
        if not isinstance(types, tuple) or not all(isinstance(t, type) for t in types):
            raise TypeError(f"types must be a tuple of module classes, got {types!r}")
        return {
            name: module.weight
            for name, module in model_or_params.named_modules()
            if isinstance(module, types) and isinstance(module.weight, Tensor)
        }
    if isinstance(model_or_params, Mapping):
        for name, w in model_or_params.items():
            check_tensor(f"model_or_params[{name!r}]", w)
        return dict(model_or_params)
    raise TypeError(
        "model_or_params must be an nn.Module or a mapping name -> weight, got "
        f"{type(model_or_params).__name__}"
    )


def _masked_parametrization(module: nn.Module) -> MaskedWeight | None:
    if not parametrize.is_parametrized(module, "weight"):
        return None
    for p in module.parametrizations.weight:
        if isinstance(p, MaskedWeight):
            return p
    return None


def _channel_fractions(
    layers: list[nn.Module], sparsity: float | Mapping[int, float]
) -> dict[int, float]:
    # A conv can lose channels only if a later Conv2d or Linear reads them.
    readers = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d | nn.Linear)]
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    for i in convs:
        if layers[i].groups != 1:
            raise ValueError(
                f"model[{i}] has groups={layers[i].groups}: only groups=1 is supported"
            )
    prunable = [i for i in convs if any(j > i for j in readers)]
    if isinstance(sparsity, Mapping):
        out = {}
        for i, s in sparsity.items():
            if i not in prunable:
                raise ValueError(
                    f"sparsity names position {i!r}, which is not a Conv2d followed by a layer "
                    f"reading its channels; allowed positions: {prunable}"
                )
            out[i] = check_fraction(f"sparsity[{i}]", s)
        return out
    s = check_fraction("sparsity", sparsity)
    return dict.fromkeys(prunable, s)


def _sliced_conv(conv: nn.Conv2d, keep_out: Tensor, keep_in: Tensor | None) -> nn.Conv2d:
    keep_in = torch.arange(conv.in_channels) if keep_in is None else keep_in
    new = nn.Conv2d(
        keep_in.numel(),
        keep_out.numel(),
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(conv.weight[keep_out][:, keep_in])
        if conv.bias is not None:
            new.bias.copy_(conv.bias[keep_out])
    return new.train(conv.training)


def _sliced_batchnorm(bn: nn.BatchNorm2d, keep: Tensor) -> nn.BatchNorm2d:
    new = _copy(bn)
    new.num_features = keep.numel()
    for name in ("weight", "bias"):
        if getattr(bn, name) is not None:
            setattr(new, name, nn.Parameter(getattr(bn, name).detach()[keep].clone()))
    for name in ("running_mean", "running_var"):
        if getattr(bn, name) is not None:
            setattr(new, name, getattr(bn, name)[keep].clone())
    return new


def _sliced_linear(linear: nn.Linear, keep: Tensor, channels: int, position: int) -> nn.Linear:
    if linear.in_features % channels:
        raise ValueError(
            f"model[{position}] has in_features={linear.in_features}, not a multiple of the "
            f"{channels} channels before it, so its features cannot be matched to channels"
        )
    per_channel = linear.in_features // channels
    # Flatten lays out (C, H, W) row-major: channel c owns features [c * per, (c + 1) * per).
    columns = (keep[:, None] * per_channel + torch.arange(per_channel)).reshape(-1)
    new = nn.Linear(
        columns.numel(),
        linear.out_features,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, columns])
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new.train(linear.training)


def _copy(module: nn.Module) -> nn.Module:
    return baked_copy(module)


def _bake_module(module: nn.Module) -> None:
    values = {name: getattr(module, name).detach().clone() for name in module.parametrizations}
    module.__class__ = module.__class__.__bases__[0]  # the class before parametrize wrapped it
    del module.parametrizations
    for name, value in values.items():
        setattr(module, name, nn.Parameter(value))


def _row_of_each_value(csr: CSR) -> Tensor:
    return torch.repeat_interleave(
        torch.arange(csr.shape[0]), torch.diff(csr.crow_indices), output_size=csr.nnz
    )


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        module = model.get_submodule(name)
    except AttributeError as err:
        raise ValueError(f"masks names {name!r}, which is not a module of model") from err
    if not isinstance(getattr(module, "weight", None), Tensor):
        raise ValueError(f"masks names {name!r}, a {type(module).__name__} without a weight")
    return module


def _names(types: Iterable[type]) -> str:
    return ", ".join(t.__name__ for t in types)
