"""Ledger claims of the compression pillar (lesson 03): PyTorch's int8 figures, "4x smaller,
2 to 4 times faster", measured on a Linear-heavy MLP through torch's own int8 kernels.

The papers' figures are not these: Jacob et al. 2018 report whole networks (MobileNet-SSD,
ResNet-50) on ARM phones, and "2-4x" comes from PyTorch's documentation, not from them.
"""

from __future__ import annotations

from effdl.claims.registry import claim, within, within_range
from effdl.experiments.quantization import MLP_SIZES, int8_size, int8_speed

#: The page carried the sentences from PyTorch 1.3 (2019) to 1.11 (2022).
PYTORCH_QUANTIZATION = (
    "PyTorch documentation, Quantization, Introduction to Quantization (1.3-1.11, 2019-2022)"
)
#: Expected seconds of each measurement on 2 CPU cores (measured here on a machine shared with
#: other work): int8-size took 1.3 s (build the 25M-weight MLP, quantize, serialize both);
#: int8-speed 14-16 s, about 6 s of it the kit's integer layer on torch._int_mm.
COST_INT8_SIZE = 5.0
COST_INT8_SPEED = 25.0
#: The issue's own performance targets, reported beside the verdict.
TARGET_SPEEDUP = 2.5
TARGET_KIT_VS_TORCH = 1.5
_SHAPES = "-".join(map(str, MLP_SIZES))


@claim(
    "int8-size",
    source=PYTORCH_QUANTIZATION,
    statement='int8 weights allow a "4x reduction in the model size" over fp32',
    published={"size_ratio": 4.0},
    # Only the weights shrink 4x: biases stay float32 and the file carries scales, zero points
    # and headers, so a Linear-heavy model lands just under 4x.
    verdict=within(0.05),
    cost_seconds=COST_INT8_SIZE,
)
def measure_int8_size() -> dict:
    figures = int8_size()
    overhead, biases = figures["int8_overhead_bytes"], figures["bias_count"]
    figures["note"] = (
        f"serialized state_dict (torch.save) of a {_SHAPES} MLP of Linear layers, fp32 vs "
        f"torch.ao dynamic int8 (per-tensor int8 weights): {figures['fp32_bytes']:,} vs "
        f"{figures['int8_bytes']:,} bytes for {figures['weight_count']:,} weights. The int8 file "
        f"holds {overhead:,} bytes beyond one per weight: {4 * biases:,} of float32 biases "
        f"({biases:,}), the rest scales, zero points, packed-weight and file headers; a model "
        "with more biases, BatchNorm or small layers falls further below 4x (the digits CNN of "
        "lesson 03 measures about 2.2x)"
    )
    return figures


@claim(
    "int8-speed",
    source=PYTORCH_QUANTIZATION,
    statement='"INT8 computations is typically 2 to 4 times faster" than FP32 (the range 2-4x; '
    "3 is its middle)",
    published={"speedup": 3.0},
    # The claim is a range, so it is judged as one: inside 2..4 reproduces, within 20% of it
    # is close. Latency on a shared 2-core machine moves by tens of percent from run to run.
    verdict=within_range(2.0, 4.0, close=0.2),
    cost_seconds=COST_INT8_SPEED,
)
def measure_int8_speed() -> dict:
    figures = int8_speed()
    figures["note"] = (
        f"cpu_latency of a {_SHAPES} MLP (ReLU between), batch 64, 2 threads, median of 3 "
        f"alternating rounds: fp32 "
        f"{figures['fp32_ms']:.1f} ms vs torch.ao dynamic int8 {figures['int8_ms']:.1f} ms "
        f"(the issue's target is >= {TARGET_SPEEDUP:g}x: "
        f"{'met' if figures['speedup'] >= TARGET_SPEEDUP else 'not met'}). One 4096x4096 layer, "
        f"same batch and threads: the kit's integer-only IntegerLinear on torch._int_mm takes "
        f"{figures['kit_linear_ms']:.1f} ms vs torch's int8 Linear "
        f"{figures['torch_int8_linear_ms']:.1f} ms, {figures['kit_vs_torch']:.1f}x "
        f"(target within {TARGET_KIT_VS_TORCH:g}x: "
        f"{'met' if figures['kit_vs_torch'] <= TARGET_KIT_VS_TORCH else 'not met'}; nearly all "
        "of the kit's time is torch._int_mm, whose CPU kernel is far slower than the fbgemm int8 "
        "GEMM behind torch's layer). Not the paper's figure: Jacob et "
        "al. 2018 report whole networks on ARM phones (up to 50% less time for MobileNet-SSD), "
        "and latency on this shared 2-core CPU varies by tens of percent between runs"
    )
    return figures
