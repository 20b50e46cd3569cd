import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from effdl.train import evaluate, fit


def _separable_problem(seed=0, n=256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    data = TensorDataset(x, y)
    return DataLoader(data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))


def test_fit_learns_a_linearly_separable_problem():
    loader = _separable_problem()
    model = nn.Linear(2, 2)
    history = fit(model, loader, loader, epochs=15, lr=0.05, verbose=False)
    assert len(history) == 15
    assert history["val_acc"][-1] > 0.95
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_fit_is_deterministic_for_a_seed():
    def run():
        torch.manual_seed(123)  # same initial weights for both runs
        model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.3), nn.Linear(8, 2))
        fit(model, _separable_problem(), epochs=2, seed=7, verbose=False)
        return torch.cat([p.flatten() for p in model.parameters()])

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


def test_on_epoch_hook_can_stop_training():
    seen = []

    def stop_at_three(record):
        seen.append(record["epoch"])
        return record["epoch"] == 3

    history = fit(
        nn.Linear(2, 2), _separable_problem(), epochs=10, on_epoch=stop_at_three, verbose=False
    )
    assert seen == [1, 2, 3] and len(history) == 3 and history.stopped_early


def test_schedule_is_stepped_each_epoch():
    history = fit(
        nn.Linear(2, 2),
        _separable_problem(),
        epochs=3,
        lr=0.1,
        schedule=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
        verbose=False,
    )
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_evaluate_counts_exact_accuracy():
    class Fixed(nn.Module):
        def forward(self, x):
            return torch.stack([-x[:, 0], x[:, 0]], dim=1)  # predicts class 1 iff x > 0

    x = torch.tensor([[1.0], [-1.0], [2.0], [-3.0]])
    y = torch.tensor([1, 1, 1, 0])
    result = evaluate(Fixed(), DataLoader(TensorDataset(x, y), batch_size=3))
    assert result["accuracy"] == pytest.approx(0.75)


def test_bad_epochs():
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        fit(nn.Linear(2, 2), _separable_problem(), epochs=0)


class _TwoInputTokenModel(nn.Module):
    """(N, T) source and (N, T) decoder input -> (N, T, vocab) logits."""

    def __init__(self, vocab=5, width=8):
        super().__init__()
        self.src, self.tgt = nn.Embedding(vocab, width), nn.Embedding(vocab, width)
        self.out = nn.Linear(width, vocab)

    def forward(self, src, tgt):
        return self.out(torch.tanh(self.src(src) + self.tgt(tgt)))


def _token_loader(seed=3):
    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, 5, (40, 6), generator=g)
    tgt = src.flip(1)
    return DataLoader(
        TensorDataset(src, tgt, tgt),
        batch_size=16,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def test_fit_on_tokens_equals_a_hand_written_loop():
    torch.manual_seed(0)
    ours = _TwoInputTokenModel()
    theirs = _TwoInputTokenModel()
    theirs.load_state_dict(ours.state_dict())
    history = fit(ours, _token_loader(), epochs=3, lr=1e-2, clip=0.5, verbose=False)

    optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    epoch_losses = []
    loader = _token_loader()
    for _ in range(3):
        total, tokens = 0.0, 0
        for src, tgt, target in loader:
            optimizer.zero_grad()
            logits = theirs(src, tgt)
            loss = nn.functional.cross_entropy(logits.reshape(-1, 5), target.reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(theirs.parameters(), 0.5)
            optimizer.step()
            total += loss.item() * target.numel()
            tokens += target.numel()
        epoch_losses.append(total / tokens)

    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert history["train_loss"] == pytest.approx(epoch_losses)
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_clip_bounds_the_gradient_norm():
    seen = []

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            grads = [p.grad for group in self.param_groups for p in group["params"]]
            seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
            return super().step(closure)

    model = nn.Linear(2, 2)
    fit(model, _separable_problem(), epochs=1, optimizer=Spy(model.parameters(), lr=10.0),
        clip=1e-3, verbose=False)  # fmt: skip
    assert seen and max(seen) <= 1e-3 * (1 + 1e-5)


def test_token_accuracy_counts_every_target_element():
    class AlwaysZero(nn.Module):
        def forward(self, x):
            logits = torch.zeros(*x.shape, 3)
            logits[..., 0] = 1.0
            return logits

    x = torch.zeros(2, 4, dtype=torch.long)
    # 5 of the 8 target tokens are 0; no whole sequence is all zeros.
    target = torch.tensor([[0, 0, 1, 0], [2, 0, 0, 1]])
    result = evaluate(AlwaysZero(), DataLoader(TensorDataset(x, target), batch_size=1))
    assert result["accuracy"] == 5 / 8


def test_logits_that_do_not_fit_the_target_are_refused():
    loader = DataLoader(TensorDataset(torch.zeros(4, 3).long(), torch.zeros(4, 2).long()))
    with pytest.raises(ValueError, match=r"logits must be the target's shape plus a class"):
        fit(nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5)), loader, epochs=1, verbose=False)


def test_bad_clip_and_a_bool_for_epochs():
    with pytest.raises(ValueError, match="clip must be a number > 0, got 0"):
        fit(nn.Linear(2, 2), _separable_problem(), epochs=1, clip=0)
    with pytest.raises(ValueError, match="epochs must be a positive int, got True"):
        fit(nn.Linear(2, 2), _separable_problem(), epochs=True)


def test_evaluate_leaves_the_global_random_state_alone():
    model, data = nn.Linear(2, 2), TensorDataset(torch.zeros(4, 2), torch.zeros(4).long())
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    evaluate(model, DataLoader(data))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_loss_inputs_hand_the_extras_to_the_loss_not_the_model():
    # With loss_inputs=1 a batch (x, extra, y) trains exactly like a hand-written loop that
    # calls model(x) and loss(logits, y, extra).
    g = torch.Generator().manual_seed(3)
    x, extra, y = torch.randn(64, 4, generator=g), torch.randn(64, 3, generator=g), None
    y = torch.randint(0, 3, (64,), generator=g)

    def loss(logits, target, soft):
        return nn.functional.cross_entropy(logits, target) + (logits - soft).pow(2).mean()

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    reference = nn.Linear(4, 3)
    reference.load_state_dict(model.state_dict())
    loader = DataLoader(TensorDataset(x, extra, y), batch_size=16)
    fit(model, loader, epochs=2, lr=0.1, loss_fn=loss, loss_inputs=1, verbose=False)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.1)
    for _ in range(2):
        for xb, eb, yb in loader:
            optimizer.zero_grad()
            loss(reference(xb), yb, eb).backward()
            optimizer.step()
    for got, want in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, want)


def test_loss_inputs_validate_with_plain_batches_and_cross_entropy():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(32, 2, generator=g), torch.randint(0, 2, (32,), generator=g)
    train = DataLoader(TensorDataset(x, torch.zeros(32, 2), y), batch_size=8)
    val = DataLoader(TensorDataset(x, y), batch_size=8)
    model = nn.Linear(2, 2)

    def loss(logits, target, extra):
        return nn.functional.cross_entropy(logits, target) + 100.0 + extra.sum()

    history = fit(model, train, val, epochs=1, loss_fn=loss, loss_inputs=1, verbose=False)
    # The training loss carries the +100; validation is the plain cross-entropy.
    assert history["train_loss"][0] > 100
    assert history["val_loss"][0] == pytest.approx(evaluate(model, val)["loss"])


def test_a_model_with_two_heads_gets_both_in_the_loss_and_is_scored_by_their_mean():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.a(x), self.b(x)

    seen = []

    def loss(heads, target):
        seen.append(len(heads))
        return sum(nn.functional.cross_entropy(h, target) for h in heads)

    torch.manual_seed(0)
    model = TwoHeads()
    loader = _separable_problem()
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    history = fit(model, loader, epochs=1, optimizer=frozen, loss_fn=loss, verbose=False)
    assert set(seen) == {2}
    x, y = loader.dataset.tensors
    with torch.no_grad():
        mean = (model.a(x) + model.b(x)) / 2
        alone = model.a(x)
    # SGD at lr=0 leaves the weights alone, so the epoch's accuracy is that of the heads' mean.
    want = float((mean.argmax(-1) == y).float().mean())
    assert want != float((alone.argmax(-1) == y).float().mean())  # the mean is not head a
    assert history["train_acc"][0] == pytest.approx(want)


def test_bad_loss_inputs():
    loader = _separable_problem()
    with pytest.raises(ValueError, match="loss_inputs"):
        fit(nn.Linear(2, 2), loader, epochs=1, loss_inputs=-1, verbose=False)
    # (x, y) has no room for an extra before the target.
    with pytest.raises(ValueError, match="loss_inputs=1"):
        fit(nn.Linear(2, 2), loader, epochs=1, loss_inputs=1, verbose=False)
