"""The experiments of the lessons, one module per lesson or topic, apart from the models they
train: `foundations` (lesson 00), `convolutions` (lesson 01), `attention` and `transformer`
(lesson 02), `quantization` (lesson 03), `pruning` (lesson 04: pruning, weight sharing and
low rank). A lesson and its ledger claims call the same function here, so what the notebook
shows and what `effdl reproduce` judges are one measurement. Import the module you need, e.g.
`from effdl.experiments.foundations import train_baselines`.
"""
