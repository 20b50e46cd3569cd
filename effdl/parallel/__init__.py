"""Training parallelism on torch.distributed (lesson 08): `launch` starts ranks as torchrun does,
`data_parallel` trains one model on shards of each batch with averaged gradients,
`model_parallel` splits a model into stages that pass activations and gradients, and
`param_server` trains with asynchronous updates through a parameter server over RPC.
Import the module you need, e.g. `from effdl.parallel.launch import launch`.
"""
