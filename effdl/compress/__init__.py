"""Ways to make a trained network smaller and cheaper to run. `quantize` (lesson 03): affine
quantization, observers for calibration, fake quantization and QAT, PyTorch's int8 kernels and
an integer-only Linear/Conv2d. Import the module you need, e.g.
`from effdl.compress.quantize import fake_quantize`.
"""
