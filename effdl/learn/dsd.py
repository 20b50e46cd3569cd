"""Dense-Sparse-Dense training (Han et al. 2017): train dense, prune the smallest weights and
retrain under that fixed mask, then let the pruned weights back in and retrain dense at a lower
learning rate. The sparse phase acts as a regulariser that moves the network out of a saddle;
the final model is dense, so it costs nothing at inference. Start with `dsd_masks` (one
magnitude mask per layer) and `sparse_phase` (training that keeps the masked weights at zero
under carried-over momentum), then `train_dsd` (the three phases, iterated if asked).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from effdl._checks import (
    check_fraction,
    check_module,
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
)
from effdl.compress.prune import magnitude_mask
from effdl.train import History, evaluate

#: The layers DSD prunes: every weight matrix and convolution kernel (biases and norms stay).
DSD_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
#: Han et al. 2017's sparsity for CNNs (section 4.1-4.4).
DSD_SPARSITY = 0.3
#: The phases of one DSD cycle, as `train_dsd` labels its epochs.
PHASES = ("dense", "sparse", "re-dense")


def dsd_masks(
    model: nn.Module,
    sparsity: float = DSD_SPARSITY,
    *,
    keep_first: bool = False,
    types: tuple[type[nn.Module], ...] = DSD_LAYERS,
) -> dict[str, Tensor]:
    """Return {layer name: 0/1 mask} removing the `sparsity` fraction of smallest-magnitude
    weights of every `types` layer, each layer on its own (the same sparsity in every layer).
    With `keep_first` the first such layer gets no mask (Han et al. keep the first conv
    dense: it has few weights and every one of them matters).

    Source: Han et al. 2017, "DSD: Dense-Sparse-Dense Training for Deep Neural Networks",
    section 2 (the per-layer threshold) and section 4 (30% for CNNs).
    """
    check_module("model", model)
    sparsity = check_fraction("sparsity", sparsity)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, types)]
    if not layers:
        raise ValueError(f"model has no layers of types {[t.__name__ for t in types]}")
    if keep_first:
        layers = layers[1:]
    return {name: magnitude_mask(module.weight.detach(), sparsity) for name, module in layers}


def apply_masks_(model: nn.Module, masks: Mapping[str, Tensor]) -> int:
    """Multiply each named layer's weight by its mask in place; return how many weights of the
    masked layers are non-zero after. Biases are left alone.

    Source: Han et al. 2017, section 2 (the sparse phase holds pruned weights at zero).
    """
    check_module("model", model)
    modules = dict(model.named_modules())
    nonzero = 0
    with torch.no_grad():
        for name, mask in masks.items():
            if name not in modules or not hasattr(modules[name], "weight"):
                raise ValueError(f"masks names {name!r}, which is not a layer with a weight")
            weight = modules[name].weight
            if mask.shape != weight.shape:
                raise ValueError(
                    f"masks[{name!r}] has shape {tuple(mask.shape)}, the weight "
                    f"{tuple(weight.shape)}"
                )
            weight.mul_(mask.to(weight.dtype))
            nonzero += int((weight != 0).sum())
    return nonzero


def sparse_phase(
    model: nn.Module,
    masks: Mapping[str, Tensor],
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
) -> tuple[float, float]:
    """Train `model` for one pass over `batches` = (x, y) pairs with the masked weights held at
    zero; return (mean loss, accuracy). The weights are masked before the first step and again
    after every optimizer step: masking only the gradients would not do, because momentum
    carried over from the dense phase keeps moving a pruned weight.

    Source: Han et al. 2017, section 2 (sparse training under a fixed mask).
    """
    apply_masks_(model, masks)
    return _one_pass(model, batches, optimizer, masks)


def train_dsd(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    *,
    sparsity: float = DSD_SPARSITY,
    epochs: tuple[int, int, int] = (10, 10, 10),
    lr: float = 0.05,
    momentum: float = 0.9,
    redense_lr_factor: float = 0.1,
    cycles: int = 1,
    keep_first: bool = False,
    seed: int = 0,
    verbose: bool = False,
) -> History:
    """Train `model` with Dense-Sparse-Dense and return its `History`.

    `epochs` = (dense, sparse, re-dense). One SGD optimizer (momentum carried across phases)
    runs the dense phase at `lr`; the sparse phase prunes each layer to `sparsity` by magnitude
    (`dsd_masks`, chosen once from the dense weights) and trains under that mask; the re-dense
    phase lets the pruned weights back in (they restart at zero) at `lr * redense_lr_factor`.
    With `cycles > 1` the sparse and re-dense phases repeat (iterated DSD), each new mask
    chosen from the latest dense weights, at the re-dense learning rate. `sparsity=0` gives
    plain dense training with exactly the same schedule, learning rates and batches: the fair
    control. Each epoch's record holds "phase", "cycle", "lr", "sparsity" (of the pruned
    layers), train_loss, train_acc, and with `val_loader` val_loss and val_acc.

    Source: Han et al. 2017, "DSD: Dense-Sparse-Dense Training for Deep Neural Networks",
    sections 2 and 3 (re-dense at a lower learning rate; iterated DSD).
    """
    check_module("model", model)
    sparsity = check_fraction("sparsity", sparsity)
    if not (isinstance(epochs, tuple | list) and len(epochs) == 3):
        raise ValueError(f"epochs must be (dense, sparse, re-dense) epoch counts, got {epochs!r}")
    dense, sparse, redense = (check_non_negative_int("epochs", e) for e in epochs)
    lr = check_positive_number("lr", lr)
    redense_lr_factor = check_positive_number("redense_lr_factor", redense_lr_factor)
    check_positive_int("cycles", cycles)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    plan = [("dense", 1, lr, dense)]
    for cycle in range(1, cycles + 1):
        plan.append(("sparse", cycle, lr if cycle == 1 else lr * redense_lr_factor, sparse))
        plan.append(("re-dense", cycle, lr * redense_lr_factor, redense))
    history = History()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        total = dense + cycles * (sparse + redense)
        bar = tqdm(total=total, desc="DSD epochs", disable=not verbose, leave=False)
        for phase, cycle, phase_lr, count in plan:
            for group in optimizer.param_groups:
                group["lr"] = phase_lr
            masks = dsd_masks(model, sparsity, keep_first=keep_first) if phase == "sparse" else {}
            if masks:
                apply_masks_(model, masks)
            for _ in range(count):
                start = time.perf_counter()
                loss, acc = _one_pass(model, train_loader, optimizer, masks)
                record = {
                    "epoch": len(history) + 1,
                    "phase": phase,
                    "cycle": cycle,
                    "lr": phase_lr,
                    "sparsity": _masked_sparsity(model, masks),
                    "train_loss": loss,
                    "train_acc": acc,
                }
                if val_loader is not None:
                    val = evaluate(model, val_loader)
                    record["val_loss"], record["val_acc"] = val["loss"], val["accuracy"]
                record["seconds"] = time.perf_counter() - start
                history.records.append(record)
                bar.update()
        bar.close()
    return history


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _one_pass(model, batches, optimizer, masks) -> tuple[float, float]:
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        if masks:
            apply_masks_(model, masks)
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(-1) == y).sum())
        seen += len(y)
    if seen == 0:
        raise ValueError("batches yielded no samples")
    return total_loss / seen, correct / seen


def _masked_sparsity(model: nn.Module, masks: Mapping[str, Tensor]) -> float:
    """The fraction of zero weights over the layers DSD prunes (all of them when unmasked)."""
    layers = [m for m in model.modules() if isinstance(m, DSD_LAYERS)]
    zeros = sum(int((m.weight == 0).sum()) for m in layers)
    return zeros / sum(m.weight.numel() for m in layers)
