import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.testing import assert_close
from torch.utils.data import DataLoader, TensorDataset

from effdl.learn.distill import (
    DistilledViT,
    HintRegressor,
    deit_hard_loss,
    distill,
    distillation_loss,
    hint_loss,
    soft_targets,
    teacher_logits,
)
from effdl.train import fit

BATCH, CLASSES = 4, 10


def _zero_mean_logits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z_s = torch.randn(BATCH, CLASSES, generator=g, dtype=torch.float64)
    z_t = 2 * torch.randn(BATCH, CLASSES, generator=g, dtype=torch.float64)
    return z_s - z_s.mean(-1, keepdim=True), z_t - z_t.mean(-1, keepdim=True)


def _student_grad(z_s, z_t, **kwargs) -> torch.Tensor:
    student = z_s.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(distillation_loss(student, z_t, **kwargs), student)
    return grad


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.log()).sum(-1)


# --- soft targets -----------------------------------------------------------------------------


def test_soft_targets_sum_to_one_and_entropy_rises_with_temperature():
    z = torch.tensor([[3.0, 1.0, 0.2, -1.0], [0.5, 0.4, -2.0, 4.0]])
    temperatures = (0.5, 1, 2, 4, 8, 20)
    entropies = []
    for T in temperatures:
        p = soft_targets(z, T)
        assert_close(p.sum(-1), torch.ones(2))
        assert_close(p, torch.softmax(z / T, dim=-1))
        entropies.append(_entropy(p))
    entropies = torch.stack(entropies)
    assert (entropies.diff(dim=0) > 0).all(), entropies
    # The limit of a very high temperature is the uniform distribution, entropy log C.
    assert_close(_entropy(soft_targets(z, 1e6)), torch.full((2,), math.log(4)))
    # One example (C,) works as well as a batch.
    assert_close(soft_targets(z[0], 2.0), soft_targets(z, 2.0)[0])


def test_soft_targets_of_huge_logits_are_exact():
    z = torch.tensor([[1000.0, 999.0, 0.0], [1000.0, -1000.0, 1000.0]])
    p = soft_targets(z, 1.0)
    assert torch.isfinite(p).all()
    e = math.e
    assert_close(p[0], torch.tensor([e / (1 + e), 1 / (1 + e), 0.0]))
    assert_close(p[1], torch.tensor([0.5, 0.0, 0.5]))


@pytest.mark.parametrize("T", [0, -1.0, float("nan"), float("inf"), True, "4", None])
def test_soft_targets_rejects_bad_temperature(T):
    with pytest.raises(ValueError, match="temperature"):
        soft_targets(torch.zeros(3), T)


def test_soft_targets_rejects_integer_logits():
    with pytest.raises(ValueError, match="logits"):
        soft_targets(torch.tensor([1, 2, 3]), 1.0)


# --- the distillation loss ---------------------------------------------------------------------


def test_gradient_is_closed_form():
    # d/dz_s of the batch-mean KL at T is (q - p) / (T N) (Hinton et al. 2015, eq. 2), times
    # the loss's alpha T^2.
    z_s, z_t = _zero_mean_logits()
    for T in (1.0, 3.0, 10.0):
        q, p = soft_targets(z_s, T), soft_targets(z_t, T)
        assert_close(_student_grad(z_s, z_t, T=T, alpha=1.0), T * (q - p) / BATCH)


def test_high_temperature_gradient_approaches_logit_matching():
    # Without the T^2 factor, with zero-mean logits, the soft gradient tends to
    # (z_s - z_t) / (C T^2) per sample (Hinton et al. 2015, section 2.1, whose N is the number
    # of classes C); the batch mean divides it by the batch size as well.
    z_s, z_t = _zero_mean_logits()
    errors = []
    temperatures = (2, 4, 8, 16, 32, 64)
    for T in temperatures:
        soft_grad = _student_grad(z_s, z_t, T=T, alpha=1.0) / T**2
        limit = (z_s - z_t) / (CLASSES * T**2 * BATCH)
        errors.append(float((soft_grad - limit).norm() / limit.norm()))
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    # The error is O(1/T): it about halves each time T doubles, once T is well above the logits.
    assert all(b / a < 0.6 for a, b in zip(errors[1:], errors[2:], strict=False)), errors
    assert errors[-1] < 0.05, errors
    assert errors[0] > 0.3, errors  # at low T the approximation is poor: the test can fail


def test_t_squared_keeps_gradient_magnitude_comparable_across_temperatures():
    z_s, z_t = _zero_mean_logits(seed=1)
    temperatures = (1, 2, 4, 8, 16, 32, 64)
    scaled = [float(_student_grad(z_s, z_t, T=T, alpha=1.0).norm()) for T in temperatures]
    unscaled = [g / T**2 for g, T in zip(scaled, temperatures, strict=True)]
    assert max(scaled) / min(scaled) < 1.5, scaled
    assert max(unscaled) / min(unscaled) > 1000, unscaled


def test_alpha_zero_is_plain_cross_entropy_exactly():
    z_s, z_t = _zero_mean_logits()
    y = torch.tensor([0, 3, 9, 3])
    for T in (1.0, 4.0):
        assert torch.equal(distillation_loss(z_s, z_t, y, T=T, alpha=0.0), F.cross_entropy(z_s, y))


def test_alpha_one_at_t_one_is_torch_kl_div_batchmean():
    z_s, z_t = _zero_mean_logits()
    want = F.kl_div(F.log_softmax(z_s, -1), F.softmax(z_t, -1), reduction="batchmean")
    assert_close(distillation_loss(z_s, z_t, T=1.0, alpha=1.0), want)
    # The direction matters: KL(p_student || p_teacher) is a different number.
    reverse = F.kl_div(F.log_softmax(z_t, -1), F.softmax(z_s, -1), reduction="batchmean")
    assert not torch.isclose(distillation_loss(z_s, z_t, T=1.0, alpha=1.0), reverse)


@pytest.mark.parametrize(("T", "alpha"), [(2.0, 0.5), (4.0, 0.9), (8.0, 0.1)])
def test_mixture_equals_its_two_parts(T, alpha):
    z_s, z_t = _zero_mean_logits()
    y = torch.tensor([1, 2, 3, 4])
    kl = F.kl_div(F.log_softmax(z_s / T, -1), F.softmax(z_t / T, -1), reduction="batchmean")
    want = alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(z_s, y)
    assert_close(distillation_loss(z_s, z_t, y, T=T, alpha=alpha), want)


def test_sequence_logits_average_over_every_position():
    g = torch.Generator().manual_seed(2)
    z_s, z_t = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    y = torch.randint(0, 5, (2, 3), generator=g)
    got = distillation_loss(z_s, z_t, y, T=2.0, alpha=0.7)
    want = distillation_loss(z_s.reshape(6, 5), z_t.reshape(6, 5), y.reshape(6), T=2.0, alpha=0.7)
    assert_close(got, want)


def test_teacher_gets_no_gradient():
    torch.manual_seed(0)
    teacher, student = nn.Linear(6, CLASSES), nn.Linear(6, CLASSES)
    x, y = torch.randn(BATCH, 6), torch.tensor([0, 1, 2, 3])
    distillation_loss(student(x), teacher(x), y, T=4.0, alpha=0.9).backward()
    assert teacher.weight.grad is None and teacher.bias.grad is None
    assert student.weight.grad is not None and student.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_huge_logits_stay_finite(T):
    g = torch.Generator().manual_seed(3)
    z_s = (1e3 * torch.randn(BATCH, CLASSES, generator=g)).requires_grad_(True)
    z_t = 1e3 * torch.randn(BATCH, CLASSES, generator=g)
    loss = distillation_loss(z_s, z_t, torch.tensor([0, 1, 2, 3]), T=T, alpha=0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z_s.grad).all()
    # A student equal to the teacher has zero KL even where probabilities underflow to 0.
    assert distillation_loss(z_t, z_t, T=T, alpha=1.0).item() == pytest.approx(0.0, abs=1e-4)


def test_distillation_loss_rejects_bad_input():
    z = torch.zeros(BATCH, CLASSES)
    y = torch.zeros(BATCH, dtype=torch.long)
    with pytest.raises(ValueError, match="student_logits and teacher_logits.*10 and 9"):
        distillation_loss(z, torch.zeros(BATCH, 9), y)
    with pytest.raises(ValueError, match="student_logits and teacher_logits.*shape"):
        distillation_loss(z, torch.zeros(BATCH + 1, CLASSES), y)
    for T in (0, -2.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            distillation_loss(z, z, y, T=T)
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            distillation_loss(z, z, y, alpha=alpha)
    with pytest.raises(TypeError, match="alpha"):
        distillation_loss(z, z, y, alpha="0.5")
    with pytest.raises(ValueError, match="target.*alpha = 1"):
        distillation_loss(z, z, None, alpha=0.5)
    with pytest.raises(ValueError, match="target"):
        distillation_loss(z, z, y.float(), alpha=0.5)
    with pytest.raises(ValueError, match="target"):
        distillation_loss(z, z, y[:2], alpha=0.5)


# --- the teacher's logits ----------------------------------------------------------------------


class _DropoutTeacher(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def test_teacher_logits_run_in_eval_mode_without_touching_rng():
    torch.manual_seed(0)
    teacher = _DropoutTeacher().train()
    x, y = torch.randn(10, 6), torch.arange(10) % 3
    with torch.no_grad():
        want = teacher.eval()(x)
    teacher.train()
    state = torch.get_rng_state()
    from_tensor = teacher_logits(teacher, x, batch_size=3)
    loader = DataLoader(TensorDataset(x, y), batch_size=4, num_workers=0)
    from_loader = teacher_logits(teacher, loader)
    assert torch.equal(torch.get_rng_state(), state)
    assert teacher.training  # put back in the mode it was in
    assert_close(from_tensor, want)
    assert_close(from_loader, want)
    assert not from_tensor.requires_grad and not from_loader.requires_grad


def test_teacher_logits_rejects_bad_input():
    teacher = _DropoutTeacher()
    x, y = torch.randn(8, 6), torch.arange(8) % 3
    with pytest.raises(ValueError, match="shuffle"):
        teacher_logits(teacher, DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True))
    with pytest.raises(TypeError, match="loader_or_tensor"):
        teacher_logits(teacher, x.tolist())
    with pytest.raises(ValueError, match="batch_size"):
        teacher_logits(teacher, x, batch_size=0)
    with pytest.raises(ValueError, match="no samples"):
        teacher_logits(teacher, x[:0])


# --- FitNets hints -----------------------------------------------------------------------------


def test_hint_regressor_is_a_1x1_conv_on_maps_and_a_linear_on_vectors():
    torch.manual_seed(0)
    regressor = HintRegressor(3, 5)
    conv = nn.Conv2d(3, 5, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(regressor.linear.weight[:, :, None, None])
        conv.bias.copy_(regressor.linear.bias)
    maps, vectors = torch.randn(2, 3, 4, 4), torch.randn(2, 3)
    assert_close(regressor(maps), conv(maps))
    assert_close(regressor(vectors), regressor.linear(vectors))
    assert regressor(maps).shape == (2, 5, 4, 4)


def test_hint_loss_by_hand():
    student = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # Squared differences 0 + 4 and 9 + 16: 1/2 * (4 + 25) / 2 samples.
    assert hint_loss(student, teacher).item() == pytest.approx(7.25)
    regressor = HintRegressor(2, 1, bias=False)
    with torch.no_grad():
        regressor.linear.weight.copy_(torch.tensor([[1.0, -1.0]]))
    # r(student) = [-1, -1]; the hints 2 and 0: 1/2 * (9 + 1) / 2.
    assert hint_loss(student, torch.tensor([[2.0], [0.0]]), regressor).item() == pytest.approx(2.5)


def test_hint_loss_on_feature_maps_sums_features_and_averages_samples():
    torch.manual_seed(1)
    regressor = HintRegressor(2, 3)
    student = torch.randn(4, 2, 5, 5)
    teacher = torch.randn(4, 3, 5, 5, requires_grad=True)
    loss = hint_loss(student, teacher, regressor)
    guided = torch.einsum("oc,nchw->nohw", regressor.linear.weight, student)
    guided = guided + regressor.linear.bias[None, :, None, None]
    per_sample = 0.5 * ((teacher - guided) ** 2).flatten(1).sum(1)
    assert_close(loss, per_sample.mean())
    loss.backward()
    assert teacher.grad is None and regressor.linear.weight.grad is not None


def test_hints_reject_bad_input():
    with pytest.raises(ValueError, match="student_channels"):
        HintRegressor(0, 4)
    with pytest.raises(ValueError, match="teacher_channels"):
        HintRegressor(4, -1)
    regressor = HintRegressor(3, 4)
    with pytest.raises(ValueError, match=r"features must be \(N, 3\)"):
        regressor(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"features must be \(N, 3\)"):
        regressor(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="student_features.*teacher_features"):
        hint_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 2, 2), regressor)
    with pytest.raises(ValueError, match="teacher_features"):
        hint_loss(torch.zeros(2, 3), torch.zeros(3))


# --- DeiT's distillation token -----------------------------------------------------------------


def _vit_parameters(D, F_, L, K, c, P, n, tokens):
    layer = (3 * D * D + 3 * D) + (D * D + D) + (D * F_ + F_) + (F_ * D + D) + 2 * (2 * D)
    return (
        (D * c * P * P + D)  # patch embedding
        + tokens * D  # class (and distillation) token
        + (n + tokens) * D  # positions
        + L * layer
        + 2 * D  # the pre-norm stack's final LayerNorm
        + tokens * (D * K + K)  # one head per token
    )


@pytest.mark.parametrize(("patch_size", "distill_token"), [(2, True), (4, True), (2, False)])
def test_distilled_vit_shapes_tokens_and_parameters(patch_size, distill_token):
    torch.manual_seed(0)
    model = DistilledViT(
        patch_size=patch_size, embed_dim=16, num_heads=2, num_layers=2, ff_dim=24,
        distill_token=distill_token,
    )  # fmt: skip
    n = (8 // patch_size) ** 2
    tokens = 2 if distill_token else 1
    seen = []
    model.encoder.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    x = torch.rand(3, 1, 8, 8)
    out = model.train()(x)
    assert seen == [(3, n + tokens, 16)] and model.num_tokens == n + tokens
    want = _vit_parameters(16, 24, 2, 10, 1, patch_size, n, tokens)
    assert sum(p.numel() for p in model.parameters()) == want
    if distill_token:
        class_logits, distill_logits = out
        assert class_logits.shape == distill_logits.shape == (3, 10)
        assert not torch.equal(class_logits, distill_logits)
        with torch.no_grad():
            # No dropout, so eval differs from training only in what it returns.
            assert_close(model.eval()(x), (class_logits + distill_logits) / 2)
    else:
        assert isinstance(out, torch.Tensor) and out.shape == (3, 10)
        with torch.no_grad():
            assert_close(model.eval()(x), out)
    # Flattened digits (N, 64) give the same logits as images.
    with torch.no_grad():
        assert_close(model.eval()(x.flatten(1)), model(x))


def test_distilled_vit_rejects_bad_input():
    with pytest.raises(ValueError, match="patch_size"):
        DistilledViT(patch_size=3)
    with pytest.raises(ValueError, match="num_classes"):
        DistilledViT(num_classes=0)
    with pytest.raises(ValueError, match="1x8x8"):
        DistilledViT()(torch.zeros(2, 1, 7, 7))


def test_deit_hard_loss_by_hand():
    class_logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    distill_logits = torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    target = torch.tensor([0, 2])
    teacher = torch.tensor([[0.1, 0.2, 3.0], [5.0, -1.0, 0.0]])  # teacher labels 2 and 0

    def ce(row, k):
        return math.log(sum(math.exp(v) for v in row)) - row[k]

    want = 0.5 * (ce([2, 0, 0], 0) + ce([0, 1, 0], 2)) / 2
    want += 0.5 * (ce([0, 0, 1], 2) + ce([1, 1, 0], 0)) / 2
    assert deit_hard_loss(class_logits, distill_logits, target, teacher).item() == pytest.approx(
        want
    )


def test_deit_hard_loss_uses_only_the_teachers_argmax_and_no_teacher_gradient():
    g = torch.Generator().manual_seed(4)
    c, d = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    y = torch.randint(0, 4, (5,), generator=g)
    teacher = torch.randn(5, 4, generator=g, requires_grad=True)
    c.requires_grad_(True)
    loss = deit_hard_loss(c, d, y, teacher)
    # A rescaled, shifted teacher has the same argmax, so the same loss.
    assert_close(loss, deit_hard_loss(c, d, y, 10 * teacher.detach() + 3))
    loss.backward()
    assert teacher.grad is None and c.grad is not None


def test_deit_hard_loss_rejects_bad_input():
    z, y = torch.zeros(3, 10), torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match="distill_logits and teacher_logits.*10 and 4"):
        deit_hard_loss(z, z, y, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="class_logits and distill_logits"):
        deit_hard_loss(z, torch.zeros(3, 4), y, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="target"):
        deit_hard_loss(z, z, y[:2], z)


# --------------------------------------------------------------------------- distill


def _toy_transfer(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return x, y


def _linear(seed):
    torch.manual_seed(seed)
    return nn.Linear(6, 4)


def test_distill_equals_a_hand_written_loop_over_the_same_batches():
    x, y = _toy_transfer()
    teacher = _linear(1)
    student, reference = _linear(2), _linear(2)
    distill(student, teacher, (x, y), T=3.0, alpha=0.7, epochs=2, lr=0.05, batch_size=16, seed=5)
    with torch.no_grad():
        stored = teacher(x)
    loader = DataLoader(
        TensorDataset(x, stored, y),
        batch_size=16,
        shuffle=True,
        generator=torch.Generator().manual_seed(5),
    )
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.05)
    for _ in range(2):
        for xb, tb, yb in loader:
            optimizer.zero_grad()
            distillation_loss(reference(xb), tb, yb, T=3.0, alpha=0.7).backward()
            optimizer.step()
    for got, want in zip(student.parameters(), reference.parameters(), strict=True):
        assert_close(got, want)
    assert all(p.grad is None for p in teacher.parameters())


def test_distill_at_alpha_zero_is_training_on_the_labels_with_the_same_batches():
    x, y = _toy_transfer(seed=1)
    student, reference = _linear(3), _linear(3)
    distill(student, _linear(4), (x, y), alpha=0.0, epochs=2, lr=0.05, batch_size=16, seed=2)
    loader = DataLoader(
        TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(2)
    )
    fit(reference, loader, epochs=2, lr=0.05, seed=2, verbose=False)
    for got, want in zip(student.parameters(), reference.parameters(), strict=True):
        assert_close(got, want)


def test_a_student_learns_the_teachers_function_from_soft_targets_alone():
    # Labels that are pure noise, alpha = 1: all the student can learn is the teacher.
    x, noise = _toy_transfer(n=512, seed=2)
    teacher = _linear(5)
    student = _linear(6)
    history = distill(
        student, teacher, (x, noise), (x, teacher(x).argmax(-1)), T=2.0, alpha=1.0, epochs=30,
        lr=0.05, batch_size=64, seed=0,
    )  # fmt: skip
    with torch.no_grad():
        agree = (student(x).argmax(-1) == teacher(x).argmax(-1)).float().mean().item()
    assert agree > 0.95, agree
    assert history["val_acc"][-1] == pytest.approx(agree)


def test_distill_hard_token_trains_a_distilled_vit():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (40,), generator=g)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    torch.manual_seed(0)
    student = DistilledViT(embed_dim=16, num_heads=2, num_layers=1, ff_dim=16)
    before = student.head_dist.weight.detach().clone()
    history = distill(student, teacher, (x, y), method="hard-token", epochs=2, batch_size=20)
    assert len(history) == 2 and not torch.equal(before, student.head_dist.weight)
    # A one-head student cannot be trained with the token's loss.
    with pytest.raises(ValueError, match="hard-token"):
        distill(DistilledViT(distill_token=False), teacher, (x, y), method="hard-token", epochs=1)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"method": "dark"}, "method"),
        ({"T": 0.0}, "T"),
        ({"T": -1.0}, "T"),
        ({"alpha": 1.5}, "alpha"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_distill_rejects_bad_settings(kwargs, name):
    x, y = _toy_transfer()
    with pytest.raises((ValueError, TypeError), match=name):
        distill(_linear(0), _linear(1), (x, y), **kwargs)


def test_distill_rejects_a_transfer_set_that_is_not_a_pair_of_equal_length():
    x, y = _toy_transfer()
    with pytest.raises(ValueError, match="transfer"):
        distill(_linear(0), _linear(1), (x, y[:-1]))
    with pytest.raises(ValueError, match="transfer"):
        distill(_linear(0), _linear(1), x)
    with pytest.raises(ValueError, match="number of classes"):
        distill(_linear(0), nn.Linear(6, 3), (x, y))
