"""Asynchronous SGD through a parameter server, after Dean et al. 2012 (DistBelief's Downpour
SGD): one server process holds the parameters; each worker fetches them, computes a gradient on
a mini-batch of its own shard of the data and pushes it back; the server applies every push at
once, without waiting for the other workers, so a gradient may come from parameters that are
already a few updates old (its staleness, which we measure). Start with `ParameterServer` (the
server's state and the methods the workers call over RPC), then `train_param_server` (a real
run on local processes) and `train_synchronous` (the synchronous baseline it is compared with).

Outgrowing one box: the ranks are started the way torchrun starts them and talk over
`torch.distributed.rpc`, whose TensorPipe backend sends tensors over TCP, so the same code runs
across machines with `torchrun --nnodes N --nproc-per-node K --rdzv-backend c10d
--rdzv-endpoint HOST:PORT -m effdl.parallel.param_server --n-workers <N*K-1>` (rank 0 is the
server). We build no scheduler of our own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.rpc as rpc
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from tqdm.auto import tqdm

from effdl._checks import check_non_negative_int, check_positive_int, check_positive_number
from effdl.data import load_mnist1d
from effdl.models.baselines import make_baseline
from effdl.parallel.launch import launch, rank_and_world

#: The model every rank builds: the mnist1d reference MLP (40-100-100-10, 15k weights), small
#: enough that a worker's step costs about as much as one RPC round trip on a CPU.
MODEL = "mlp"
#: A run that ends near the MLP's accuracy plateau, where asynchronous and synchronous SGD
#: with the same number of updates agree: about 60% test accuracy for both, within 1 point over
#: seeds 0-3 (2 workers, 1,200 updates, under 2 s of training on 2 CPU cores).
UPDATES_PER_WORKER = 600
LR = 0.2
BATCH_SIZE = 64
CHECKPOINT_EVERY = 50
#: Seconds one RPC (fetch, push, finish) may take before it fails instead of waiting forever.
RPC_TIMEOUT = 30.0
#: Version of the checkpoint file's layout; a file of another version is refused.
CHECKPOINT_FORMAT = 1
#: The server's RPC name; worker w is named `worker_name(w)`.
SERVER_NAME = "server"


def worker_name(worker: int) -> str:
    """Return the RPC name of worker `worker` (1-based, its rank): "worker1", "worker2", ...

    Source: the kit's own naming; PyTorch documentation, torch.distributed.rpc.init_rpc.
    """
    return f"worker{worker}"


@dataclass(frozen=True)
class ParamServerConfig:
    """What a parameter-server run trains: `n_workers` workers (ranks 1..n, rank 0 is the
    server), each pushing `updates_per_worker` updates of plain SGD at `lr` computed on
    mini-batches of `batch_size` samples of its own shard of mnist1d's training set. A worker
    fetches the parameters every `fetch_every` steps and pushes the sum of its last
    `push_every` gradients (Downpour's n_fetch and n_push); between fetches it applies its own
    gradients to its local copy. With `checkpoint` the server saves its state every
    `checkpoint_every` updates; `resume` restarts from that file. `fail` is a test hook that
    kills one process: ("worker", w, step) or ("server", update). `timeout` bounds the whole
    run, `rpc_timeout` every single RPC."""

    n_workers: int = 2
    updates_per_worker: int = UPDATES_PER_WORKER
    lr: float = LR
    batch_size: int = BATCH_SIZE
    fetch_every: int = 1
    push_every: int = 1
    seed: int = 0
    checkpoint: str | None = None
    checkpoint_every: int = CHECKPOINT_EVERY
    resume: bool = False
    fail: tuple | None = None
    timeout: float = 120.0
    rpc_timeout: float = RPC_TIMEOUT

    def __post_init__(self) -> None:
        check_positive_int("n_workers", self.n_workers)
        check_positive_int("updates_per_worker", self.updates_per_worker)
        check_positive_number("lr", self.lr)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("fetch_every", self.fetch_every)
        check_positive_int("push_every", self.push_every)
        check_non_negative_int("seed", self.seed)
        check_positive_int("checkpoint_every", self.checkpoint_every)
        check_positive_number("timeout", self.timeout)
        check_positive_number("rpc_timeout", self.rpc_timeout)
        if self.checkpoint is not None:
            if not isinstance(self.checkpoint, str | os.PathLike):
                raise TypeError(
                    f"checkpoint must be a path or None, got {type(self.checkpoint).__name__}"
                )
            object.__setattr__(self, "checkpoint", os.fspath(self.checkpoint))
        if self.resume and (self.checkpoint is None or not Path(self.checkpoint).is_file()):
            raise ValueError(
                f"resume=True needs an existing checkpoint file, got checkpoint={self.checkpoint!r}"
            )
        object.__setattr__(self, "fail", _check_fail(self.fail, self.n_workers))


class ParameterServer:
    """The parameter server's state: the flat parameter vector, its version (the number of
    updates applied), the updates applied per worker, and the staleness and loss of every
    update. Workers call `fetch` and `push` over RPC, from several RPC threads at once; a lock
    makes each update atomic. Every `checkpoint_every` updates the state is saved to
    `checkpoint` atomically.

    Source: Dean et al. 2012, "Large Scale Distributed Deep Networks", section 4.1 (Downpour
    SGD: the parameter server applies each pushed gradient as it arrives).
    """

    def __init__(
        self,
        params: Tensor,
        *,
        lr: float,
        n_workers: int,
        version: int = 0,
        counts: dict[int, int] | None = None,
        checkpoint: str | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        die_at: int | None = None,
    ) -> None:
        self.params = params.detach().clone().reshape(-1)
        self.lr = check_positive_number("lr", lr)
        self.n_workers = check_positive_int("n_workers", n_workers)
        self.version = check_non_negative_int("version", version)
        self.start_version = self.version
        self.counts = dict(counts) if counts else {w: 0 for w in range(1, n_workers + 1)}
        self.checkpoint = checkpoint
        self.checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
        self.die_at = die_at
        self.log: list[tuple[int, float, int]] = []  # (worker, loss, staleness) per update
        self.done: set[int] = set()
        self.lock = threading.Lock()
        self.all_done = threading.Condition(self.lock)

    def fetch(self) -> tuple[Tensor, int]:
        """Return a copy of the current parameters and their version.

        Source: Dean et al. 2012, section 4.1 (a replica asks for fresh parameters).
        """
        with self.lock:
            return self.params.clone(), self.version

    def push(self, worker: int, grad: Tensor, version: int, loss: float) -> int:
        """Apply `grad` (computed by `worker` from parameters of `version`) at once:
        w <- w - lr * grad; record its staleness (this server's version minus `version`) and
        `loss`; return the new version.

        Source: Dean et al. 2012, section 4.1 (asynchronous updates by the parameter server).
        """
        with self.lock:
            if self.die_at is not None and self.version + 1 == self.die_at:
                os._exit(1)  # the test hook: a server that dies mid-training
            self.log.append((worker, float(loss), self.version - version))
            self.params.sub_(grad.reshape(-1), alpha=self.lr)
            self.version += 1
            self.counts[worker] += 1
            if self.checkpoint is not None and self.version % self.checkpoint_every == 0:
                self.save(self.checkpoint)
            return self.version

    def applied(self, worker: int) -> int:
        """Return how many of `worker`'s updates this server has applied (after a restart, the
        ones its checkpoint kept), so the worker knows how many are left to do.

        Source: the kit's own bookkeeping for resuming from a checkpoint.
        """
        with self.lock:
            return self.counts[worker]

    def finish(self, worker: int) -> None:
        """Record that `worker` has pushed its last update.

        Source: the kit's own end-of-training protocol (the server stops when all are done).
        """
        with self.all_done:
            self.done.add(worker)
            self.all_done.notify_all()

    def wait_all_done(self, timeout: float) -> list[int]:
        """Wait up to `timeout` seconds for every worker's `finish`; return the workers that
        did not finish (empty when all did).

        Source: the kit's own end-of-training protocol.
        """
        everyone = set(range(1, self.n_workers + 1))
        with self.all_done:
            self.all_done.wait_for(lambda: self.done >= everyone, timeout=timeout)
            return sorted(everyone - self.done)

    def state_dict(self) -> dict[str, Any]:
        """Return the state a restarted server needs: parameters, version, counts per worker.
        Plain SGD keeps no optimizer state.

        Source: the kit's own checkpoint layout.
        """
        return {
            "format": CHECKPOINT_FORMAT,
            "params": self.params.clone(),
            "version": self.version,
            "counts": dict(self.counts),
            "lr": self.lr,
            "n_workers": self.n_workers,
        }

    def save(self, path: str | Path) -> None:
        """Write `state_dict()` to `path` atomically: to a temporary file in the same folder,
        then `os.replace`, so a crash mid-write leaves the previous checkpoint intact.

        Source: POSIX rename(2) (atomic replacement within one file system).
        """
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> ParameterServer:
        """Return a server restored from the checkpoint at `path` (its parameters, version and
        counts); `kwargs` set the rest (lr, checkpoint, checkpoint_every, die_at).

        Source: the kit's own checkpoint layout.
        """
        state = load_checkpoint(path)
        kwargs.setdefault("lr", state["lr"])
        n_workers = kwargs.pop("n_workers", state["n_workers"])
        if n_workers != state["n_workers"]:
            raise ValueError(
                f"n_workers must match the checkpoint's {state['n_workers']}, got {n_workers}"
            )
        return cls(
            state["params"],
            n_workers=n_workers,
            version=state["version"],
            counts=state["counts"],
            **kwargs,
        )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Return the state saved by `ParameterServer.save` at `path`.

    Source: the kit's own checkpoint layout.
    """
    state = torch.load(path, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} is not a parameter-server checkpoint of format "
            f"{CHECKPOINT_FORMAT}; delete it and train from scratch (resume=False)"
        )
    return state


def train_param_server(
    n_workers: int = 2,
    *,
    updates_per_worker: int = UPDATES_PER_WORKER,
    lr: float = LR,
    batch_size: int = BATCH_SIZE,
    fetch_every: int = 1,
    push_every: int = 1,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    resume: bool = False,
    fail: tuple | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Return the figures of an asynchronous (Downpour) run of one parameter server and
    `n_workers` workers, each a local process (rank 0 the server, ranks 1..n the workers),
    talking over `torch.distributed.rpc` (TensorPipe, TCP on 127.0.0.1).

    Each worker repeats: fetch the parameters (every `fetch_every` steps), compute a gradient
    of the MLP on a mini-batch of its shard (every n-th sample of the training set), push the
    gradient (summed over `push_every` steps) with the version it came from. The server applies
    every push at once, under a lock, and records its staleness = server version at apply time
    - the pushed version. The figures: "accuracy" (test %, the server's final parameters),
    "loss", "worker" and "staleness" (one entry per update of this run, in the order applied),
    "staleness_per_worker" ({worker: [...]}), "updates_per_worker" ({worker: count}, the
    checkpoint's included), "version" (updates applied in all), "start_version" (the restored
    checkpoint's version, 0 for a fresh run), "samples", "seconds" and "samples_per_s" (of this
    run, measured by the server). Compare with `train_synchronous(n_workers,
    updates=result["version"])`: the same number of updates, each averaging n gradients.

    Failures end the run with an error rather than carrying on without the lost process: a
    worker or the server that dies makes `launch` stop the others and raise `RankFailed`
    naming its rank (Downpour would carry on with the remaining replicas; we choose a clear
    error, and the checkpoint lets the user restart: with `checkpoint`, the server saves its
    state every `checkpoint_every` updates, and `resume=True` restarts from it, losing at most
    the updates since). Every RPC fails after `RPC_TIMEOUT` seconds, `launch` stops the whole
    run after `timeout` seconds (under torchrun the server gives up waiting for its workers
    after `timeout` seconds); nothing hangs and no process is left behind. `fail` is the test
    hook that kills a process: ("worker", w, step) makes worker w exit at its step `step`
    (counted from 0), ("server", k) makes the server exit when update k arrives (before
    applying it).

    Source: Dean et al. 2012, "Large Scale Distributed Deep Networks", NIPS 2012, section 4.1
    (Downpour SGD, n_fetch and n_push); PyTorch documentation, torch.distributed.rpc.
    """
    config = ParamServerConfig(
        n_workers=n_workers,
        updates_per_worker=updates_per_worker,
        lr=lr,
        batch_size=batch_size,
        fetch_every=fetch_every,
        push_every=push_every,
        seed=seed,
        checkpoint=None if checkpoint is None else os.fspath(checkpoint),
        checkpoint_every=checkpoint_every,
        resume=resume,
        fail=fail,
        timeout=timeout,
    )
    splits = load_mnist1d(seed=seed)
    _check_batch_fits(batch_size, len(splits.train[1]), n_workers)
    if resume:
        state = load_checkpoint(config.checkpoint)
        if state["n_workers"] != n_workers:
            raise ValueError(
                f"n_workers must match the checkpoint's {state['n_workers']} workers to resume, "
                f"got {n_workers}"
            )
    data = {"train": splits.train, "test": splits.test}
    results = launch(run_rank, n_workers + 1, (config, data), timeout=timeout)
    return results[0]


def train_synchronous(
    n_workers: int = 2,
    *,
    updates: int = 2 * UPDATES_PER_WORKER,
    lr: float = LR,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
    verbose: bool = False,
) -> dict[str, Any]:
    """Return the figures of the synchronous baseline: the same MLP, data shards and
    mini-batches as `train_param_server`, `updates` SGD updates at `lr`, each the average of
    one mini-batch gradient per worker. "accuracy" (test %), "loss" (per update, the mean over
    the workers' batches), "samples", "seconds", "samples_per_s". The default `updates` equals
    the number of updates of a default `train_param_server` run; it computes n_workers times
    as many gradients, because each update here waits for one gradient from every worker.

    It runs in one process: synchronous data-parallel SGD (each worker's gradient, averaged by
    an all-reduce, then one identical step everywhere) equals full-batch SGD over the union of
    the workers' equal-size batches, because the mean of n equal-size batch means is the mean
    over their union; `effdl.parallel.data_parallel` shows the same across processes.

    Source: Dean et al. 2012, section 4.1 (the asynchrony this baseline takes away); Goyal et
    al. 2017, section 2 (k workers at batch n equal one worker at batch kn).
    """
    n_workers = check_positive_int("n_workers", n_workers)
    updates = check_positive_int("updates", updates)
    lr = check_positive_number("lr", lr)
    batch_size = check_positive_int("batch_size", batch_size)
    seed = check_non_negative_int("seed", seed)
    splits = load_mnist1d(seed=seed)
    _check_batch_fits(batch_size, len(splits.train[1]), n_workers)
    x, y = splits.train
    shards = [_shard(x, y, w, n_workers) for w in range(1, n_workers + 1)]
    streams = [
        _batches(len(ys), batch_size, _generator(seed, w, 0))
        for w, (_, ys) in enumerate(shards, start=1)
    ]
    model = make_baseline(MODEL, seed=seed)
    params = list(model.parameters())
    losses = []
    start = time.perf_counter()
    for _ in tqdm(range(updates), desc="synchronous SGD", disable=not verbose):
        total = torch.zeros(sum(p.numel() for p in params))
        loss_sum = 0.0
        for (xs, ys), stream in zip(shards, streams, strict=True):
            grad, loss = _gradient(model, params, xs, ys, next(stream))
            total += grad
            loss_sum += loss
        with torch.no_grad():
            flat = parameters_to_vector(params) - lr * total / n_workers
            vector_to_parameters(flat, params)
        losses.append(loss_sum / n_workers)
    seconds = time.perf_counter() - start
    samples = updates * n_workers * batch_size
    return {
        "accuracy": _accuracy(model, *splits.test),
        "loss": losses,
        "samples": samples,
        "seconds": seconds,
        "samples_per_s": samples / seconds,
    }


def run_rank(config: ParamServerConfig, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run this process's part of a parameter-server run and return its figures: the
    server's (rank 0, see `train_param_server`) or a worker's ("worker", "steps", "pushes").
    RANK and WORLD_SIZE come from the environment (torchrun or `launch`); WORLD_SIZE must be
    `config.n_workers + 1`. `data` = {"train": (x, y), "test": (x, y)}; without it each rank
    generates mnist1d itself.

    Source: PyTorch documentation, torch.distributed.rpc (init_rpc, rpc_sync, shutdown).
    """
    rank, world = rank_and_world()
    if world != config.n_workers + 1:
        raise ValueError(
            f"WORLD_SIZE must be n_workers + 1 = {config.n_workers + 1} (one server), got {world}"
        )
    if data is None:
        splits = load_mnist1d(seed=config.seed)
        data = {"train": splits.train, "test": splits.test}
    _use_loopback_if_local()
    if rank == 0:
        return _serve(config, data["test"])
    return _work(config, rank, *_shard(*data["train"], rank, config.n_workers))


def main(argv: Sequence[str] | None = None) -> None:
    """Run one rank from the command line; meant for torchrun, e.g. on one box
    `torchrun --standalone --nproc-per-node 3 -m effdl.parallel.param_server --n-workers 2`.
    The server (rank 0) prints its figures as JSON (and writes them to --json when given).

    Source: PyTorch documentation, torchrun.
    """
    parser = argparse.ArgumentParser(prog="python -m effdl.parallel.param_server")
    for field in dataclasses.fields(ParamServerConfig):
        if field.name in ("fail", "checkpoint", "resume"):
            continue
        parser.add_argument(
            "--" + field.name.replace("_", "-"), type=type(field.default), default=field.default
        )
    parser.add_argument("--checkpoint", default=None, help="file for the server's checkpoints")
    parser.add_argument("--resume", action="store_true", help="restart from --checkpoint")
    parser.add_argument("--json", default=None, help="file for the server's figures")
    args = vars(parser.parse_args(argv))
    out = args.pop("json")
    torch.set_num_threads(1)
    result = run_rank(ParamServerConfig(**args))
    if rank_and_world()[0] == 0:
        text = json.dumps(result)
        print(text)
        if out:
            Path(out).write_text(text)


# The server object lives in the server process; the workers reach it through these functions,
# which RPC sends by name and runs there on its own threads.
_SERVER: ParameterServer | None = None


def _remote_fetch() -> tuple[Tensor, int]:
    return _SERVER.fetch()


def _remote_push(worker: int, grad: Tensor, version: int, loss: float) -> int:
    return _SERVER.push(worker, grad, version, loss)


def _remote_applied(worker: int) -> int:
    return _SERVER.applied(worker)


def _remote_finish(worker: int) -> None:
    _SERVER.finish(worker)


def _serve(config: ParamServerConfig, test: tuple[Tensor, Tensor]) -> dict[str, Any]:
    global _SERVER
    model = make_baseline(MODEL, seed=config.seed)
    die_at = config.fail[1] if config.fail and config.fail[0] == "server" else None
    options = {
        "lr": config.lr,
        "checkpoint": config.checkpoint,
        "checkpoint_every": config.checkpoint_every,
        "die_at": die_at,
    }
    if config.resume:
        server = ParameterServer.load(config.checkpoint, n_workers=config.n_workers, **options)
    else:
        server = ParameterServer(
            parameters_to_vector(model.parameters()), n_workers=config.n_workers, **options
        )
    # Set before joining RPC: no worker can call before every rank has joined.
    _SERVER = server
    _init_rpc(SERVER_NAME, 0, config)
    start = time.perf_counter()
    try:
        missing = server.wait_all_done(config.timeout)
        if missing:
            raise RuntimeError(
                f"workers {missing} did not report done within timeout={config.timeout:g} s"
            )
        seconds = time.perf_counter() - start
    except BaseException:
        rpc.shutdown(graceful=False)
        raise
    # Every worker has said done and is shutting down: the graceful barrier meets them all.
    rpc.shutdown(graceful=True, timeout=config.rpc_timeout)
    vector_to_parameters(server.params, model.parameters())
    workers = [w for w, _, _ in server.log]
    staleness = [s for _, _, s in server.log]
    applied = server.version - server.start_version
    samples = applied * config.push_every * config.batch_size
    return {
        "accuracy": _accuracy(model, *test),
        "loss": [loss for _, loss, _ in server.log],
        "worker": workers,
        "staleness": staleness,
        "staleness_per_worker": {
            w: [s for v, s in zip(workers, staleness, strict=True) if v == w]
            for w in range(1, config.n_workers + 1)
        },
        "updates_per_worker": dict(server.counts),
        "version": server.version,
        "start_version": server.start_version,
        "samples": samples,
        "seconds": seconds,
        "samples_per_s": samples / seconds if seconds > 0 else float("nan"),
    }


def _work(config: ParamServerConfig, worker: int, x: Tensor, y: Tensor) -> dict[str, Any]:
    _init_rpc(worker_name(worker), worker, config)
    die_at = config.fail[2] if config.fail and config.fail[:2] == ("worker", worker) else None
    try:
        model = make_baseline(MODEL, seed=config.seed)  # the shape; the values come from fetch
        params = list(model.parameters())
        pushes = _call(config, _remote_applied, worker)
        batches = _batches(len(y), config.batch_size, _generator(config.seed, worker, pushes))
        step, version = 0, 0
        pending, pending_loss, pending_steps, pending_version = None, 0.0, 0, 0
        while pushes < config.updates_per_worker:
            if step % config.fetch_every == 0:
                flat, version = _call(config, _remote_fetch)
                vector_to_parameters(flat, params)
            if step == die_at:
                os._exit(1)  # the test hook: a worker that dies mid-training
            grad, loss = _gradient(model, params, x, y, next(batches))
            if pending is None:
                pending, pending_version = grad.clone(), version
            else:
                pending += grad
            pending_loss += loss
            pending_steps += 1
            with torch.no_grad():  # the local copy moves on until the next fetch
                vector_to_parameters(parameters_to_vector(params) - config.lr * grad, params)
            step += 1
            if pending_steps == config.push_every:
                loss_mean = pending_loss / pending_steps
                _call(config, _remote_push, worker, pending, pending_version, loss_mean)
                pushes += 1
                pending, pending_loss, pending_steps = None, 0.0, 0
        _call(config, _remote_finish, worker)
    except BaseException:
        rpc.shutdown(graceful=False)
        raise
    rpc.shutdown(graceful=True, timeout=config.timeout)
    return {"worker": worker, "steps": step, "pushes": pushes}


def _call(config: ParamServerConfig, fn: Any, *args: Any) -> Any:
    return rpc.rpc_sync(SERVER_NAME, fn, args=args, timeout=config.rpc_timeout)


def _init_rpc(name: str, rank: int, config: ParamServerConfig) -> None:
    # init_method "env://" reads MASTER_ADDR and MASTER_PORT, set by torchrun or `launch`.
    options = rpc.TensorPipeRpcBackendOptions(init_method="env://", rpc_timeout=config.rpc_timeout)
    with warnings.catch_warnings():
        # init_rpc trips torch's own deprecation warning about the gloo group it makes inside.
        warnings.filterwarnings("ignore", "You are using a Backend", UserWarning)
        rpc.init_rpc(name, rank=rank, world_size=config.n_workers + 1, rpc_backend_options=options)


def _use_loopback_if_local() -> None:
    # TensorPipe listens on the address the host name resolves to unless TP_SOCKET_IFNAME names
    # an interface; on one box keep the traffic on the loopback interface.
    local = os.environ.get("MASTER_ADDR") in ("127.0.0.1", "localhost")
    if local and sys.platform == "linux" and Path("/sys/class/net/lo").exists():
        os.environ.setdefault("TP_SOCKET_IFNAME", "lo")


def _gradient(
    model: nn.Module, params: list[Tensor], x: Tensor, y: Tensor, idx: Tensor
) -> tuple[Tensor, float]:
    # The flat gradient of the mean cross-entropy on the mini-batch x[idx], and that loss.
    loss = F.cross_entropy(model(x[idx]), y[idx])
    grads = torch.autograd.grad(loss, params)
    return parameters_to_vector(grads), float(loss.detach())


def _shard(x: Tensor, y: Tensor, worker: int, n_workers: int) -> tuple[Tensor, Tensor]:
    # Worker w (1-based) owns every n-th sample from sample w - 1: disjoint, nearly equal shards.
    return x[worker - 1 :: n_workers], y[worker - 1 :: n_workers]


def _generator(seed: int, worker: int, start: int) -> torch.Generator:
    # One independent stream per (seed, worker, first update), so a resumed worker draws
    # batches it has not already drawn in the same order.
    state = np.random.SeedSequence([seed, worker, start]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    # Epochs over a shard of n samples, each in a fresh random order; the last partial batch of
    # an epoch is dropped, so every batch has batch_size samples.
    while True:
        order = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return 100.0 * float((model(x).argmax(-1) == y).float().mean())


def _check_batch_fits(batch_size: int, n_train: int, n_workers: int) -> None:
    shard = n_train // n_workers
    if batch_size > shard:
        raise ValueError(
            f"batch_size must be at most a worker's shard of {shard} samples "
            f"({n_train} / {n_workers} workers), got {batch_size}"
        )


def _check_fail(fail: object, n_workers: int) -> tuple | None:
    if fail is None:
        return None
    if isinstance(fail, tuple | list) and fail and fail[0] == "worker" and len(fail) == 3:
        _, worker, step = fail
        if isinstance(worker, int) and 1 <= worker <= n_workers:
            return ("worker", worker, check_non_negative_int("fail step", step))
    if isinstance(fail, tuple | list) and fail and fail[0] == "server" and len(fail) == 2:
        return ("server", check_positive_int("fail update", fail[1]))
    raise ValueError(
        f"fail must be None, ('worker', w, step) with 1 <= w <= n_workers={n_workers}, or "
        f"('server', update), got {fail!r}"
    )


if __name__ == "__main__":
    main()
