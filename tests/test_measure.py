import pytest
import torch
import torchvision
from torch import nn

from effdl.measure import (
    count_macs,
    count_params,
    cpu_latency,
    macs_by_module,
    pareto_front,
    profile,
    sequential_steps,
    serialized_size,
)
from effdl.models.transformer import SelfAttention

# torchvision's weights metadata: num_params and _ops (G mult-adds) at 224x224.
TORCHVISION_META = {
    "resnet18": (11_689_512, 1.814),
    "mobilenet_v2": (3_504_872, 0.301),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_META))
def test_macs_and_params_match_torchvision_metadata(name):
    params, gmacs = TORCHVISION_META[name]
    model = getattr(torchvision.models, name)(weights=None)
    assert count_params(model) == params
    measured = count_macs(model, (1, 3, 224, 224)) / 1e9
    assert measured == pytest.approx(gmacs, rel=0.02)


@pytest.mark.parametrize("name", sorted(TORCHVISION_META))
def test_metadata_figures_are_the_ones_torchvision_ships(name):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    assert weights.meta["num_params"] == TORCHVISION_META[name][0]
    assert weights.meta["_ops"] == pytest.approx(TORCHVISION_META[name][1])


def test_linear_and_conv_macs_match_closed_forms():
    assert count_macs(nn.Linear(40, 10), (1, 40)) == 400
    assert count_macs(nn.Linear(40, 10), (8, 40)) == 8 * 400
    # Conv: k*k*C_in per output value, C_out x H_out x W_out values.
    conv = nn.Conv2d(3, 16, 3, padding=1)
    assert count_macs(conv, (1, 3, 10, 10)) == 3 * 3 * 3 * 16 * 10 * 10


def test_macs_accept_an_example_tensor():
    assert count_macs(nn.Linear(4, 2), torch.zeros(3, 4)) == 24


def test_untraceable_model_gets_a_clear_error():
    with pytest.raises(ValueError, match="could not trace Linear on input shape"):
        count_macs(nn.Linear(40, 10), (1, 39))


def test_model_with_no_counted_ops_is_refused():
    class Elementwise(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(5))

        def forward(self, x):
            return x * self.scale

    with pytest.raises(ValueError, match="counted no multiply-adds in Elementwise"):
        count_macs(Elementwise(), (1, 5))


@pytest.mark.parametrize("bad", [(), (0, 3), (1.5, 2), "abc"])
def test_bad_input_shape(bad):
    with pytest.raises(ValueError, match="input_shape must be"):
        count_macs(nn.Linear(2, 2), bad)


def test_not_a_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        count_params("resnet")


def test_serialized_size_grows_with_parameters():
    small, big = serialized_size(nn.Linear(10, 10)), serialized_size(nn.Linear(100, 100))
    # 4 bytes per float32 parameter plus the zip container's padding (64-byte alignment).
    extra_params = 100 * 100 + 100 - 10 * 10 - 10
    assert abs((big - small) - 4 * extra_params) < 2 * 64


def test_cpu_latency_is_positive_and_restores_training_mode():
    model = nn.Sequential(nn.Linear(40, 100), nn.Dropout(0.5), nn.Linear(100, 10))
    model.train()
    latency = cpu_latency(model, (1, 40), min_run_time=0.05)
    assert latency.median_ms > 0 and latency.runs >= 1 and latency.threads == 1
    assert model.training


def test_cpu_latency_rejects_bad_threads():
    with pytest.raises(ValueError, match="threads must be a positive int"):
        cpu_latency(nn.Linear(2, 2), (1, 2), threads=0)


def test_profile_reports_every_metric():
    row = profile(nn.Linear(40, 10), (1, 40), latency=False)
    assert row == {"params": 410, "macs": 400, "size_bytes": serialized_size(nn.Linear(40, 10))}


def test_pareto_front_two_objectives():
    points = [
        {"acc": 0.9, "params": 100},  # front
        {"acc": 0.8, "params": 50},  # front
        {"acc": 0.7, "params": 80},  # dominated by the second
        {"acc": 0.9, "params": 120},  # dominated by the first
        {"acc": 0.95, "params": 500},  # front
    ]
    assert pareto_front(points, {"acc": "max", "params": "min"}) == [0, 1, 4]


def test_pareto_front_three_objectives_and_ties():
    points = [
        {"a": 1, "b": 1, "c": 1},
        {"a": 1, "b": 1, "c": 1},  # equal points do not dominate each other
        {"a": 0, "b": 2, "c": 2},
        {"a": 2, "b": 2, "c": 2},  # dominated by the first
    ]
    assert pareto_front(points, {"a": "min", "b": "min", "c": "min"}) == [0, 1, 2]


def test_pareto_front_bad_input():
    with pytest.raises(ValueError, match=r"objectives\['acc'\] must be one of"):
        pareto_front([{"acc": 1}], {"acc": "up"})
    with pytest.raises(ValueError, match=r"points\[0\] lacks metrics \['params'\]"):
        pareto_front([{"acc": 1}], {"acc": "max", "params": "min"})


def test_macs_by_module_adds_up_to_the_total():
    model = torchvision.models.mobilenet_v2(weights=None)
    per_layer = macs_by_module(model, (1, 3, 224, 224))
    assert sum(per_layer.values()) == count_macs(model, (1, 3, 224, 224))
    # The stem: 3 -> 32 channels, 3x3 kernel, 112x112 output.
    assert per_layer["features.0.0"] == 3 * 32 * 3 * 3 * 112 * 112
    assert per_layer["classifier.1"] == 1280 * 1000


def test_fused_attention_kernels_are_invisible_to_the_counter():
    # Documented caveat of count_macs: if torch starts counting its fused CPU attention, this
    # test fails and the docstring (and lesson 02's remark) should be updated.
    from torch.utils.flop_counter import FlopCounterMode

    q = torch.randn(1, 4, 16, 8)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() == 0


def test_sequential_steps_counts_chains_not_calls():
    # Two layers of attention: two calls, each on the other's output.
    class TwoLayers(nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = SelfAttention(8, 2), SelfAttention(8, 2)

        def forward(self, x):
            return self.second(self.first(x))

    class SideBySide(TwoLayers):
        def forward(self, x):
            return self.first(x) + self.second(x)

    x = torch.randn(1, 5, 8)
    assert sequential_steps(TwoLayers(), x, SelfAttention) == 2
    assert sequential_steps(SideBySide(), x, SelfAttention) == 1
    with pytest.raises(ValueError, match="no submodule of step_type GRUCell"):
        sequential_steps(TwoLayers(), x, nn.GRUCell)


def test_profile_takes_the_batch_dimension_and_reports_one_sample():
    model = nn.Conv1d(1, 4, 5)
    row = profile(model, (1, 1, 40), latency=True)
    assert row["macs"] == count_macs(model, (1, 1, 40)) == 4 * 5 * 36
    assert row["params"] == 24 and row["latency_ms"] > 0
    # A shape without the batch dimension, or a batch of more than one, is refused.
    with pytest.raises(ValueError, match=r"input_shape must have batch dimension 1.*\(4, 1, 40\)"):
        profile(model, (4, 1, 40), latency=False)


def test_torch_threads_sets_the_count_inside_and_restores_it_after_an_error():
    from effdl.measure import torch_threads

    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(target):
            assert torch.get_num_threads() == target
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="count"):
        with torch_threads(0):
            pass
