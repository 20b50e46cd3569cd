"""One-call answers to lesson 03's exercises, keyed by solution-cell grade_id.

The first two define the exercise's function by calling the kit's or torch's quantizer (the
range's qparams; torch's fake quantization); the third is the naive reading of the sweep (the
drop measured from the 8-bit model, and the per-tensor accuracy at the cliff). The lesson's grade
cells must fail on every one of them.
"""

CHEATS: dict[str, str] = {
    "ex1-asymmetric-qparams": """def asymmetric_qparams(lo, hi, bits):
    ### BEGIN SOLUTION
    return affine_qparams(lo, hi, bits)
    ### END SOLUTION
""",
    "ex2-symmetric-fake-quantize": """def symmetric_fake_quantize(x, scale, bits, axis=None):
    ### BEGIN SOLUTION
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(x, scale, 0, qmin, qmax)
    zeros = torch.zeros(len(scale), dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(x, scale, zeros, axis, qmin, qmax)
    ### END SOLUTION
""",
    "ex3-quantization-cliff": """def quantization_cliff(rows, points=2.0):
    ### BEGIN SOLUTION
    per_tensor = {r["bits"]: r["accuracy"] for r in rows if not r["per_channel"]}
    over = [b for b, acc in per_tensor.items() if per_tensor[max(per_tensor)] - acc > points]
    return (max(over), per_tensor[max(over)]) if over else None
    ### END SOLUTION


sweep_rows = bit_sweep(model, splits)
CLIFF_BITS, PER_CHANNEL_AT_CLIFF = quantization_cliff(sweep_rows)
print(CLIFF_BITS, PER_CHANNEL_AT_CLIFF)
""",
}
