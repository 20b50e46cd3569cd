"""One-call answers to the exercises of lesson 02 (attention and the Transformer).

Each maps the grade_id of a solution cell to the same function written by calling the
kit or torch (the oracle the grade cell blocks); tests/notebooks/test_oracles_blocked.py
checks that every one of them fails its grade cell.
"""

CHEATS: dict[str, str] = {
    "ex1-padded-causal-mask": """\
def padded_causal_mask(lengths, n):
    ### BEGIN SOLUTION
    return causal_mask(n)[None] & (torch.arange(n)[None, None, :] < lengths[:, None, None])
    ### END SOLUTION
""",
    "ex2-multi-head-attention": """\
def my_multi_head_attention(x, w_in, b_in, w_out, b_out, num_heads, mask=None):
    ### BEGIN SOLUTION
    batch, length, embed = x.shape
    q, k, v = (x @ w_in.T + b_in).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, length, num_heads, -1).transpose(1, 2) for t in (q, k, v))
    keep = None if mask is None else mask.expand(batch, length, length)[:, None]
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    return heads.transpose(1, 2).reshape(batch, length, embed) @ w_out.T + b_out
    ### END SOLUTION
""",
    "ex3-attention-gru-crossover": """\
def crossover_length(d, num_heads):
    ### BEGIN SOLUTION
    n = 1
    while count_macs(SelfAttention(d, num_heads), (1, n, d)) <= count_macs(
        StepwiseGRU(d, d), (1, n, d)
    ):
        n += 1
    return n
    ### END SOLUTION
""",
}
