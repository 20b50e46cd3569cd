"""Dense-Sparse-Dense: per-layer masks against torch.nn.utils.prune, the sparse phase keeping
pruned weights at zero under momentum, and the three phases' schedule."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune
from torch.utils.data import DataLoader, TensorDataset

from effdl.learn import dsd as D


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def _loader(n=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=30, shuffle=False)


def test_dsd_masks_equal_torch_l1_unstructured_per_layer():
    model = _model()
    masks = D.dsd_masks(model, 0.3)
    assert set(masks) == {"0", "2"}
    for name, module in (("0", model[0]), ("2", model[2])):
        ref = copy.deepcopy(module)
        prune.l1_unstructured(ref, "weight", amount=0.3)
        assert torch.equal(masks[name], ref.weight_mask)
    assert set(D.dsd_masks(model, 0.3, keep_first=True)) == {"2"}


def test_apply_masks_counts_nonzeros_and_leaves_biases():
    model = _model()
    bias = model[0].bias.detach().clone()
    ones = {"0": torch.ones(16, 8), "2": torch.ones(3, 16)}
    assert D.apply_masks_(model, ones) == 16 * 8 + 3 * 16
    zeros = {"0": torch.zeros(16, 8)}
    assert D.apply_masks_(model, zeros) == 0
    assert torch.equal(model[0].bias, bias) and not model[0].weight.any()
    with pytest.raises(ValueError, match="masks"):
        D.apply_masks_(model, {"1": torch.ones(1)})
    with pytest.raises(ValueError, match="shape"):
        D.apply_masks_(model, {"0": torch.ones(8, 16)})


def test_sparse_phase_holds_pruned_weights_at_zero_under_momentum():
    model, loader = _model(), _loader()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in loader:  # a dense pass builds up momentum in every weight
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    masks = D.dsd_masks(model, 0.5)
    twin = copy.deepcopy(model)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    twin_opt.load_state_dict(optimizer.state_dict())
    for _ in range(3):
        D.sparse_phase(model, masks, loader, optimizer)
    for name in masks:
        weight = dict(model.named_modules())[name].weight
        assert not weight[masks[name] == 0].any()
        assert (weight[masks[name] == 1] != 0).all()
    # masking only the gradients is not enough: momentum moves the pruned weights
    for x, y in list(loader) * 3:
        twin_opt.zero_grad()
        nn.functional.cross_entropy(twin(x), y).backward()
        for name, mask in masks.items():
            dict(twin.named_modules())[name].weight.grad.mul_(mask)
        twin_opt.step()
    assert dict(twin.named_modules())["0"].weight[masks["0"] == 0].abs().max() > 1e-3


def test_train_dsd_runs_three_phases_with_the_schedule():
    model = _model()
    history = D.train_dsd(model, _loader(), _loader(seed=1), sparsity=0.4, epochs=(2, 3, 2), lr=0.1)
    assert history["phase"] == ["dense"] * 2 + ["sparse"] * 3 + ["re-dense"] * 2
    assert history["lr"] == [0.1] * 5 + [pytest.approx(0.01)] * 2
    sparsity = history["sparsity"]
    assert sparsity[:2] == [0.0, 0.0]
    assert all(abs(s - 0.4) < 0.02 for s in sparsity[2:5])  # per layer, k = round(0.4 n)
    assert sparsity[-1] < 0.05  # pruned weights came back
    assert len(history["val_acc"]) == 7


def test_sparsity_zero_is_dense_training_with_the_same_schedule():
    a, b = _model(), _model()
    D.train_dsd(a, _loader(), sparsity=0.0, epochs=(2, 2, 2), lr=0.1)
    optimizer = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(6):
        for group in optimizer.param_groups:
            group["lr"] = 0.1 if epoch < 4 else 0.1 * 0.1
        for x, y in _loader():
            optimizer.zero_grad()
            nn.functional.cross_entropy(b(x), y).backward()
            optimizer.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_iterated_dsd_repeats_the_sparse_and_re_dense_phases():
    history = D.train_dsd(_model(), _loader(), sparsity=0.3, epochs=(1, 1, 1), cycles=3, lr=0.1)
    assert history["phase"] == ["dense"] + ["sparse", "re-dense"] * 3
    assert history["cycle"] == [1, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"sparsity": 1.0}, "sparsity"),
        ({"sparsity": -0.1}, "sparsity"),
        ({"epochs": (1, 1)}, "epochs"),
        ({"epochs": (1, -1, 1)}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"cycles": 0}, "cycles"),
        ({"redense_lr_factor": 0.0}, "redense_lr_factor"),
    ],
)
def test_train_dsd_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        D.train_dsd(_model(), _loader(), **kwargs)
