"""Lesson 05's experiments: a small MLP student on mnist1d trained alone and distilled from a
convolutional teacher at several temperatures, Hinton's transfer set without one class with
its bias correction, FitNets hints before distillation, and DeiT's distillation token in a
tiny vision transformer on 8x8 digits. Called by course/05_distillation.ipynb and by the
ledger claims `distill` and `deit-token` (effdl/claims/distillation.py). Start with
`train_teacher`, then `student_vs_distilled`.

Every student is compared with itself: the same initial weights and the same batch order,
trained on the labels alone or against the teacher, so the difference is the teacher's.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from effdl._checks import check_in, check_non_negative_int, check_positive_int, check_seeds
from effdl.data import Splits, load_mnist1d
from effdl.learn.distill import DistilledViT, HintRegressor, distill, hint_loss
from effdl.measure import count_params, torch_threads
from effdl.models.baselines import MLP, ConvNet1d
from effdl.train import History, evaluate, fit

#: The mnist1d teacher: the reference 1-D CNN widened from 25 to 64 channels (about 28k
#: parameters), Adam at TEACHER_LR for TEACHER_EPOCHS epochs of batch BATCH_SIZE (about 86%).
TEACHER_CHANNELS = 64
TEACHER_EPOCHS = 40
TEACHER_LR = 3e-3
#: The student: the reference MLP with 128 hidden units (about 23k parameters and 23k MACs
#: against the teacher's 28k and 194k), Adam at STUDENT_LR (the mnist1d recipe's 1e-2) for
#: STUDENT_EPOCHS epochs.
STUDENT_HIDDEN = 128
STUDENT_EPOCHS = 20
STUDENT_LR = 1e-2
BATCH_SIZE = 100
#: Weight of the soft part of the loss (Hinton et al. weight the hard part "considerably
#: lower"), and the temperatures of the sweep.
ALPHA = 0.9
TEMPERATURES = (1, 4, 8)
SEEDS = (0, 1, 2, 3, 4)
#: Hinton et al. 2015, section 3, left out the digit 3; mnist1d's 3 is a shape like MNIST's.
OMITTED_CLASS = 3
TRANSFER_T = 8.0
#: The output-bias shifts tried for the omitted class, chosen on the validation split.
BIAS_SHIFTS = tuple(0.25 * i for i in range(41))
#: DeiT on digits: `DistilledViT`'s defaults (2x2 patches, width 32, 2 layers, 4 heads),
#: the lesson 03 digits CNN as the teacher (98% test accuracy).
DEIT_EPOCHS = 40
DEIT_SEEDS = (0, 1, 2)
DEIT_LR = 2e-3
DEIT_BATCH_SIZE = 64
#: FitNets: epochs of hint training (stage 1) before distillation (stage 2).
HINT_EPOCHS = 10
#: The lesson's reduced setting: two seeds instead of five (three for DeiT), so each
#: experiment takes seconds on 2 cores; the ledger runs the defaults.
REDUCED = {"seeds": (0, 1)}


# ---------------------------------------------------------------------------------------------
# The teacher and the student
# ---------------------------------------------------------------------------------------------


def build_teacher(seed: int = 0) -> ConvNet1d:
    """Return an untrained mnist1d teacher (`ConvNet1d` with TEACHER_CHANNELS channels),
    initialised from `seed` (torch's global generator is left alone).

    Source: Greydanus 2020, "Scaling down deep learning", section 2 (the reference CNN).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConvNet1d(channels=TEACHER_CHANNELS)


def build_student(seed: int = 0, hidden: int = STUDENT_HIDDEN) -> MLP:
    """Return an untrained mnist1d student (the reference `MLP` with `hidden` units),
    initialised from `seed`.

    Source: Greydanus 2020, section 2 (the reference MLP, 100 units, made smaller).
    """
    check_positive_int("hidden", hidden)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(hidden=hidden)


def train_teacher(
    seed: int = 0, *, epochs: int = TEACHER_EPOCHS, verbose: bool = False
) -> tuple[ConvNet1d, Splits]:
    """Return (the trained teacher in eval mode, the mnist1d splits it was trained on):
    `build_teacher(seed)` trained by `effdl.train.fit` on `load_mnist1d(seed=seed)`, one thread.

    Source: the kit's own protocol (effdl.train.fit with Adam).
    """
    check_positive_int("epochs", epochs)
    splits = load_mnist1d(seed=seed)
    teacher = build_teacher(seed)
    train_loader, val_loader, _ = splits.loaders(batch_size=BATCH_SIZE, seed=seed)
    with torch_threads(1):
        fit(teacher, train_loader, val_loader, epochs=epochs, lr=TEACHER_LR, seed=seed,
            verbose=verbose)  # fmt: skip
    return teacher.eval(), splits


def accuracy_percent(model: nn.Module, pair: tuple[Tensor, Tensor]) -> float:
    """Return `model`'s top-1 accuracy on `pair` = (inputs, labels), in percent.

    Source: the usual top-1 accuracy (effdl.train.evaluate).
    """
    loader = DataLoader(TensorDataset(*pair), batch_size=512)
    with torch_threads(1):
        return 100.0 * evaluate(model, loader)["accuracy"]


# ---------------------------------------------------------------------------------------------
# Student alone against distilled
# ---------------------------------------------------------------------------------------------


def student_vs_distilled(
    temperatures: Sequence[float] = TEMPERATURES,
    seeds: Sequence[int] = SEEDS,
    *,
    epochs: int = STUDENT_EPOCHS,
    alpha: float = ALPHA,
    hidden: int = STUDENT_HIDDEN,
    teacher: nn.Module | None = None,
    splits: Splits | None = None,
    verbose: bool = True,
) -> dict:
    """Train the student alone (labels only) and distilled at each temperature, once per seed.

    For each seed the student starts from the same weights (`build_student(seed)`) and sees the
    same batches in every run. Returns a dict: "rows", one per run, each {"T": None (alone) or
    the temperature, "seed", "accuracy" (test, %), "train_accuracy" (on the training split, %:
    how well the student fits the signals it learned from), "errors" (test errors out of
    "test_size"), "val_curve" (validation accuracy % after each epoch)}; "teacher_accuracy"
    and "teacher_train_accuracy" (%), "teacher_params", "student_params". `teacher` and
    `splits` default to `train_teacher(0)`.
    Read it with `sweep_summary` and `sweep_seed_rows`.

    Source: Hinton, Vinyals and Dean 2015, sections 2 and 3 (a small net trained on the labels
    against the same net trained on a big net's soft targets).
    """
    temperatures = tuple(temperatures)
    if not temperatures:
        raise ValueError("temperatures must name at least one temperature, got none")
    seeds = check_seeds(seeds)
    check_positive_int("epochs", epochs)
    if teacher is None or splits is None:
        teacher, splits = train_teacher(0)
    test_size = len(splits.test[1])
    runs = [(None, s) for s in seeds] + [(T, s) for T in temperatures for s in seeds]
    rows = []
    with torch_threads(1):
        for T, seed in tqdm(runs, desc="students", disable=not verbose, leave=False):
            student = build_student(seed, hidden)
            history = _train_student(student, teacher, splits, T, alpha, epochs, seed)
            accuracy = accuracy_percent(student, splits.test)
            rows.append(
                {
                    "T": T,
                    "seed": seed,
                    "accuracy": accuracy,
                    "train_accuracy": accuracy_percent(student, splits.train),
                    "errors": round(test_size * (1 - accuracy / 100)),
                    "test_size": test_size,
                    "val_curve": [100 * v for v in history["val_acc"]],
                }
            )
    return {
        "rows": rows,
        "teacher_accuracy": accuracy_percent(teacher, splits.test),
        "teacher_train_accuracy": accuracy_percent(teacher, splits.train),
        "teacher_params": count_params(teacher),
        "student_params": count_params(build_student(0, hidden)),
        "epochs": epochs,
        "alpha": alpha,
    }


def sweep_seed_rows(sweep: Mapping) -> list[dict]:
    """Return `sweep`'s runs as plain rows {"T", "seed", "accuracy"}, T None for the student
    trained alone (the form lesson 05's exercise reads)."""
    return [{k: row[k] for k in ("T", "seed", "accuracy")} for row in _rows(sweep)]


def sweep_summary(sweep: Mapping) -> dict:
    """Return the means and spreads of a `student_vs_distilled` sweep: "alone" and
    "alone_std" (%), "distilled" and "distilled_std" ({T: %}), "best_T" (highest mean),
    "gain" (points, best T against alone), "error_ratio" (mean test errors distilled at the
    best T over mean errors alone), "teacher_accuracy", "seeds"; where the rows hold
    "train_accuracy", also "alone_train" and "distilled_train" ({T: %}), the mean accuracy on
    the training split, and "teacher_train_accuracy". The spread is the sample standard
    deviation over seeds (0 for one seed).

    Source: the kit's own summary (mean and spread over seeds).
    """
    groups: dict = {}
    errors: dict = {}
    for row in _rows(sweep):
        groups.setdefault(row["T"], []).append(row["accuracy"])
        errors.setdefault(row["T"], []).append(row["errors"])
    if None not in groups or len(groups) < 2:
        raise ValueError("sweep must hold runs of the student alone (T None) and distilled")
    alone = groups.pop(None)
    means = {T: statistics.fmean(a) for T, a in groups.items()}
    best = max(means, key=means.get)
    fits = {}
    if all("train_accuracy" in row for row in _rows(sweep)):
        train: dict = {}
        for row in _rows(sweep):
            train.setdefault(row["T"], []).append(row["train_accuracy"])
        fits = {
            "alone_train": statistics.fmean(train.pop(None)),
            "distilled_train": {T: statistics.fmean(a) for T, a in train.items()},
            "teacher_train_accuracy": sweep.get("teacher_train_accuracy", float("nan")),
        }
    return {
        "alone": statistics.fmean(alone),
        "alone_std": _std(alone),
        "distilled": means,
        "distilled_std": {T: _std(a) for T, a in groups.items()},
        "best_T": best,
        "gain": means[best] - statistics.fmean(alone),
        "error_ratio": statistics.fmean(errors[best]) / max(statistics.fmean(errors[None]), 1e-9),
        "teacher_accuracy": sweep.get("teacher_accuracy", float("nan")),
        "seeds": len(alone),
        **fits,
    }


# ---------------------------------------------------------------------------------------------
# A transfer set without one class
# ---------------------------------------------------------------------------------------------


def missing_class_transfer(
    omit: int = OMITTED_CLASS,
    seeds: Sequence[int] = SEEDS,
    *,
    T: float = TRANSFER_T,
    epochs: int = STUDENT_EPOCHS,
    alpha: float = ALPHA,
    teacher: nn.Module | None = None,
    splits: Splits | None = None,
    verbose: bool = True,
) -> list[dict]:
    """Distil the student on the training split without class `omit`, then raise that class's
    output bias; return one row per seed.

    Each row: "seed", "omitted", "test_size", "omitted_test" (test samples of the class),
    "label_errors" / "label_omitted_errors" (the same student trained on the same transfer set's
    labels alone: it can never predict the class), "errors" / "omitted_errors" (distilled),
    "bias_shift" (the shift of the class's output bias, from BIAS_SHIFTS, with the fewest
    validation errors; the validation split has the class), "corrected_errors" /
    "corrected_omitted_errors" (after the shift), each counted on the test split.

    Source: Hinton, Vinyals and Dean 2015, section 3 (the transfer set without 3s, and the
    bias raised by 3.5).
    """
    seeds = check_seeds(seeds)
    check_positive_int("epochs", epochs)
    if teacher is None or splits is None:
        teacher, splits = train_teacher(0)
    check_in("omit", omit, tuple(range(splits.num_classes)))
    x, y = splits.train
    keep = y != omit
    transfer = Splits(splits.name, (x[keep], y[keep]), splits.val, splits.test, splits.num_classes)
    y_test = splits.test[1]
    rows = []
    with torch_threads(1):
        for seed in tqdm(seeds, desc="transfer sets", disable=not verbose, leave=False):
            labels_only = build_student(seed)
            _train_student(labels_only, teacher, transfer, None, alpha, epochs, seed)
            student = build_student(seed)
            _train_student(student, teacher, transfer, T, alpha, epochs, seed)
            shift = _best_bias_shift(student, splits.val, omit)
            before = _errors(student, splits.test, omit)
            with torch.no_grad():
                student.output.bias[omit] += shift
            after = _errors(student, splits.test, omit)
            label = _errors(labels_only, splits.test, omit)
            rows.append(
                {
                    "seed": seed,
                    "omitted": omit,
                    "test_size": len(y_test),
                    "omitted_test": int((y_test == omit).sum()),
                    "label_errors": label[0],
                    "label_omitted_errors": label[1],
                    "errors": before[0],
                    "omitted_errors": before[1],
                    "bias_shift": shift,
                    "corrected_errors": after[0],
                    "corrected_omitted_errors": after[1],
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------
# FitNets hints
# ---------------------------------------------------------------------------------------------


def hints_then_distill(
    seeds: Sequence[int] = SEEDS,
    *,
    T: float = 4.0,
    hint_epochs: int = HINT_EPOCHS,
    epochs: int = STUDENT_EPOCHS,
    alpha: float = ALPHA,
    teacher: ConvNet1d | None = None,
    splits: Splits | None = None,
    verbose: bool = True,
) -> list[dict]:
    """Distil the student with and without FitNets' hint stage first; return one row per seed.

    Stage 1 trains the student's first hidden layer, through a `HintRegressor` to the teacher's
    width, to match the teacher's last convolutional features (the hint: 64 channels x 5
    positions, flattened) under `hint_loss`, for `hint_epochs` epochs; the regressor is then
    dropped. Stage 2 is the ordinary distillation at temperature `T`. Each row: "seed",
    "hint_loss_start" and "hint_loss_end" (stage 1, on the training split), "accuracy"
    (distilled alone, test %), "longer_accuracy" (distilled alone for `hint_epochs + epochs`
    epochs, as many passes over the data as the hinted student made: the control for the hint
    stage's extra training), "hinted_accuracy" (hints, then distilled).

    Source: Romero et al. 2015, "FitNets: Hints for Thin Deep Nets", sections 2.2 and 2.3.
    """
    seeds = check_seeds(seeds)
    check_non_negative_int("hint_epochs", hint_epochs)
    check_positive_int("epochs", epochs)
    if teacher is None or splits is None:
        teacher, splits = train_teacher(0)
    x, _ = splits.train
    with torch.no_grad():
        hints = teacher.eval().features(x).flatten(1)
    rows = []
    with torch_threads(1):
        for seed in tqdm(seeds, desc="hinted students", disable=not verbose, leave=False):
            plain = build_student(seed)
            _train_student(plain, teacher, splits, T, alpha, epochs, seed)
            longer = build_student(seed)
            _train_student(longer, teacher, splits, T, alpha, hint_epochs + epochs, seed)
            hinted = build_student(seed)
            start, end = _hint_stage(hinted, x, hints, hint_epochs, seed)
            _train_student(hinted, teacher, splits, T, alpha, epochs, seed)
            rows.append(
                {
                    "seed": seed,
                    "hint_loss_start": start,
                    "hint_loss_end": end,
                    "accuracy": accuracy_percent(plain, splits.test),
                    "longer_accuracy": accuracy_percent(longer, splits.test),
                    "hinted_accuracy": accuracy_percent(hinted, splits.test),
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------
# DeiT's distillation token
# ---------------------------------------------------------------------------------------------


def train_digits_teacher(seed: int = 0) -> tuple[nn.Module, Splits]:
    """Return (lesson 03's digits CNN trained, its digits splits): the DeiT teacher.

    Source: Touvron et al. 2021, section 5.2 (a convolutional teacher).
    """
    from effdl.experiments.quantization import train_float_model

    return train_float_model(seed)


def deit_token_experiment(
    seeds: Sequence[int] = DEIT_SEEDS,
    *,
    epochs: int = DEIT_EPOCHS,
    teacher: nn.Module | None = None,
    splits: Splits | None = None,
    verbose: bool = True,
) -> dict:
    """Train the tiny vision transformer on digits without distillation and with DeiT's
    distillation token (hard teacher labels), once per seed.

    Both arms start from the same seed and see the same batches; only the token, its head and
    the loss differ. Returns {"rows": [{"arm": "none" or "token", "seed", "accuracy"}],
    "teacher_accuracy", "params": {"none": ..., "token": ...}}; `deit_summary` reads it.
    `teacher` and `splits` default to `train_digits_teacher(0)`.

    Source: Touvron et al. 2021, "Training data-efficient image transformers & distillation
    through attention", section 4 and Table 5 (no distillation against the token).
    """
    seeds = check_seeds(seeds)
    check_positive_int("epochs", epochs)
    if teacher is None or splits is None:
        teacher, splits = train_digits_teacher(0)
    rows = []
    with torch_threads(1):
        for seed in tqdm(seeds, desc="vision transformers", disable=not verbose, leave=False):
            for arm in ("none", "token"):
                model = _vit(seed, token=arm == "token")
                if arm == "none":
                    train_loader, _, _ = splits.loaders(batch_size=DEIT_BATCH_SIZE, seed=seed)
                    fit(model, train_loader, epochs=epochs, lr=DEIT_LR, seed=seed, verbose=False)
                else:
                    distill(model, teacher, splits.train, method="hard-token", epochs=epochs,
                            lr=DEIT_LR, batch_size=DEIT_BATCH_SIZE, seed=seed)  # fmt: skip
                rows.append(
                    {"arm": arm, "seed": seed, "accuracy": accuracy_percent(model, splits.test)}
                )
    return {
        "rows": rows,
        "teacher_accuracy": accuracy_percent(teacher, splits.test),
        "params": {"none": count_params(_vit(0, False)), "token": count_params(_vit(0, True))},
        "test_size": len(splits.test[1]),
    }


def deit_summary(result: Mapping) -> dict:
    """Return {"none", "token" (mean test accuracy %), "none_std", "token_std", "gain"
    (points), "seeds", "teacher_accuracy"} of a `deit_token_experiment` result.

    Source: the kit's own summary (mean and spread over seeds).
    """
    groups: dict = {"none": [], "token": []}
    for row in result["rows"]:
        groups[row["arm"]].append(row["accuracy"])
    if not groups["none"] or not groups["token"]:
        raise ValueError("result must hold runs of both arms, 'none' and 'token'")
    summary = {arm: statistics.fmean(a) for arm, a in groups.items()}
    summary.update({f"{arm}_std": _std(a) for arm, a in groups.items()})
    summary["gain"] = summary["token"] - summary["none"]
    summary["seeds"] = len(groups["none"])
    summary["teacher_accuracy"] = result.get("teacher_accuracy", float("nan"))
    return summary


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _train_student(
    student: nn.Module,
    teacher: nn.Module,
    splits: Splits,
    T: float | None,
    alpha: float,
    epochs: int,
    seed: int,
) -> History:
    """Train on the labels alone (T None) or distilled at T; same batches either way."""
    if T is None:
        train_loader, val_loader, _ = splits.loaders(batch_size=BATCH_SIZE, seed=seed)
        return fit(student, train_loader, val_loader, epochs=epochs, lr=STUDENT_LR, seed=seed,
                   verbose=False)  # fmt: skip
    return distill(student, teacher, splits.train, splits.val, T=T, alpha=alpha, epochs=epochs,
                   lr=STUDENT_LR, batch_size=BATCH_SIZE, seed=seed)  # fmt: skip


def _errors(model: nn.Module, pair: tuple[Tensor, Tensor], cls: int) -> tuple[int, int]:
    """Return (all errors, errors on samples of class `cls`)."""
    x, y = pair
    with torch.no_grad():
        wrong = model.eval()(x).argmax(-1) != y
    return int(wrong.sum()), int(wrong[y == cls].sum())


def _best_bias_shift(model: MLP, pair: tuple[Tensor, Tensor], cls: int) -> float:
    """Return the shift from BIAS_SHIFTS of class `cls`'s output bias with the fewest errors
    on `pair` (the smallest shift among ties)."""
    x, y = pair
    with torch.no_grad():
        logits = model.eval()(x)
    best, fewest = 0.0, None
    for shift in BIAS_SHIFTS:
        shifted = logits.clone()
        shifted[:, cls] += shift
        errors = int((shifted.argmax(-1) != y).sum())
        if fewest is None or errors < fewest:
            best, fewest = shift, errors
    return best


def _hint_stage(
    student: MLP, x: Tensor, hints: Tensor, epochs: int, seed: int
) -> tuple[float, float]:
    """Train the student's first layer and a regressor on the hint loss; return the loss on the
    whole training split before and after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        regressor = HintRegressor(student.hidden1.out_features, hints.shape[1])
    guided = nn.Sequential(nn.Flatten(), student.hidden1, nn.ReLU(), regressor)

    def full_loss() -> float:
        with torch.no_grad():
            return float(hint_loss(guided(x), hints))

    start = full_loss()
    if epochs:
        optimizer = torch.optim.Adam(guided.parameters(), lr=STUDENT_LR)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for batch in torch.randperm(len(x), generator=generator).split(BATCH_SIZE):
                optimizer.zero_grad(set_to_none=True)
                hint_loss(guided(x[batch]), hints[batch]).backward()
                optimizer.step()
    return start, full_loss()


def _vit(seed: int, token: bool) -> DistilledViT:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DistilledViT(distill_token=token)


def _rows(sweep: Mapping) -> list[Mapping]:
    if not isinstance(sweep, Mapping) or "rows" not in sweep:
        raise ValueError(f"sweep must be the dict student_vs_distilled returns, got {sweep!r:.60}")
    return sweep["rows"]


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0
