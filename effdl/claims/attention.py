"""Ledger claims of the attention and Transformer lesson (02): self-attention relates all
positions in one parallel step, a recurrent layer needs one step per position."""

from __future__ import annotations

from effdl.claims.registry import claim, exact
from effdl.experiments.transformer import forward_time_vs_length

#: Sequence lengths of the measurement; the claim is stated at the longest, n = 256.
PARALLEL_LENGTHS = (16, 64, 256)
#: Width of both layers (d in Table 1): attention costs n^2 d, the GRU n d^2 multiply-adds.
PARALLEL_WIDTH = 64


@claim(
    "attention-parallel",
    source="000 Transformer & Friends; Vaswani et al. 2017 Table 1",
    statement=(
        "a self-attention layer needs O(1) sequential operations, a recurrent layer O(n): "
        f"1 vs n = {PARALLEL_LENGTHS[-1]} at n = {PARALLEL_LENGTHS[-1]}"
    ),
    published={"attention_sequential_ops": 1, "rnn_sequential_ops_at_n": PARALLEL_LENGTHS[-1]},
    verdict=exact(),
    quick=True,
)
def measure_attention_parallel() -> dict:
    timing = forward_time_vs_length(
        PARALLEL_LENGTHS, width=PARALLEL_WIDTH, threads=1, min_run_time=0.1, verbose=False
    )
    short, long = 0, -1
    growth = timing.growth()
    ratio_long = timing.rnn_ms[long] / timing.attention_ms[long]
    macs_ratio = timing.attention_macs[long] / timing.rnn_macs[long]
    speed = f"{ratio_long:.1f}x faster" if ratio_long >= 1 else f"{1 / ratio_long:.1f}x slower"
    return {
        "attention_sequential_ops": timing.attention_steps[long],
        "rnn_sequential_ops_at_n": timing.rnn_steps[long],
        "rnn_sequential_ops_at_shortest": timing.rnn_steps[short],
        "attention_ms_at_n": round(timing.attention_ms[long], 3),
        "rnn_ms_at_n": round(timing.rnn_ms[long], 3),
        "rnn_over_attention_time_at_shortest": round(
            timing.rnn_ms[short] / timing.attention_ms[short], 2
        ),
        "rnn_over_attention_time_at_n": round(ratio_long, 2),
        "attention_time_growth": round(growth["attention"], 2),
        "rnn_time_growth": round(growth["rnn"], 2),
        "attention_over_rnn_macs_at_n": round(macs_ratio, 2),
        "note": (
            "step counts are exact, read by forward hooks: one MultiHeadAttention call covers "
            "all n positions, a GRUCell runs n times, each on the previous state. Times: one "
            f"run, batch 1, width {PARALLEL_WIDTH}, one CPU thread, torch's nn.GRU vs our "
            f"attention. From n = {PARALLEL_LENGTHS[short]} to {PARALLEL_LENGTHS[long]} the "
            f"GRU's time grows {growth['rnn']:.1f}x, attention's {growth['attention']:.1f}x; at "
            f"n = {PARALLEL_LENGTHS[long]} attention does {macs_ratio:.1f}x the GRU's "
            f"multiply-adds (n^2 d vs n d^2) and runs {speed}. Its edge is one step of large "
            "matrix products instead of n small dependent ones, not less work"
        ),
    }
