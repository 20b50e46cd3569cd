"""Learning techniques: ways to train a small model better rather than to shrink a big one.
`distill` (lesson 05): soft targets at a temperature and the distillation loss (Hinton et al.
2015), FitNets hints (Romero et al. 2015) and DeiT's distillation token (Touvron et al. 2021).
`mixed_precision` (lesson 06): fp32, fp16 and bf16, dynamic loss scaling and the mixed-precision
recipe of Micikevicius et al. 2018, written out and through torch.autocast.
`dsd` (lesson 07): dense-sparse-dense training, a magnitude mask held through a sparse phase and
lifted for a re-dense phase at a lower learning rate (Han et al. 2017).
Import the module you need, e.g. `from effdl.learn.distill import distillation_loss`.
"""
