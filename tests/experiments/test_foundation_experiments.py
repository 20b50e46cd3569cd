import pytest

from effdl.data import load_mnist1d
from effdl.experiments.foundations import train_baselines
from effdl.measure import count_macs


def test_train_baselines_reports_per_sample_footprints():
    splits = load_mnist1d(seed=0, num_samples=200)
    runs = train_baselines(splits, ("logreg", "mlp"), steps=2, latency=False, verbose=False)
    assert set(runs) == {"logreg", "mlp"}
    for run in runs.values():
        assert 0 <= run.test_accuracy <= 1
        # MACs of one sample: the batch dimension is 1.
        assert run.footprint["macs"] == count_macs(run.model, (1, *splits.sample_shape))
    assert runs["logreg"].footprint["macs"] == 40 * 10


def test_bad_steps_and_names():
    splits = load_mnist1d(seed=0, num_samples=200)
    with pytest.raises(ValueError, match="steps must be a positive int, got True"):
        train_baselines(splits, steps=True)
    with pytest.raises(ValueError, match="names must be among"):
        train_baselines(splits, ("resnet",))
