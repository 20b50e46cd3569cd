"""Ways to make a trained network smaller and cheaper to run. `quantize` (lesson 03): affine
quantization, observers for calibration, fake quantization and QAT, PyTorch's int8 kernels and
an integer-only Linear/Conv2d. `prune` (lesson 04): magnitude and channel pruning, masks that
hold through fine-tuning, CSR, gradual pruning. `sharing` (lesson 04): k-means weight sharing,
Huffman coding and Deep Compression's stored bytes. `lowrank` (lesson 04): SVD factorisation
of Linear and Conv2d layers. Import the module you need, e.g.
`from effdl.compress.quantize import fake_quantize`.
"""
