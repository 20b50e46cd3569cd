"""Start a function on several local processes the way `torchrun` starts it, and get their
results back: every rank sees the environment variables torchrun sets (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so one training function runs under `torchrun` from a
shell and under `launch` from a notebook. `launch` waits with a deadline and leaves no process
behind: a rank that fails or dies stops the others, and the error says which rank and why.
Start with `launch`; inside the function, `process_group()` joins the ranks.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import socket
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from effdl._checks import check_positive_int, check_positive_number

#: Seconds a collective waits for a peer before it fails (instead of hanging for torch's 10 min).
COLLECTIVE_TIMEOUT = 60.0
#: The backends `process_group` accepts: gloo runs everywhere, nccl needs CUDA devices.
BACKENDS = ("gloo", "nccl")


class RankFailed(RuntimeError):
    """A rank raised, died or outlived the deadline; the other ranks were stopped."""

    def __init__(self, message: str, *, rank: int | None, exitcode: int | None) -> None:
        super().__init__(message)
        self.rank = rank
        self.exitcode = exitcode


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the rendezvous port).

    Source: the kit's own helper; torchrun's `--standalone` picks its port the same way.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_and_world() -> tuple[int, int]:
    """Return (RANK, WORLD_SIZE) from the environment that torchrun or `launch` set.

    Source: PyTorch documentation, "torchrun (Elastic Launch)", environment variables.
    """
    try:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except KeyError as missing:
        raise RuntimeError(
            f"{missing} is not set: start this function with effdl.parallel.launch.launch "
            "or with torchrun"
        ) from None


@contextlib.contextmanager
def process_group(
    backend: str = "gloo", *, timeout: float = COLLECTIVE_TIMEOUT
) -> Iterator[tuple[int, int]]:
    """Join the default process group from the environment, yield (rank, world size), and
    leave it on exit. A collective that waits longer than `timeout` seconds for a peer fails.

    Source: PyTorch documentation, torch.distributed.init_process_group (init_method "env://").
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("backend 'nccl' needs CUDA devices and none is present; use 'gloo'")
    timeout = check_positive_number("timeout", timeout)
    rank, world = rank_and_world()
    dist.init_process_group(
        backend,
        init_method="env://",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=timeout),
    )
    try:
        yield rank, world
    finally:
        dist.destroy_process_group()


def _run_rank(
    rank: int,
    fn: Callable[..., Any],
    args: Sequence[Any],
    world_size: int,
    port: int,
    out_dir: str,
    threads: int,
) -> None:
    # The child of `launch`: torchrun's environment, one result file per rank.
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(threads)
    path = Path(out_dir) / f"rank{rank}.pt"
    try:
        result = fn(*args)
    except BaseException as error:
        torch.save({"error": "".join(traceback.format_exception(error))}, path)
        raise
    torch.save({"result": result}, path)


def launch(
    fn: Callable[..., Any],
    world_size: int,
    args: Sequence[Any] = (),
    *,
    timeout: float = 120.0,
    threads: int = 1,
) -> list[Any]:
    """Return [fn(*args) on rank 0, ..., on rank world_size - 1], each rank a fresh process
    with torchrun's environment variables set, `threads` torch threads each.

    `fn` must be importable (defined in a module, not in a notebook cell): the ranks are
    started with the "spawn" method, which imports it afresh. If any rank raises or dies, or
    the ranks are not done within `timeout` seconds, the others are stopped and `RankFailed`
    names the rank, its exit code and, if it raised, its traceback. No process outlives the call.

    Source: PyTorch documentation, torch.multiprocessing.spawn and torchrun.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    world_size = check_positive_int("world_size", world_size)
    timeout = check_positive_number("timeout", timeout)
    threads = check_positive_int("threads", threads)
    with tempfile.TemporaryDirectory(prefix="effdl-launch-") as out_dir:
        context = mp.start_processes(
            _run_rank,
            args=(fn, tuple(args), world_size, free_port(), out_dir, threads),
            nprocs=world_size,
            join=False,
            start_method="spawn",
        )
        try:
            _join(context, timeout, out_dir)
        finally:
            _stop(context.processes)
        return [_load(Path(out_dir), rank)["result"] for rank in range(world_size)]


def _join(context: mp.ProcessContext, timeout: float, out_dir: str) -> None:
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
    while True:
        left = (deadline - datetime.datetime.now()).total_seconds()
        if left <= 0:
            alive = [r for r, p in enumerate(context.processes) if p.is_alive()]
            raise RankFailed(
                f"ranks {alive} were still running after timeout={timeout:g} s; "
                "all ranks were stopped",
                rank=alive[0] if alive else None,
                exitcode=None,
            )
        try:
            if context.join(timeout=min(left, 1.0), grace_period=2.0):
                return
        except mp.ProcessRaisedException as error:
            rank = error.error_index
            saved = _load(Path(out_dir), rank)
            raise RankFailed(
                f"rank {rank} raised; the other ranks were stopped:\n"
                f"{saved.get('error', error.msg)}",
                rank=rank,
                exitcode=1,
            ) from None
        except mp.ProcessExitedException as error:
            rank = error.error_index
            how = (
                f"was killed by {signal.Signals(-error.exit_code).name}"
                if error.exit_code < 0
                else f"exited with code {error.exit_code}"
            )
            raise RankFailed(
                f"rank {rank} {how}; the other ranks were stopped",
                rank=rank,
                exitcode=error.exit_code,
            ) from None


def _stop(processes: Sequence[Any]) -> None:
    # Kill whatever still runs and reap every process, so no child is left behind.
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join()


def _load(out_dir: Path, rank: int) -> dict[str, Any]:
    path = out_dir / f"rank{rank}.pt"
    if not path.exists():
        return {}
    return torch.load(path, weights_only=False)
