"""One small training loop for the whole kit: `fit` trains a classifier or a token predictor
for a number of epochs and calls a hook after each, which is how early stopping, median stopping
and Hyperband watch a run; `evaluate` measures loss and accuracy on a loader. Start with `fit`.

A loader yields batches `(*inputs, target)` and the model is called as `model(*inputs)`: one
input for a classifier, two for a decoder that reads the targets (teacher forcing). Logits are
(N, C) for one label per sample or (N, T, C) for one per token; loss and accuracy are taken
over every element of the target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from effdl._checks import check_non_negative_int, check_positive_int, check_positive_number

#: An epoch hook gets the epoch's record and returns True to stop training.
EpochHook = Callable[[dict[str, float]], bool | None]


@dataclass
class History:
    """Per-epoch records of a `fit` run; each a dict with epoch, losses, accuracies, lr, seconds."""

    records: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    def __getitem__(self, key: str) -> list[float]:
        return [r[key] for r in self.records if key in r]

    @property
    def last(self) -> dict[str, float]:
        """Return the last epoch's record."""
        return self.records[-1] if self.records else {}

    def __len__(self) -> int:
        return len(self.records)


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    *,
    epochs: int = 10,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-2,
    schedule: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    loss_inputs: int = 0,
    clip: float | None = None,
    seed: int = 0,
    on_epoch: EpochHook | None = None,
    verbose: bool = True,
) -> History:
    """Return the `History` of training `model` for `epochs` epochs on `train_loader`.

    Each batch is `(*inputs, target)`; `model(*inputs)` returns (N, C) logits for an (N,)
    target or (N, T, C) for an (N, T) target (a sequence scored per token). `loss_fn` (default
    cross-entropy) sees the logits and targets flattened to (N*T, C) and (N*T,), and accuracy
    counts argmax(-1) == target over all target elements. With `loss_inputs=k` the k items
    before the target go to the loss, not the model: a batch `(*inputs, *extras, target)` calls
    `model(*inputs)` and `loss_fn(logits, target, *extras)`, each extra flattened like the
    target (e.g. a teacher's stored logits for distillation); validation batches are then plain
    `(*inputs, target)`, scored with cross-entropy. `clip` bounds the gradients' global
    norm before each step (the usual guard for recurrent nets); None leaves them alone. The
    optimizer defaults to Adam with learning rate `lr`; `schedule` builds a learning-rate
    scheduler from the optimizer and is stepped once per epoch. After each epoch the model is
    evaluated on `val_loader` (if given) and `on_epoch(record)` is called; a True return stops
    training. `seed` fixes dropout and the loader's shuffling order where it draws from
    torch's global generator, and is restored afterwards.

    Source: the standard mini-batch SGD loop (Goodfellow et al. 2016, section 8.1.3);
    gradient-norm clipping as in Pascanu et al. 2013 and Bahdanau et al. 2015, section 4.2.
    """
    check_positive_int("epochs", epochs)
    check_non_negative_int("loss_inputs", loss_inputs)
    if clip is not None:
        check_positive_number("clip", clip)
    if optimizer is None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = schedule(optimizer) if schedule is not None else None
    loss_fn = loss_fn or nn.functional.cross_entropy
    history = History()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not verbose, leave=False):
            start = time.perf_counter()
            train_loss, train_acc = _train_one_epoch(
                model, train_loader, optimizer, loss_fn, clip, loss_inputs
            )
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "lr": optimizer.param_groups[0]["lr"],
            }
            if scheduler is not None:
                scheduler.step()
            if val_loader is not None:
                val = evaluate(model, val_loader, None if loss_inputs else loss_fn)
                record["val_loss"], record["val_acc"] = val["loss"], val["accuracy"]
            record["seconds"] = time.perf_counter() - start
            history.records.append(record)
            if on_epoch is not None and on_epoch(record):
                history.stopped_early = epoch < epochs
                break
    return history


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Return mean loss and accuracy of `model` on `loader`, in eval mode.

    Batches and logits as in `fit`: loss and accuracy are means over every target element
    (samples for a classifier, tokens for a sequence model). `loss_fn` must accept
    `reduction="sum"`, as torch's losses do.

    Source: the usual top-1 accuracy.
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    # A DataLoader without a generator draws its workers' base seed from torch's global
    # generator on every pass: fork it, so that evaluating leaves the caller's state alone.
    try:
        with torch.random.fork_rng(devices=[]):
            for batch in loader:
                logits, target = _flat_logits_and_target(model, batch)
                total_loss += float(loss_fn(logits, target, reduction="sum"))
                correct += int((logits.argmax(-1) == target).sum())
                seen += target.numel()
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("loader yielded no samples")
    return {"loss": total_loss / seen, "accuracy": correct / seen}


def _flat_logits_and_target(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the model's logits as (elements, C) and the target as (elements,)."""
    if not isinstance(batch, list | tuple) or len(batch) < 2:
        raise ValueError(
            "each batch must be (*inputs, target) with at least one input, got "
            f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}"
        )
    *inputs, target = batch
    outputs = model(*inputs)
    heads = outputs if isinstance(outputs, tuple) else (outputs,)
    for logits in heads:
        if logits.shape[:-1] != target.shape:
            raise ValueError(
                f"the model's logits must be the target's shape plus a class dimension, got "
                f"logits {tuple(logits.shape)} for target {tuple(target.shape)}"
            )
    flat = tuple(logits.reshape(-1, logits.shape[-1]) for logits in heads)
    return (flat if isinstance(outputs, tuple) else flat[0]), target.reshape(-1)


def _split_loss_inputs(batch, loss_inputs: int) -> tuple[list[torch.Tensor], tuple]:
    """Return the loss's extra inputs, flattened like the target, and the batch without them."""
    if not loss_inputs:
        return [], batch
    if not isinstance(batch, list | tuple) or len(batch) < loss_inputs + 2:
        raise ValueError(
            f"with loss_inputs={loss_inputs} each batch must be (*inputs, *extras, target) with "
            f"at least one input and {loss_inputs} extras, got {type(batch).__name__} of "
            f"length {len(batch) if hasattr(batch, '__len__') else '?'}"
        )
    *inputs, target = batch
    split = len(inputs) - loss_inputs
    extras = [e.flatten(0, target.dim() - 1) if target.dim() > 1 else e for e in inputs[split:]]
    return extras, (*inputs[:split], target)


def _train_one_epoch(model, loader, optimizer, loss_fn, clip, loss_inputs) -> tuple[float, float]:
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for batch in loader:
        optimizer.zero_grad(set_to_none=True)
        extras, batch = _split_loss_inputs(batch, loss_inputs)
        logits, target = _flat_logits_and_target(model, batch)
        loss = loss_fn(logits, target, *extras)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total_loss += loss.item() * target.numel()
        # A model with several heads (DeiT in training) predicts with their mean, as in eval.
        if isinstance(logits, tuple):
            logits = torch.stack(logits).mean(0)
        correct += int((logits.argmax(-1) == target).sum())
        seen += target.numel()
    return total_loss / seen, correct / seen
