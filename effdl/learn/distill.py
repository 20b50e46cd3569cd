"""Knowledge distillation: a small student learns from a trained teacher's outputs as well as
from the labels. Start with `soft_targets` (a softmax at temperature T) and
`distillation_loss` (Hinton et al. 2015), then `teacher_logits` (run the teacher once and keep
its logits) and `distill` (train a student against them), `HintRegressor` and `hint_loss`
(hints on intermediate features, Romero et al. 2015), and last `DistilledViT` with
`deit_hard_loss` (DeiT's distillation token, Touvron et al. 2021). The experiments that train
students live in `effdl.experiments.distillation`."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from effdl._checks import check_in, check_positive_int
from effdl.models.transformer import TransformerEncoder
from effdl.train import History, fit

# ---------------------------------------------------------------------------------------------
# Soft targets and the distillation loss
# ---------------------------------------------------------------------------------------------


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    """Return softmax(logits / T) over the last dimension: the soft targets at temperature T.

    T = 1 is the ordinary softmax. A higher T flattens the distribution (its entropy rises with
    T), so the small probabilities the model gives to the wrong classes, which say how it sees
    the classes as alike, become large enough to learn from. The softmax subtracts each row's
    maximum before exponentiating, so logits of 1e3 give exact probabilities, not inf / inf.
    `logits` may be one example (C,) or a batch (..., C).

    Source: Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network",
    section 2, eq. 1.
    """
    T = _check_temperature(T)
    _check_logits("logits", logits)
    return torch.softmax(logits / T, dim=-1)


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target: Tensor | None = None,
    *,
    T: float = 4.0,
    alpha: float = 0.9,
) -> Tensor:
    """Return alpha * T^2 * KL(p_teacher || p_student) + (1 - alpha) * cross_entropy(student, y).

    Both distributions are taken at temperature T (`soft_targets`). The KL term is summed over
    classes and averaged over samples (every position for (N, L, C) logits), which for (N, C)
    logits is `F.kl_div(log p_student, p_teacher, reduction="batchmean")`. It has the gradient
    of the soft cross-entropy, (p_student - p_teacher) / T per sample, because the teacher's
    entropy is a constant; unlike the cross-entropy it is 0 when the student matches the teacher.
    The factor T^2 undoes the 1/T^2 by which the soft gradients shrink at high T, so the soft
    and hard parts keep their relative weight when T changes (section 2). The cross-entropy is
    on the student's ordinary (T = 1) logits. The teacher's logits are detached: no gradient
    reaches the teacher. alpha = 1 is the soft part alone and then `target` may be None;
    alpha = 0 is the plain cross-entropy.

    Source: Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network",
    section 2 (the weighted average of the two objectives and the T^2 factor).
    """
    T = _check_temperature(T)
    alpha = _check_alpha(alpha)
    _check_pair(student_logits, teacher_logits)
    classes = student_logits.shape[-1]
    student = student_logits.reshape(-1, classes)
    soft = hard = None
    if alpha > 0:
        teacher = teacher_logits.detach().reshape(-1, classes)
        log_p_student = F.log_softmax(student / T, dim=-1)
        log_p_teacher = F.log_softmax(teacher / T, dim=-1)
        # log_softmax stays finite for huge logits; a teacher probability that underflows to 0
        # multiplies a finite log and adds exactly 0, as 0 log 0 should.
        kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean()
        soft = alpha * T**2 * kl
    if alpha < 1:
        _check_target(target, student_logits, " (needed unless alpha = 1)")
        hard = (1 - alpha) * F.cross_entropy(student, target.reshape(-1))
    if soft is None:
        return hard
    return soft if hard is None else soft + hard


# ---------------------------------------------------------------------------------------------
# Running the teacher once
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def teacher_logits(
    teacher: nn.Module, loader_or_tensor: DataLoader | Tensor, *, batch_size: int = 512
) -> Tensor:
    """Return the teacher's logits for every sample, in order: (N, C), with no gradient.

    `loader_or_tensor` is a tensor of inputs (run in chunks of `batch_size`) or a DataLoader of
    `(*inputs, target)` batches as `effdl.train.fit` reads them (the teacher is called as
    `teacher(*inputs)`). A shuffling loader is refused: its order changes on every pass, so the
    stored logits would not line up with the samples. The teacher runs in eval mode (dropout
    off, batch-norm statistics frozen) and is put back in the mode it was in; torch's global
    random state is left as it was. Computing the logits once and storing them is what makes
    distillation cheap: the teacher is never run again while the student trains.

    Source: Hinton, Vinyals and Dean 2015, section 2 (the teacher's soft targets on a transfer
    set).
    """
    check_positive_int("batch_size", batch_size)
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
    if isinstance(loader_or_tensor, Tensor):
        if loader_or_tensor.dim() == 0 or len(loader_or_tensor) == 0:
            raise ValueError(
                f"loader_or_tensor holds no samples, got shape {tuple(loader_or_tensor.shape)}"
            )
        batches = [(chunk,) for chunk in loader_or_tensor.split(batch_size)]
    elif isinstance(loader_or_tensor, DataLoader):
        if isinstance(loader_or_tensor.sampler, RandomSampler):
            raise ValueError(
                "loader_or_tensor must not shuffle: a shuffled order changes on every pass, so "
                "the logits would not line up with the samples; pass shuffle=False"
            )
        batches = loader_or_tensor
    else:
        raise TypeError(
            "loader_or_tensor must be a Tensor of inputs or a DataLoader of (*inputs, target) "
            f"batches, got {type(loader_or_tensor).__name__}"
        )
    device = next((p.device for p in teacher.parameters()), None)
    was_training = teacher.training
    teacher.eval()
    outputs = []
    try:
        # A DataLoader draws its workers' base seed from the global generator on every pass.
        with torch.random.fork_rng(devices=[]):
            for batch in batches:
                inputs = batch[:-1] if isinstance(batch, list | tuple) and len(batch) > 1 else batch
                inputs = inputs if isinstance(inputs, list | tuple) else (inputs,)
                if device is not None:
                    inputs = [x.to(device) for x in inputs]
                outputs.append(teacher(*inputs))
    finally:
        teacher.train(was_training)
    if not outputs:
        raise ValueError("loader_or_tensor holds no samples")
    return torch.cat(outputs)


#: The losses `distill` trains with: Hinton et al.'s soft targets, or DeiT's hard labels on a
#: student with a distillation token.
DISTILL_METHODS = ("soft", "hard-token")


def distill(
    student: nn.Module,
    teacher: nn.Module,
    transfer: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None = None,
    *,
    method: str = "soft",
    T: float = 4.0,
    alpha: float = 0.9,
    epochs: int = 10,
    lr: float = 1e-2,
    batch_size: int = 100,
    seed: int = 0,
    verbose: bool = False,
) -> History:
    """Train `student` in place on the transfer set `(inputs, labels)` against `teacher`; return
    the `History` of `effdl.train.fit`.

    The teacher runs once over the transfer set (`teacher_logits`) and its logits are stored
    beside each sample, so every epoch costs only the student's forward and backward passes.
    `method="soft"` trains on `distillation_loss` at temperature `T` with weight `alpha` on the
    soft part; `method="hard-token"` trains a student whose training-mode forward returns
    (class_logits, distill_logits), such as `DistilledViT`, on `deit_hard_loss`, and ignores T
    and alpha. Batches of `batch_size` are shuffled by `seed`, which also seeds torch during
    training (the student's initialisation is the caller's); Adam at learning rate `lr`. `val`
    (inputs, labels) is scored with the ordinary cross-entropy after each epoch.

    Source: Hinton, Vinyals and Dean 2015, section 2; Touvron et al. 2021, section 4.
    """
    check_in("method", method, DISTILL_METHODS)
    if method == "soft":
        T, alpha = _check_temperature(T), _check_alpha(alpha)
    check_positive_int("batch_size", batch_size)
    inputs, labels = _check_transfer("transfer", transfer)
    stored = teacher_logits(teacher, inputs, batch_size=512)
    if method == "soft":

        def loss_fn(logits: Tensor, target: Tensor, teacher_out: Tensor) -> Tensor:
            return distillation_loss(logits, teacher_out, target, T=T, alpha=alpha)

    else:

        def loss_fn(heads: tuple[Tensor, Tensor], target: Tensor, teacher_out: Tensor) -> Tensor:
            if not isinstance(heads, tuple) or len(heads) != 2:
                raise ValueError(
                    'method="hard-token" needs a student whose training forward returns '
                    f"(class_logits, distill_logits), got {type(heads).__name__}"
                )
            return deit_hard_loss(*heads, target, teacher_out)

    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        TensorDataset(inputs, stored, labels),
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
    )
    val_loader = None
    if val is not None:
        val_loader = DataLoader(TensorDataset(*_check_transfer("val", val)), batch_size=512)
    return fit(
        student,
        train_loader,
        val_loader,
        epochs=epochs,
        lr=lr,
        loss_fn=loss_fn,
        loss_inputs=1,
        seed=seed,
        verbose=verbose,
    )


# ---------------------------------------------------------------------------------------------
# FitNets hints
# ---------------------------------------------------------------------------------------------


class HintRegressor(nn.Module):
    """A learned linear map from the student's guided-layer features to the teacher's hint
    layer's width: a 1x1 convolution on (N, C, H, W) feature maps, a linear layer on (N, C)
    feature vectors. Both use the same (teacher_channels, student_channels) weight, held in
    `self.linear`, so one regressor serves either kind of feature.

    A thin student's middle layer is narrower than the teacher's; the regressor lets it be
    compared with the teacher's anyway. It is trained with the student's first layers on
    `hint_loss` and thrown away afterwards. Romero et al.'s convolutional regressor may also
    shrink the spatial size (its kernel is chosen so that the sizes match); this one is 1x1,
    so the student's and teacher's feature maps must already have the same height and width.

    Source: Romero et al. 2015, "FitNets: Hints for Thin Deep Nets", section 2.2.
    """

    def __init__(self, student_channels: int, teacher_channels: int, *, bias: bool = True):
        super().__init__()
        self.student_channels = check_positive_int("student_channels", student_channels)
        self.teacher_channels = check_positive_int("teacher_channels", teacher_channels)
        self.linear = nn.Linear(student_channels, teacher_channels, bias=bias)

    def forward(self, features: Tensor) -> Tensor:
        """Return the regressed features: (N, teacher_channels) or (N, teacher_channels, H, W).

        Source: Romero et al. 2015, section 2.2 (the regressor r).
        """
        if (
            not isinstance(features, Tensor)
            or features.dim() not in (2, 4)
            or features.shape[1] != self.student_channels
        ):
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features)
            raise ValueError(
                f"features must be (N, {self.student_channels}) or "
                f"(N, {self.student_channels}, H, W), got {shape}"
            )
        if features.dim() == 2:
            return self.linear(features)
        return F.conv2d(features, self.linear.weight[:, :, None, None], self.linear.bias)


def hint_loss(
    student_features: Tensor,
    teacher_features: Tensor,
    regressor: nn.Module | None = None,
) -> Tensor:
    """Return 1/2 * ||teacher_features - regressor(student_features)||^2, averaged over the batch.

    This is FitNets' hint loss: the squared L2 distance between the teacher's hint (an
    intermediate layer's output) and the regressed output of the student's guided layer,
    halved. Reduction: the squared differences are summed over every feature of a sample
    (channels and positions) and averaged over the N samples, so it equals
    `F.mse_loss(..., reduction="sum") / (2 * N)`, not torch's default per-element mean.
    The teacher's features are detached. `regressor=None` compares the features directly,
    which needs equal shapes.

    Source: Romero et al. 2015, "FitNets: Hints for Thin Deep Nets", section 2.2, eq. 3.
    """
    for name, value in (
        ("student_features", student_features),
        ("teacher_features", teacher_features),
    ):
        if not isinstance(value, Tensor) or value.dim() < 2:
            raise ValueError(f"{name} must be a tensor of shape (N, ...), got {value!r:.60}")
    guided = student_features if regressor is None else regressor(student_features)
    hint = teacher_features.detach()
    if guided.shape != hint.shape:
        raise ValueError(
            "student_features (after the regressor) and teacher_features must have the same "
            f"shape, got {tuple(guided.shape)} and {tuple(hint.shape)}"
        )
    return 0.5 * (hint - guided).pow(2).sum() / len(hint)


# ---------------------------------------------------------------------------------------------
# DeiT's distillation token
# ---------------------------------------------------------------------------------------------


class DistilledViT(nn.Module):
    """A small vision transformer for 8x8 digits with DeiT's distillation token: two learned
    tokens, a class token and a distillation token, go through every layer beside the patches;
    the class token's output feeds a head trained on the labels, the distillation token's a head
    trained on the teacher.

    The image (N, in_channels, image_size, image_size) is cut into patch_size x patch_size
    patches, each embedded linearly (a convolution with stride = kernel = patch_size); the two
    tokens are prepended, a learned position embedding is added, and the tokens pass through
    the kit's pre-norm `TransformerEncoder`. In training mode `forward` returns
    (class_logits, distill_logits); in eval mode their average, the prediction of both heads
    together. (The paper's text adds the two heads' softmax outputs; averaging logits is the
    usual implementation, and the two rarely pick different classes.)
    `distill_token=False` gives the plain ViT, with one class token and one head, returning its
    logits in both modes: the like-for-like model without the token.

    Source: Touvron et al. 2021, "Training data-efficient image transformers & distillation
    through attention", section 4 and figure 2; Dosovitskiy et al. 2021 (ViT), eqs. 1-4.
    """

    def __init__(
        self,
        image_size: int = 8,
        num_classes: int = 10,
        *,
        in_channels: int = 1,
        patch_size: int = 2,
        embed_dim: int = 32,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int | None = 64,
        dropout: float = 0.0,
        distill_token: bool = True,
    ):
        super().__init__()
        check_positive_int("image_size", image_size)
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        check_positive_int("patch_size", patch_size)
        if image_size % patch_size:
            raise ValueError(
                f"patch_size must divide image_size={image_size}, got patch_size={patch_size}"
            )
        self.image_size, self.in_channels, self.patch_size = image_size, in_channels, patch_size
        self.distill_token = bool(distill_token)
        self.num_patches = (image_size // patch_size) ** 2
        extra = 2 if self.distill_token else 1
        #: Tokens the encoder sees: the patches plus the class (and distillation) token.
        self.num_tokens = self.num_patches + extra
        self.patch_embedding = nn.Conv2d(
            in_channels, embed_dim, kernel_size=patch_size, stride=patch_size
        )
        # Normal with std 0.02 for the tokens and positions, the scale ViT and DeiT use.
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.dist_token = (
            nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02) if self.distill_token else None
        )
        self.position_embedding = nn.Parameter(torch.randn(1, self.num_tokens, embed_dim) * 0.02)
        self.encoder = TransformerEncoder(
            num_layers, embed_dim, num_heads, ff_dim, dropout=dropout, activation="gelu"
        )
        self.head = nn.Linear(embed_dim, num_classes)
        self.head_dist = nn.Linear(embed_dim, num_classes) if self.distill_token else None

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Return (class_logits, distill_logits) in training, their average in eval mode; the
        plain ViT (`distill_token=False`) returns its logits in both. Each is (N, num_classes).

        `x` is (N, in_channels, image_size, image_size) or holds as many values per sample.

        Source: Touvron et al. 2021, section 4 ("Distillation token"); Dosovitskiy et al. 2021,
        eqs. 1-4.
        """
        side, channels = self.image_size, self.in_channels
        if x.numel() != len(x) * channels * side * side:
            raise ValueError(
                f"x must hold {channels}x{side}x{side} values per sample, got shape "
                f"{tuple(x.shape)}"
            )
        patches = self.patch_embedding(x.reshape(len(x), channels, side, side))
        tokens = [self.cls_token.expand(len(x), -1, -1)]
        if self.dist_token is not None:
            tokens.append(self.dist_token.expand(len(x), -1, -1))
        tokens.append(patches.flatten(2).transpose(1, 2))  # (N, num_patches, embed_dim)
        encoded = self.encoder(torch.cat(tokens, dim=1) + self.position_embedding)
        class_logits = self.head(encoded[:, 0])
        if self.head_dist is None:
            return class_logits
        distill_logits = self.head_dist(encoded[:, 1])
        if self.training:
            return class_logits, distill_logits
        return (class_logits + distill_logits) / 2


def deit_hard_loss(
    class_logits: Tensor, distill_logits: Tensor, target: Tensor, teacher_logits: Tensor
) -> Tensor:
    """Return 0.5 * CE(class_logits, target) + 0.5 * CE(distill_logits, argmax teacher_logits).

    DeiT's hard-label distillation: the class head learns the true labels and the distillation
    head the teacher's decisions, each a plain cross-entropy (mean over the batch). Only the
    teacher's argmax is used, so no temperature is needed; Touvron et al. found it better than
    soft distillation for their transformers.

    Source: Touvron et al. 2021, "Training data-efficient image transformers & distillation
    through attention", section 4 ("Hard-label distillation" and "Distillation token").
    """
    _check_logits("class_logits", class_logits)
    _check_logits("distill_logits", distill_logits)
    if class_logits.shape != distill_logits.shape:
        raise ValueError(
            "class_logits and distill_logits must have the same shape, got "
            f"{tuple(class_logits.shape)} and {tuple(distill_logits.shape)}"
        )
    _check_pair(distill_logits, teacher_logits, names=("distill_logits", "teacher_logits"))
    _check_target(target, class_logits)
    classes = class_logits.shape[-1]
    teacher_labels = teacher_logits.detach().reshape(-1, classes).argmax(-1)
    return 0.5 * F.cross_entropy(
        class_logits.reshape(-1, classes), target.reshape(-1)
    ) + 0.5 * F.cross_entropy(distill_logits.reshape(-1, classes), teacher_labels)


# ---------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------


def _check_temperature(T: object) -> float:
    if isinstance(T, bool) or not isinstance(T, numbers.Real) or not 0 < T < math.inf:
        raise ValueError(f"T (the temperature) must be a finite number > 0, got {T!r}")
    return float(T)


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a number in [0, 1], got {type(alpha).__name__} {alpha!r}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return float(alpha)


def _check_logits(name: str, logits: object) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        what = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"{name} must be a floating-point tensor of shape (..., C), got {what}")


def _check_pair(
    student: Tensor, teacher: Tensor, names: tuple[str, str] = ("student_logits", "teacher_logits")
) -> None:
    _check_logits(names[0], student)
    _check_logits(names[1], teacher)
    if student.shape[-1] != teacher.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of classes, got "
            f"{student.shape[-1]} and {teacher.shape[-1]}"
        )
    if student.shape != teacher.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape (one row per sample), got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )


def _check_target(target: object, logits: Tensor, note: str = "") -> None:
    want = tuple(logits.shape[:-1])
    if (
        not isinstance(target, Tensor)
        or target.is_floating_point()
        or target.is_complex()
        or target.dtype == torch.bool
        or tuple(target.shape) != want
    ):
        what = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(
            f"target must be an integer class-index tensor of shape {want}{note}, got {what}"
        )


def _check_transfer(name: str, pair: object) -> tuple[Tensor, Tensor]:
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(t, Tensor) for t in pair)
        or len(pair[0]) != len(pair[1])
        or len(pair[0]) == 0
    ):
        raise ValueError(
            f"{name} must be a pair (inputs, labels) of tensors with the same, non-zero number "
            f"of samples, got {pair!r:.80}"
        )
    return pair[0], pair[1]
