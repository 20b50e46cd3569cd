"""Ledger claims of the compression pillar. Lesson 03: PyTorch's int8 figures, "4x smaller,
2 to 4 times faster", measured on a Linear-heavy MLP through torch's own int8 kernels.
Lesson 04: Han et al.'s pruning (12x) and Deep Compression (40x) on a LeNet-300-100 for 8x8
digits, and Denton's and Jaderberg's per-layer low-rank speed-ups on a digits CNN.

For int8, the papers' figures are not these: Jacob et al. 2018 report whole networks (MobileNet-SSD,
ResNet-50) on ARM phones, and "2-4x" comes from PyTorch's documentation, not from them.
"""

from __future__ import annotations

import torch

from effdl.claims.registry import (
    claim,
    per_figure,
    within,
    within_factor,
    within_points,
    within_range,
)
from effdl.experiments.pruning import (
    break_even_sparsity,
    channel_pruning,
    csr_speed,
    deep_compression_summary,
    lowrank_speedups,
    pruning_compression,
)
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
        f"{'met' if figures['kit_vs_torch'] <= TARGET_KIT_VS_TORCH else 'not met'}; "
        f"{_int_mm_reading(figures['kit_vs_torch'])}). Not the paper's figure: Jacob et "
        "al. 2018 report whole networks on ARM phones (up to 50% less time for MobileNet-SSD), "
        "and latency on this shared 2-core CPU varies by tens of percent between runs"
    )
    return figures


def _int_mm_reading(kit_vs_torch: float) -> str:
    """Say what the kit's integer layer against torch's int8 Linear means on this CPU."""
    cpu = f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    if kit_vs_torch <= TARGET_KIT_VS_TORCH:
        return (
            f"on this CPU ({cpu}) torch._int_mm has a fast int8 kernel, so the same arithmetic "
            "runs near fbgemm's packed GEMM behind torch's layer"
        )
    return (
        f"nearly all of the kit's time is torch._int_mm, whose kernel on this CPU ({cpu}) is "
        "far slower than the fbgemm int8 GEMM behind torch's layer: other CPUs give other ratios"
    )


# --------------------------------------------------------------------------- lesson 04

#: Han et al. 2015 and 2016 measured on MNIST (784 inputs); the kit's digits have 64, so its
#: LeNet-300-100 has 50,200 weights to their 266,200 (the first layer 12x smaller).
HAN_2015 = (
    "Han, Pool, Tran, Dally 2015, Learning both Weights and Connections for Efficient Neural "
    "Networks (NeurIPS), Table 1"
)
HAN_2016 = (
    "Han, Mao, Dally 2016, Deep Compression: Compressing Deep Neural Networks with Pruning, "
    "Trained Quantization and Huffman Coding (ICLR), Tables 1 and 2"
)
LOWRANK_SOURCES = (
    "Denton, Zaremba, Bruna, LeCun, Fergus 2014, Exploiting Linear Structure Within "
    "Convolutional Networks for Efficient Evaluation (NeurIPS), abstract; Jaderberg, Vedaldi, "
    "Zisserman 2014, Speeding up Convolutional Neural Networks with Low Rank Expansions "
    "(BMVC), abstract"
)
#: Expected seconds on 2 CPU cores, one torch thread, measured here on a machine shared with
#: other work: pruning took 39-40 s (3 seeds x 12 iterative ratios, the CSR timing and the
#: channel-pruned CNN), deep-compression 8-8.5 s (3 seeds), lowrank 44-51 s (3 seeds x 2
#: schemes, a CNN trained per seed and up to 5 fine-tuned ranks per scheme).
COST_PRUNING = 50.0
COST_DEEP_COMPRESSION = 15.0
COST_LOWRANK = 65.0
#: The shape and batch where torch's CSR kernel is timed against dense (the Performance item).
CSR_SHAPE = (1024, 1024)
CSR_BATCH = 64
#: The channel sparsity where the pruned CNN's latency is set against its MACs.
CHANNEL_SPARSITY = 0.5


@claim(
    "pruning",
    source=HAN_2015,
    statement="magnitude pruning with retraining cuts LeNet-300-100's weights 12x (267K to 22K) "
    "with no loss of accuracy (MNIST error 1.64% to 1.59%)",
    published={"compression": 12.0},
    # The figure is how far pruning can go before accuracy suffers, which depends on how
    # redundant the network is for its data; the grid of ratios is 1.25-1.5x apart near 12x.
    # Within 2x either way is the same regime; 4x apart is close.
    verdict=within_factor(2.0),
    cost_seconds=COST_PRUNING,
)
def measure_pruning() -> dict:
    figures = pruning_compression()
    rows = figures.pop("rows")
    at_12 = min(rows, key=lambda r: abs(r["compression"] - 12.0))
    figures["accuracy_at_12x"] = at_12["accuracy_finetuned"]
    csr = csr_speed(
        CSR_SHAPE, CSR_BATCH, rounds=3, kit=False, sparsities=(0.5, 0.8, 0.9, 0.95, 0.98, 0.99)
    )
    figures["csr_break_even"] = break_even_sparsity(csr)
    by_sparsity = {r["sparsity"]: r for r in csr}
    channel = channel_pruning(sparsities=(CHANNEL_SPARSITY,), finetune_epochs=3, rounds=3)[-1]
    figures["channel_macs_ratio"] = channel["macs_ratio"]
    figures["channel_latency_ratio"] = channel["latency_ratio"]
    figures["channel_accuracy"] = channel["accuracy"]
    reached = figures["accuracy_at_12x"] >= figures["dense_accuracy"] - 1.0
    break_even = figures["csr_break_even"]
    figures["note"] = (
        f"LeNet-300-100 on 8x8 digits (64 inputs, not MNIST's 784: 50,200 weights, the first "
        f"layer 12x smaller than Han et al.'s), {figures['seeds']} seeds, global magnitude "
        f"pruning, iterative as in Han et al. section 3.3 (3 epochs of Adam fine-tuning after "
        f"each ratio of 2, 4, ..., 50x); test accuracy averaged over seeds, 359 test images "
        f"(one image is 0.28 points). Highest ratio within 1 point of dense "
        f"({figures['dense_accuracy']:.2f}%): {figures['compression']:.0f}x "
        f"({figures['accuracy_finetuned']:.2f}%); at 12x {figures['accuracy_at_12x']:.2f}%, "
        f"so 12x within 1 point is {'reached' if reached else 'not reached'}. Control: the dense "
        f"network trained for as many extra epochs reaches {figures['dense_accuracy_long']:.2f}%"
        f". Performance: torch's CSR kernel beats dense from sparsity "
        f"{break_even if break_even is not None else 'never (up to 0.99)'} on a "
        f"{CSR_SHAPE[0]}x{CSR_SHAPE[1]} weight at batch {CSR_BATCH}, one thread "
        f"({by_sparsity[0.9]['speedup']:.2f}x at 0.9, {by_sparsity[0.99]['speedup']:.1f}x at "
        f"0.99); removing {CHANNEL_SPARSITY:.0%} of every conv's channels (Li et al. 2017) "
        f"leaves {channel['macs_ratio']:.0%} of the digits CNN's MACs but "
        f"{channel['latency_ratio']:.0%} of its latency (batch 64, one thread: BatchNorm, "
        "pooling and per-call overhead do not shrink with the MACs) at "
        f"{channel['accuracy']:.1f}% after 3 epochs of fine-tuning"
    )
    return figures


@claim(
    "deep-compression",
    source=HAN_2016,
    statement="pruning, trained quantization (6-bit shared weights) and Huffman coding shrink "
    "LeNet-300-100 40x (1070 KB to 27 KB) with no loss of accuracy (MNIST error 1.64% to 1.58%)",
    published={"compression": 40.0, "accuracy_drop": -0.06},
    # Ratios are scales (within 1.25x either way reproduces, 2x is close); the accuracy drop
    # is in points, and 1 point is about 3.6 of the 360 test images.
    verdict=per_figure(
        {"compression": within_factor(1.25, 2.0), "accuracy_drop": within_points(1.0)}
    ),
    cost_seconds=COST_DEEP_COMPRESSION,
)
def measure_deep_compression() -> dict:
    figures = deep_compression_summary(finetune_epochs=10, codebook_epochs=5)
    bias, side, final = figures["bias_bytes"], figures["side_bytes"], figures["bytes"]
    figures["note"] = (
        f"LeNet-300-100 on 8x8 digits (64 inputs, not MNIST's 784), {figures['seeds']} seeds: "
        f"Han et al.'s per-layer pruning rates (92/91/74%, their Table 2) with 10 epochs of "
        f"fine-tuning, 6-bit shared weights (k-means, linear init) with 5 epochs of codebook "
        f"fine-tuning, 5-bit relative indices, then Huffman; every byte counted from the "
        f"encoded streams (decoding them rebuilds the weights "
        f"{'exactly' if figures['exact'] else 'NOT exactly'}). Stages: pruned "
        f"{figures['pruned_ratio']:.1f}x, quantized {figures['quantized_ratio']:.1f}x, "
        f"Huffman {figures['compression']:.1f}x ({figures['dense_bytes']:,.0f} to "
        f"{final:,.0f} bytes). Part of the gap to 40x is the small network: the 410 fp32 "
        f"biases ({bias:,.0f} bytes) and the fp32 codebooks and code tables ({side:,.0f} bytes) "
        f"are {(bias + side) / final:.0%} of the compressed model (the same bytes would be "
        f"{(bias + side) / 27_000:.0%} of Han et al.'s 27 KB); without the biases the weights "
        f"shrink {figures['weights_only_ratio']:.1f}x, the encoded streams alone "
        f"{figures['streams_ratio']:.1f}x. Huffman coding adds "
        f"{figures['compression'] / figures['quantized_ratio'] - 1:.0%} to the quantized "
        f"stage. Accuracy {figures['dense_accuracy']:.2f}% to {figures['accuracy']:.2f}% (of "
        "the model decoded from the Huffman streams; 359 test images, one is 0.28 points)"
    )
    return figures


@claim(
    "lowrank",
    source=LOWRANK_SOURCES,
    statement="low-rank factorisation speeds a conv layer up 2x on CPU with accuracy within 1% "
    "(Denton et al.); 2.5x with no loss (Jaderberg et al., scheme 2, scene-text CNN)",
    published={"speedup_channel": 2.0, "speedup_spatial": 2.5},
    # Per-layer speed-ups on a shared CPU vary by tens of percent between runs: within 1.25x
    # either way reproduces, within 2x is close.
    verdict=within_factor(1.25, 2.0),
    cost_seconds=COST_LOWRANK,
)
def measure_lowrank() -> dict:
    figures = lowrank_speedups()
    channel, spatial = figures["rank_channel"], figures["rank_spatial"]
    figures["note"] = (
        f"the largest conv of the digits CNN (3x3, 32 to 64 channels, on 8x8 maps), "
        f"{figures['seeds']} seeds (medians): the smallest rank of a halving ladder whose "
        f"network, fine-tuned 2 epochs, stays within 1 point of dense "
        f"({figures['dense_accuracy']:.1f}%); the layer alone timed dense vs factorised at "
        f"batch 256, one thread ({figures['dense_ms']:.1f} ms dense). Channel scheme (conv to "
        f"rank r, then 1x1; the SVD form of Denton et al.'s matrix approximation): rank "
        f"{channel:.0f}, {figures['macs_ratio_channel']:.1f}x fewer MACs, "
        f"{figures['speedup_channel']:.2f}x faster. Spatial scheme (kx1 then 1xk, Jaderberg et "
        f"al.'s scheme 2): rank {spatial:.0f}, {figures['macs_ratio_spatial']:.1f}x fewer MACs, "
        f"{figures['speedup_spatial']:.2f}x faster. Time falls far less than MACs: each thin "
        "conv makes its own pass over the activations, the rank-r intermediate goes through "
        "memory, and small channel counts use the CPU's vector units poorly. The papers time "
        "large layers (OverFeat, a scene-text CNN) on their own CPUs; per-layer timings on this "
        "shared machine move by tens of percent between runs. Per layer, not whole networks, as "
        "in both papers"
    )
    return figures
