"""Hyper-parameter optimisation (lessons 09-11): `space` (the dimensions of a search space),
`study` (trials asked and told, persisted to a journal, run on any executor), one module per
search method (`grid`, `random_search`, `bo`, `hyperband` with successive halving),
`early_stopping` (patience and the median rule) and `views` (best so far, parallel coordinates,
the export to scikit-optimize). Import the module you need, e.g.
`from effdl.hpo.study import minimize`.
"""
