"""Hyper-parameter optimisation (lessons 09-11): `space` (the dimensions of a search space),
`study` (trials asked and told, persisted to a journal, run on any executor), and one module per
search method: `grid`, `random_search`. Import the module you need, e.g.
`from effdl.hpo.study import minimize`.
"""
