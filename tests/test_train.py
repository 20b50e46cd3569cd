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
