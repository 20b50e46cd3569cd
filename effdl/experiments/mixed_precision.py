"""Lesson 06's experiments: what 16-bit numbers do to training, measured. Called by
course/06_mixed_precision.ipynb and by the ledger claims `mixed-precision` and `half-memory`
(effdl/claims/training.py). Start with `precision_runs` (the mnist1d CNN trained in fp32, with
torch.autocast in bf16, and with the reference recipe in bf16 and in fp16 with loss scaling),
then `record_gradients` and `scale_sweep` (which gradients fp16 loses, and which loss scale
rescues them), `memory_rows` and `step_speed`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from effdl._checks import check_non_negative_int, check_positive_int, check_seeds
from effdl.data import load_mnist1d
from effdl.data.splits import Splits
from effdl.learn.mixed_precision import (
    LossScaler,
    fit_autocast,
    float_format,
    train_mixed,
    training_memory,
    underflow_fraction,
)
from effdl.measure import torch_threads
from effdl.models.baselines import ConvNet1d
from effdl.train import evaluate

#: The lesson's recipe for the mnist1d CNN: SGD with momentum 0.9, batch 100.
EPOCHS = 15
LR = 0.05
BATCH_SIZE = 100
SEEDS = (0, 1, 2)
#: How each run computes: fp32 with the same loop, torch.autocast in bf16, the reference recipe
#: (fp32 masters, a 16-bit copy) in bf16 and in fp16 with dynamic loss scaling. The default set
#: leaves fp16 out: CPUs have no fast fp16 convolution, so on one it is the slow path (the
#: lesson times one epoch of it); on a GPU it is the paper's own recipe.
ALL_MODES = ("fp32", "autocast-bf16", "reference-bf16", "reference-fp16")
MODES = ALL_MODES[:3]
#: The loss scaler of the fp16 runs: GradScaler's defaults, with growth every 200 clean steps
#: (a 15-epoch run has 540 steps).
SCALER = {"init_scale": 2.0**16, "growth_interval": 200}
#: The activation gradients are recorded after this many epochs of fp32 training.
RECORD_EPOCHS = 10
#: Loss scales tried: 2^0 .. 2^24.
SCALE_EXPONENTS = tuple(range(25))
#: The Linear-heavy MLP whose training step is timed (issue 14's figures: batch 256, 2 threads).
SPEED_SIZES = (1024, 4096, 1024)
SPEED_BATCH = 256
REDUCED = {"seeds": (0,), "epochs": 10}


def build_cnn(seed: int = 0) -> ConvNet1d:
    """Return lesson 00's mnist1d CNN, initialised from `seed` (the global generator untouched).

    Source: Greydanus 2020, mnist1d's reference CNN.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConvNet1d()


def precision_runs(
    seeds: Sequence[int] = SEEDS,
    modes: Sequence[str] = MODES,
    *,
    epochs: int = EPOCHS,
    splits: Splits | None = None,
    verbose: bool = True,
) -> list[dict]:
    """Train the mnist1d CNN once per seed and mode (`ALL_MODES`) from the same initial weights and
    batches; return one row per run: "mode", "seed", "accuracy" (test %), "seconds" (training
    wall time, one thread), "skipped" (steps skipped by loss scaling), "val_curve" (%).

    Source: Micikevicius et al. 2018, section 4 (mixed precision matches fp32 accuracy).
    """
    seeds = check_seeds(seeds)
    for mode in modes:
        if mode not in ALL_MODES:
            raise ValueError(f"modes must be drawn from {ALL_MODES}, got {mode!r}")
    check_positive_int("epochs", epochs)
    splits = splits or load_mnist1d(seed=0)
    rows = []
    runs = [(mode, seed) for seed in seeds for mode in modes]
    with torch_threads(1):
        for mode, seed in tqdm(runs, desc="precisions", disable=not verbose, leave=False):
            train_loader, val_loader, test_loader = splits.loaders(batch_size=BATCH_SIZE, seed=seed)
            model = build_cnn(seed)
            start = time.perf_counter()
            history = _train(mode, model, train_loader, val_loader, epochs, seed)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "mode": mode,
                    "seed": seed,
                    "accuracy": 100 * evaluate(model, test_loader)["accuracy"],
                    "seconds": seconds,
                    "skipped": history.last["skipped"],
                    "val_curve": [100 * v for v in history["val_acc"]],
                }
            )
    return rows


def precision_summary(rows: Sequence[dict]) -> dict:
    """Return {mode: {"accuracy", "accuracy_std", "seconds", "skipped"}} (means over seeds;
    sample std, 0 for one seed) and "gap": mean accuracy of each 16-bit mode minus fp32's.

    Source: the kit's own summary (mean and spread over seeds).
    """
    if not rows or any("mode" not in r for r in rows):
        raise ValueError("rows must be precision_runs rows")
    by_mode: dict[str, list[dict]] = {}
    for r in rows:
        by_mode.setdefault(r["mode"], []).append(r)
    out: dict = {}
    for mode, group in by_mode.items():
        acc = [r["accuracy"] for r in group]
        out[mode] = {
            "accuracy": statistics.fmean(acc),
            "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "seconds": statistics.fmean(r["seconds"] for r in group),
            "skipped": statistics.fmean(r["skipped"] for r in group),
        }
    if "fp32" in out:
        base = out["fp32"]["accuracy"]
        out["gap"] = {m: v["accuracy"] - base for m, v in out.items() if m != "fp32"}
    return out


def record_gradients(
    epochs: int = RECORD_EPOCHS, *, seed: int = 0, splits: Splits | None = None
) -> Tensor:
    """Return the gradients of the loss with respect to every layer's output (the activation
    gradients the backward pass carries) for one batch of 100 training signals, after `epochs`
    epochs of fp32 training of the mnist1d CNN: one flat fp32 tensor.

    Source: Micikevicius et al. 2018, section 3.2 and Figure 3 (the histogram of activation
    gradients, most of them below fp16's range).
    """
    check_non_negative_int("epochs", epochs)
    splits = splits or load_mnist1d(seed=0)
    model = build_cnn(seed)
    if epochs:
        train_loader, _, _ = splits.loaders(batch_size=BATCH_SIZE, seed=seed)
        with torch_threads(1):
            fit_autocast(model, train_loader, dtype=None, epochs=epochs, lr=LR, seed=seed)
    outputs: list[Tensor] = []

    def keep(module, inputs, output):
        output.retain_grad()
        outputs.append(output)

    layers = [m for m in model.modules() if isinstance(m, nn.Conv1d | nn.Linear)]
    hooks = [layer.register_forward_hook(keep) for layer in layers]
    try:
        x, y = splits.train[0][:BATCH_SIZE], splits.train[1][:BATCH_SIZE]
        F.cross_entropy(model(x), y).backward()
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat([o.grad.flatten() for o in outputs]).detach()


def scale_sweep(grads: Tensor, exponents: Sequence[int] = SCALE_EXPONENTS) -> list[dict]:
    """For each loss scale 2^k, return {"exponent": k, "scale", "fp16_underflow" (% of the
    non-zero gradients that flush to zero in fp16 once scaled), "overflow" (True if the largest
    scaled gradient exceeds fp16's max)} and, once, bf16's underflow at scale 1 in every row's
    "bf16_underflow".

    Source: Micikevicius et al. 2018, section 3.2 (choosing the loss scale).
    """
    fp16_max = float_format("fp16").max
    largest = float(grads.abs().max()) if grads.numel() else 0.0
    bf16 = 100 * underflow_fraction(grads, torch.bfloat16)
    rows = []
    for k in exponents:
        check_non_negative_int("exponents", k)
        rows.append(
            {
                "exponent": k,
                "scale": 2.0**k,
                "fp16_underflow": 100 * underflow_fraction(grads, torch.float16, scale=2.0**k),
                "overflow": largest * 2.0**k > fp16_max,
                "bf16_underflow": bf16,
            }
        )
    return rows


def smallest_safe_exponent(rows: Sequence[dict], percent: float = 1.0) -> int | None:
    """Return the smallest k of `scale_sweep` rows whose fp16 underflow is under `percent` and
    that does not overflow; None if there is none.

    Source: Micikevicius et al. 2018, section 3.2.
    """
    safe = [r["exponent"] for r in rows if r["fp16_underflow"] < percent and not r["overflow"]]
    return min(safe) if safe else None


def exponent_histogram(grads: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Return (exponents, counts): how many non-zero values of `grads` have each binary exponent
    floor(log2 |g|), the x axis of Micikevicius et al.'s Figure 3.

    Source: Micikevicius et al. 2018, Figure 3.
    """
    g = grads[grads != 0].double().abs()
    if g.numel() == 0:
        return np.array([], dtype=int), np.array([], dtype=int)
    exponents = torch.floor(torch.log2(g)).long().numpy()
    values, counts = np.unique(exponents, return_counts=True)
    return values, counts


def sum_demo(n: int = 4096, value: float = 0.25) -> dict:
    """Return the sum of `n` copies of `value` accumulated in fp32, in fp16, in bf16, and in
    fp16 with an fp32 accumulator (each addition rounded to the accumulator's format).

    Source: Micikevicius et al. 2018, section 3.3.
    """
    from effdl.learn.mixed_precision import sequential_sum

    check_positive_int("n", n)
    values = torch.full((n,), float(value))
    return {
        "exact": n * float(value),
        "fp32": sequential_sum(values, torch.float32),
        "fp16": sequential_sum(values, torch.float16),
        "bf16": sequential_sum(values, torch.bfloat16),
        "fp16, fp32 accumulator": sequential_sum(values, torch.float16, torch.float32),
    }


def memory_rows(batch: int = BATCH_SIZE) -> list[dict]:
    """Return the bytes of one training step (`training_memory`) in fp32 and in 16 bits with
    fp32 masters, for the mnist1d CNN at `batch` and for the Linear-heavy MLP at batch 256:
    one row per model and precision, with "ratio" (total over the fp32 total).

    Source: Micikevicius et al. 2018, abstract ("nearly halves memory requirements").
    """
    check_positive_int("batch", batch)
    splits = load_mnist1d(seed=0)
    models = [
        ("mnist1d CNN", build_cnn(0), splits.train[0][:batch]),
        ("MLP " + "-".join(map(str, SPEED_SIZES)), _speed_mlp(0), torch.randn(SPEED_BATCH, 1024)),
    ]
    rows = []
    for name, model, x in models:
        full = training_memory(model, x)
        for precision, dtype in (("fp32", None), ("bf16 + fp32 masters", torch.bfloat16)):
            step = full if dtype is None else training_memory(model, x, dtype=dtype)
            rows.append({"model": name, "precision": precision, **step,
                         "ratio": step["total"] / full["total"]})  # fmt: skip
    return rows


def step_speed(threads: int = 2, repeats: int = 7) -> dict:
    """Time one SGD step (forward, backward, update) of the 1024-4096-1024 MLP at batch 256 in
    fp32, under torch.autocast in bf16, and with the reference recipe in bf16; and one
    1024x1024 matrix product in fp32, bf16 and fp16 (CPUs have no fp16 matmul kernels: the
    trap). Medians in ms over `repeats` runs, on `threads` threads, and the ratios to fp32.

    Source: Micikevicius et al. 2018, section 1 (the speed of 16-bit arithmetic units); issue 14's
    CPU figures.
    """
    check_positive_int("threads", threads)
    check_positive_int("repeats", repeats)
    out: dict = {"threads": threads}
    x, y = (
        torch.randn(SPEED_BATCH, SPEED_SIZES[0]),
        torch.randint(0, SPEED_SIZES[-1], (SPEED_BATCH,)),
    )
    with torch_threads(threads):
        for name, step in _steps(x, y).items():
            out[f"{name}_ms"] = _median_ms(step, repeats)
        a = torch.randn(1024, 1024)
        for dtype, name in (
            (torch.float32, "fp32"),
            (torch.bfloat16, "bf16"),
            (torch.float16, "fp16"),
        ):
            m = a.to(dtype)
            out[f"matmul_{name}_ms"] = _median_ms(
                lambda m=m: m @ m, 3 if name == "fp16" else repeats
            )
    out["autocast_speedup"] = out["fp32_ms"] / out["autocast-bf16_ms"]
    out["reference_speedup"] = out["fp32_ms"] / out["reference-bf16_ms"]
    out["matmul_bf16_speedup"] = out["matmul_fp32_ms"] / out["matmul_bf16_ms"]
    out["matmul_fp16_slowdown"] = out["matmul_fp16_ms"] / out["matmul_fp32_ms"]
    out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    out["cpu_16bit_flags"] = cpu_16bit_flags()
    return out


def cpu_16bit_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """Return the CPU's instruction-set flags for 16-bit floating point (avx512_bf16,
    avx512_fp16, amx_bf16, amx_fp16, ...) as Linux lists them in `cpuinfo`; () where the file
    is missing or lists none.

    Source: the Linux kernel's x86 cpufeatures names, as /proc/cpuinfo prints them.
    """
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(f for f in line.split(":", 1)[1].split() if "bf16" in f or "fp16" in f)
    return tuple(sorted(flags))


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _train(mode, model, train_loader, val_loader, epochs, seed):
    if mode == "fp32":
        return fit_autocast(
            model, train_loader, val_loader, dtype=None, epochs=epochs, lr=LR, seed=seed
        )
    if mode == "autocast-bf16":
        return fit_autocast(
            model, train_loader, val_loader, dtype=torch.bfloat16, epochs=epochs, lr=LR, seed=seed
        )
    if mode == "reference-bf16":
        return train_mixed(
            model, train_loader, val_loader, dtype=torch.bfloat16, epochs=epochs, lr=LR, seed=seed
        )
    return train_mixed(
        model,
        train_loader,
        val_loader,
        dtype=torch.float16,
        scaler=LossScaler(**SCALER),
        epochs=epochs,
        lr=LR,
        seed=seed,
    )


def _speed_mlp(seed: int) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        a, b, c = SPEED_SIZES
        return nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c))


def _steps(x: Tensor, y: Tensor) -> dict:
    """One training step of the speed MLP per precision, as closures."""
    fp32, auto, ref = _speed_mlp(0), _speed_mlp(0), _speed_mlp(0)
    opt32 = torch.optim.SGD(fp32.parameters(), lr=1e-3, momentum=0.9)
    opt_auto = torch.optim.SGD(auto.parameters(), lr=1e-3, momentum=0.9)
    half = _speed_mlp(0).to(torch.bfloat16)
    masters = list(ref.parameters())
    opt_ref = torch.optim.SGD(masters, lr=1e-3, momentum=0.9)
    xh = x.to(torch.bfloat16)

    def step_fp32():
        opt32.zero_grad(set_to_none=True)
        F.cross_entropy(fp32(x), y).backward()
        opt32.step()

    def step_autocast():
        opt_auto.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(auto(x), y)
        loss.backward()
        opt_auto.step()

    def step_reference():
        with torch.no_grad():
            for h, m in zip(half.parameters(), masters, strict=True):
                h.copy_(m)
                h.grad = None
        F.cross_entropy(half(xh).float(), y).backward()
        for h, m in zip(half.parameters(), masters, strict=True):
            m.grad = h.grad.float()
        opt_ref.step()

    return {"fp32": step_fp32, "autocast-bf16": step_autocast, "reference-bf16": step_reference}


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)
