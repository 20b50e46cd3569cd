import copy

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from effdl.compress.prune import (
    CSR,
    apply_masks_,
    bake_,
    baked_copy,
    channel_mask,
    csr_bytes,
    csr_matmul,
    global_magnitude_masks,
    gradual_sparsity,
    iterative_prune,
    layer_sparsities,
    magnitude_mask,
    masks_of,
    prune_channels,
    remove_masks_,
    sensitivity_scan,
    sparsity_of,
    to_csr,
)
from effdl.measure import count_macs, count_params, macs_by_module
from effdl.train import fit

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def torch_mask(weight: torch.Tensor, fn, **kwargs) -> torch.Tensor:
    """The mask torch.nn.utils.prune computes for `weight` (on a throwaway module)."""
    module = nn.Module()
    module.weight = nn.Parameter(weight.clone())
    fn(module, "weight", **kwargs)
    return module.weight_mask


# --- magnitude masks ------------------------------------------------------------------------


WEIGHTS = {
    "random": lambda: torch.randn(37, 23, generator=gen(1)),
    # few distinct magnitudes: almost every threshold cuts through a tie
    "ties": lambda: torch.randint(-3, 4, (40, 25), generator=gen(2)).float(),
    "all_equal": lambda: torch.full((9, 11), 0.5),
    "conv": lambda: torch.randn(8, 3, 3, 3, generator=gen(3)),
}


@pytest.mark.parametrize("kind", WEIGHTS)
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.37, 0.5, 0.9, 0.999])
def test_magnitude_mask_equals_l1_unstructured(kind, sparsity):
    w = WEIGHTS[kind]()
    mask = magnitude_mask(w, sparsity)
    assert mask.dtype == w.dtype and mask.shape == w.shape
    assert torch.equal(mask, torch_mask(w, tprune.l1_unstructured, amount=sparsity))
    assert int((mask == 0).sum()) == round(sparsity * w.numel())


def test_magnitude_mask_rounds_half_to_even_and_keeps_the_order():
    w = torch.tensor([0.4, -0.1, 0.3, 0.2, 5.0])
    assert int((magnitude_mask(w, 0.5) == 0).sum()) == 2  # round(2.5) == 2
    assert int((magnitude_mask(w, 0.7) == 0).sum()) == 4  # round(3.5) == 4
    mask = magnitude_mask(w, 0.4)
    assert torch.equal(mask, torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0]))
    # every kept |w| is at least every removed |w|
    w = torch.randn(500, generator=gen(4))
    mask = magnitude_mask(w, 0.6)
    assert w.abs()[mask == 1].min() >= w.abs()[mask == 0].max()


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.8])
def test_global_masks_equal_global_unstructured(sparsity):
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 8))
    with torch.no_grad():
        model[0].weight.mul_(3.0)  # layers of different scales: the threshold is shared
        model[3].weight.copy_(torch.randint(-2, 3, (8, 16), generator=gen(5)).float() / 10)
    masks = global_magnitude_masks(model, sparsity)
    assert list(masks) == ["0", "3"]
    ref = copy.deepcopy(model)
    params = [(ref[0], "weight"), (ref[3], "weight")]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=sparsity)
    assert torch.equal(masks["0"], ref[0].weight_mask)
    assert torch.equal(masks["3"], ref[3].weight_mask)
    # a mapping of weights gives the same masks
    by_name = global_magnitude_masks({"0": model[0].weight, "3": model[3].weight}, sparsity)
    assert all(torch.equal(by_name[k], masks[k]) for k in masks)


@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.5, 0.75])
def test_channel_mask_equals_ln_structured(norm, dim, sparsity):
    w = torch.randn(8, 6, 3, 3, generator=gen(6))
    w[3] = w[5]  # two filters of equal norm
    mask = channel_mask(w, sparsity, norm=norm, dim=dim)
    ref = torch_mask(w, tprune.ln_structured, amount=sparsity, n=norm, dim=dim)
    assert torch.equal(mask, ref)


# --- masks that hold through training ---------------------------------------------------------


def test_apply_masks_keeps_zeros_through_adam_with_momentum_and_decay():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
    masks = global_magnitude_masks(model, 0.6)
    apply_masks_(model, masks)
    assert torch.equal(model[0].weight == 0, masks["0"] == 0)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for name, mask in masks.items():
        w = model.get_submodule(name).weight
        assert torch.all(w[mask == 0] == 0)
        assert torch.all(w[mask == 1] != 0)
    assert sparsity_of(model) == pytest.approx(0.6, abs=1 / 260)
    # masking the gradient alone is not enough: momentum moves a weight whose gradient is 0
    plain = nn.Linear(4, 1, bias=False)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    plain(torch.ones(1, 4)).sum().backward()
    opt.step()
    plain.weight.grad.zero_()
    before = plain.weight.detach().clone()
    opt.step()
    assert not torch.equal(plain.weight, before)


def test_masks_of_remove_masks_and_reapply():
    model = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 2))
    first = global_magnitude_masks(model, 0.3)
    apply_masks_(model, first)
    assert set(masks_of(model)) == {"0", "1"}
    second = global_magnitude_masks(model, 0.7)  # computed from the masked weights
    apply_masks_(model, second)
    assert all(torch.equal(masks_of(model)[k], second[k]) for k in second)
    assert all(torch.all(second[k][first[k] == 0] == 0) for k in first)  # old zeros stay
    expected = {k: model.get_submodule(k).weight.detach().clone() for k in second}
    remove_masks_(model)
    assert masks_of(model) == {}
    for k, w in expected.items():
        assert type(model.get_submodule(k).weight) is nn.Parameter
        assert torch.equal(model.get_submodule(k).weight, w)
    layers = layer_sparsities(model)
    assert sum(layers[k] * model.get_submodule(k).weight.numel() for k in layers) == round(0.7 * 40)


def test_removing_masks_from_a_deep_copy_leaves_the_original_masked():
    # torch's remove_parametrizations edits the class a deepcopy shares with the original
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    apply_masks_(model, global_magnitude_masks(model, 0.5))
    x = torch.randn(3, 6, generator=gen(12))
    expected = model(x)
    twin = copy.deepcopy(model)
    remove_masks_(twin)
    baked = baked_copy(model)
    assert masks_of(twin) == {} and masks_of(baked) == {}
    assert set(masks_of(model)) == {"0", "2"}
    torch.testing.assert_close(model(x), expected)
    torch.testing.assert_close(twin(x), expected)
    torch.testing.assert_close(bake_(model)(x), expected)
    assert type(model[0]) is nn.Linear and masks_of(model) == {}


def test_sensitivity_scan_prunes_a_copy_one_layer_at_a_time():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    apply_masks_(model, {"2": torch.ones(2, 8)})  # a masked model is scanned on a copy too
    before = copy.deepcopy(model.state_dict())
    curves = sensitivity_scan(model, lambda m: sparsity_of(m), [0.0, 0.5, 0.75])
    assert curves["0"] == pytest.approx([0.0, 16 / 48, 24 / 48])
    assert curves["2"] == pytest.approx([0.0, 8 / 48, 12 / 48])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(masks_of(model)) == {"2"} and model(torch.ones(1, 4)).shape == (1, 2)


def test_gradual_sparsity_is_zhu_gupta_cubic():
    assert gradual_sparsity(0, 0.9, 10) == 0.0
    assert gradual_sparsity(10, 0.9, 10) == 0.9
    assert gradual_sparsity(12, 0.9, 10) == 0.9
    assert gradual_sparsity(5, 0.8, 10, initial_sparsity=0.2) == pytest.approx(
        0.8 + (0.2 - 0.8) * 0.5**3
    )
    values = [gradual_sparsity(t, 0.9, 8) for t in range(9)]
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert all(s > 0 for s in steps) and steps == sorted(steps, reverse=True)


def test_iterative_prune_reaches_the_target_and_holds_masks():
    g = gen(7)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    fit(model, loader, epochs=4, lr=1e-2, verbose=False)
    model, rows = iterative_prune(model, loader, loader, 0.8, steps=3, epochs_per_step=4, lr=1e-2)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[-1]["sparsity"] == 0.8
    assert rows[-1]["measured_sparsity"] == pytest.approx(0.8, abs=1 / 320)
    assert all(0 <= r["val_acc"] <= 1 for r in rows)
    assert rows[-1]["val_acc"] > 0.8  # an easy task survives 80% sparsity
    assert set(masks_of(model)) == {"0", "2"}


# --- physically removing channels ---------------------------------------------------------------


def small_cnn(seed: int = 0) -> nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 4, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 10),
        )
        for m in model:
            if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, so slicing them matters
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.normal_()
                m.bias.data.normal_()
    return model.eval()


def zeroed_reference(model: nn.Sequential, pruned_positions: dict[int, torch.Tensor]):
    """The original model with the given channels zeroed after each conv's BN + activation."""
    handles = []
    for conv_pos, dropped in pruned_positions.items():
        after = conv_pos + 1
        while not isinstance(model[after], nn.ReLU):
            after += 1

        def hook(_module, _inputs, output, dropped=dropped):
            output = output.clone()
            output[:, dropped] = 0
            return output

        handles.append(model[after].register_forward_hook(hook))
    return handles


@pytest.mark.parametrize("sparsity", [0.25, 0.5, {0: 0.5, 7: 0.5}, {3: 0.75}])
def test_prune_channels_equals_channel_zeroed_original(sparsity):
    model = small_cnn()
    x = torch.randn(5, 1, 8, 8, generator=gen(8))
    pruned = prune_channels(model, sparsity).eval()
    fractions = sparsity if isinstance(sparsity, dict) else dict.fromkeys((0, 3, 7), sparsity)
    dropped = {}
    for pos, s in fractions.items():
        mask = channel_mask(model[pos].weight, s, dim=0)[:, 0, 0, 0]
        dropped[pos] = torch.nonzero(mask == 0).flatten()
        assert pruned[pos].out_channels == model[pos].out_channels - dropped[pos].numel()
    handles = zeroed_reference(model, dropped)
    try:
        expected = model(x)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(pruned(x), expected, rtol=1e-5, atol=1e-5)
    assert count_params(pruned) < count_params(model)
    assert model[0].out_channels == 8  # the original is untouched


def test_prune_channels_macs_fall_by_the_closed_form():
    model = small_cnn()
    s = 0.5
    pruned = prune_channels(model, s)
    before = macs_by_module(model, (1, 1, 8, 8))
    after = macs_by_module(pruned, (1, 1, 8, 8))
    assert after["0"] == before["0"] * (1 - s)
    assert after["3"] == before["3"] * (1 - s) ** 2
    assert after["7"] == before["7"] * (1 - s) ** 2
    assert after["11"] == before["11"] * (1 - s)
    assert count_macs(pruned, (1, 1, 8, 8)) == sum(after.values())


def test_prune_channels_leaves_an_output_conv_whole():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 1))
    pruned = prune_channels(model, 0.5)
    assert (pruned[0].out_channels, pruned[2].in_channels, pruned[2].out_channels) == (2, 2, 6)
    with pytest.raises(ValueError, match="position 2"):
        prune_channels(model, {2: 0.5})


# --- CSR ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_csr_arrays_equal_torch(density):
    g = gen(9)
    w = torch.randn(17, 29, generator=g)
    w[torch.rand(17, 29, generator=g) >= density] = 0
    w[3] = 0  # an empty row
    if density > 0:
        w[0, 0] = -0.0  # a negative zero is a zero
    csr = to_csr(w)
    ref = w.to_sparse_csr()
    assert torch.equal(csr.crow_indices, ref.crow_indices())
    assert torch.equal(csr.col_indices, ref.col_indices())
    assert torch.equal(csr.values, ref.values())
    assert torch.equal(csr.to_torch().to_dense(), w)
    assert torch.equal(csr.to_dense(), w)
    x = torch.randn(29, 6, generator=g)
    torch.testing.assert_close(csr_matmul(csr, x), w @ x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(csr_matmul(csr, x[:, 0]), w @ x[:, 0], rtol=1e-5, atol=1e-5)
    assert csr_bytes(csr) == 4 * (2 * csr.nnz + 18)
    assert csr_bytes(csr, value_bits=8, index_bits=16) == csr.nnz * 3 + 36


def test_csr_matmul_chunks_add_up():
    w = torch.randn(40, 300, generator=gen(10))
    x = torch.randn(300, 5000, generator=gen(11))  # more products than one chunk
    torch.testing.assert_close(csr_matmul(to_csr(w), x), w @ x, rtol=1e-4, atol=1e-4)


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_sparsity_outside_0_1_is_refused(bad):
    w = torch.randn(4, 4)
    for call in (
        lambda: magnitude_mask(w, bad),
        lambda: global_magnitude_masks(nn.Linear(4, 4), bad),
        lambda: channel_mask(w, bad),
        lambda: prune_channels(small_cnn(), bad),
    ):
        with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
            call()


def test_bad_input_names_the_argument():
    with pytest.raises(TypeError, match="sparsity"):
        magnitude_mask(torch.ones(3), "0.5")
    with pytest.raises(TypeError, match="weight"):
        magnitude_mask([1.0, 2.0], 0.5)
    with pytest.raises(ValueError, match="dim"):
        channel_mask(torch.ones(4, 4), 0.5, dim=2)
    with pytest.raises(ValueError, match="norm"):
        channel_mask(torch.ones(4, 4), 0.5, norm=0)
    with pytest.raises(ValueError, match="groups"):
        prune_channels(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 1)), 0.5)
    with pytest.raises(TypeError, match="nn.Sequential"):
        prune_channels(nn.Linear(3, 3), 0.5)
    with pytest.raises(ValueError, match="LSTM"):
        prune_channels(nn.Sequential(nn.Conv2d(1, 2, 1), nn.LSTM(2, 2)), 0.5)
    with pytest.raises(ValueError, match="removes all"):
        prune_channels(nn.Sequential(nn.Conv2d(1, 2, 1), nn.Conv2d(2, 2, 1)), 0.9)
    with pytest.raises(ValueError, match="2-D"):
        to_csr(torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="x must have shape"):
        csr_matmul(to_csr(torch.ones(2, 3)), torch.ones(2, 1))
    with pytest.raises(TypeError, match="csr"):
        csr_bytes(torch.ones(2, 2))
    with pytest.raises(ValueError, match="index_bits"):
        csr_bytes(to_csr(torch.ones(2, 2)), index_bits=0)
    with pytest.raises(ValueError, match="masks"):
        apply_masks_(nn.Linear(3, 3), {"": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="nope"):
        apply_masks_(nn.Linear(3, 3), {"nope": torch.ones(3, 3)})
    with pytest.raises(ValueError, match="initial_sparsity"):
        gradual_sparsity(1, 0.5, 10, initial_sparsity=0.6)
    with pytest.raises(ValueError, match="n_steps"):
        gradual_sparsity(1, 0.5, 0)
    with pytest.raises(ValueError, match="step"):
        gradual_sparsity(-1, 0.5, 10)
    with pytest.raises(TypeError, match="score"):
        sensitivity_scan(nn.Linear(2, 2), 3.0, [0.5])
    with pytest.raises(TypeError, match="model_or_params"):
        global_magnitude_masks([torch.ones(2)], 0.5)
    assert isinstance(to_csr(torch.eye(2)), CSR)
