"""MNIST, Fashion-MNIST and CIFAR-10 as `Splits` of float tensors, read by torchvision's classes.

Start with `load_torchvision`: torchvision parses the files on disk, we only carve a seeded
validation part out of the train set, cap sizes with `limit` and scale pixels to [0, 1].
Nothing downloads unless the caller passes `download=True`. Files are read from `root`, by
default the repository's top-level `data/` folder (see `default_data_root` and data/README.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets
from torchvision.datasets import VisionDataset

from effdl._checks import check_fraction, check_positive_int
from effdl.data.splits import Splits, split_train_val

#: Environment variable naming the folder datasets live in; it overrides the default root.
DATA_ROOT_ENV = "EFFDL_DATA"

# Pixels are stored as uint8; dividing by this maps them onto [0, 1] with no mean/std shift, so
# that every lesson sees the same raw intensities and can normalise on its own if it wants to.
PIXEL_MAX = 255.0


@dataclass(frozen=True)
class _Source:
    """One torchvision dataset class and what a user needs to know to place its files."""

    dataset_class: type[VisionDataset]
    title: str
    example_file: tuple[str, ...]  # a file torchvision expects under root, for the error message


_SOURCES: dict[str, _Source] = {
    "mnist": _Source(datasets.MNIST, "MNIST", ("MNIST", "raw", "train-images-idx3-ubyte")),
    "fashion_mnist": _Source(
        datasets.FashionMNIST, "Fashion-MNIST", ("FashionMNIST", "raw", "train-images-idx3-ubyte")
    ),
    "cifar10": _Source(datasets.CIFAR10, "CIFAR-10", ("cifar-10-batches-py", "data_batch_1")),
}

TORCHVISION_NAMES: tuple[str, ...] = tuple(_SOURCES)


def default_data_root() -> Path:
    """Return the folder torchvision's files are read from when no `root` is given.

    In order: the folder named by the environment variable `EFFDL_DATA`; the `data/` folder at
    the top of the repository when effdl runs from a checkout (the folder holding
    pyproject.toml next to the `effdl` package); otherwise `effdl/data` under the user's cache
    folder (`$XDG_CACHE_HOME`, default ~/.cache). The folder need not exist yet.

    Source: the kit's layout (data/README.md).
    """
    override = os.environ.get(DATA_ROOT_ENV)
    if override:
        return Path(override).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "effdl").is_dir():
        return checkout / "data"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "effdl" / "data"


def load_torchvision(
    name: str,
    root: str | Path | None = None,
    *,
    download: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
) -> Splits:
    """Return `Splits` of a torchvision image dataset, pixels scaled to [0, 1], labels int64.

    Parameters
    ----------
    name : one of ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``.
    root : the folder holding torchvision's layout, e.g. ``root/MNIST/raw/...`` or
        ``root/cifar-10-batches-py/...``; ``None`` means `default_data_root()` (the
        repository's ``data/`` unless ``$EFFDL_DATA`` says otherwise).
    download : passed to torchvision; only then may anything be fetched from the network.
    val_fraction : share of torchvision's train set held out as validation, in [0, 1).
    seed : fixes which train samples go to validation.
    limit : keep at most this many samples in each split (the first ones after the seeded
        shuffle for train and val, the first in file order for test); ``None`` keeps all.

    Returns
    -------
    Splits with ``x`` of shape (N, 1, 28, 28) for the MNISTs or (N, 3, 32, 32) for CIFAR-10,
    float32 equal to the stored byte / 255, and ``y`` int64 class indices.

    Raises
    ------
    ValueError for an unknown `name`, a bad `val_fraction` or `limit`; FileNotFoundError when the
    files are not under `root` and `download` is False.

    Sources: LeCun et al. 1998 (MNIST); Xiao et al. 2017 (Fashion-MNIST); Krizhevsky 2009.
    """
    if name not in _SOURCES:
        raise ValueError(f"name must be one of {list(TORCHVISION_NAMES)}, got {name!r}")
    # Checked here as well as in split_train_val so a typo fails before the whole dataset is read.
    check_fraction("val_fraction", val_fraction)
    if limit is not None:
        check_positive_int("limit", limit)
    source = _SOURCES[name]
    root = default_data_root() if root is None else Path(root).expanduser()

    # Read the train set first so a missing folder fails before any splitting work.
    train_set = _open(source, name, root, train=True, download=download)
    test_set = _open(source, name, root, train=False, download=False)

    train_images, train_labels = _raw_tensors(train_set)
    # Split and cap while pixels are still uint8: a float copy of all of CIFAR-10 is 600 MB.
    train, val = split_train_val(train_images, train_labels, val_fraction, seed)
    test = _raw_tensors(test_set)
    return Splits(
        name=name,
        train=_finish(*train, limit),
        val=_finish(*val, limit),
        test=_finish(*test, limit),
        num_classes=len(train_set.classes),
    )


def _open(source: _Source, name: str, root: Path, *, train: bool, download: bool) -> VisionDataset:
    """Return torchvision's dataset object, turning its "not found" error into one that helps."""
    try:
        return source.dataset_class(root, train=train, download=download)
    except RuntimeError as error:
        # torchvision signals absent (or, for CIFAR-10, md5-mismatched) files with a RuntimeError
        # whose text says "not found"; its own existence check is the one that counts, so we
        # translate its verdict rather than guess file names ourselves.
        # With download=True a failed fetch can also say "Not Found" (HTTP 404): leave it as is.
        if download or "not found" not in str(error).lower():
            raise
        example = root.joinpath(*source.example_file)
        partial = (
            " Some of its files are there, so another is missing or (CIFAR-10 only) fails "
            "torchvision's md5 check: replace the folder with a fresh copy."
            if example.is_file()
            else ""
        )
        raise FileNotFoundError(
            f"{source.title} data not found under root {str(root)!r} "
            f"(torchvision said: {error}).{partial} To get it, call "
            f"load_torchvision({name!r}, {str(root)!r}, download=True) on a machine with network "
            f"access, or copy torchvision's folder layout under root, e.g. {str(example)!r}."
        ) from error


def _raw_tensors(dataset: VisionDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images as uint8 (N, C, H, W), labels as int64 (N,)) from torchvision's arrays."""
    # MNIST keeps a uint8 tensor (N, H, W); CIFAR10 keeps a uint8 numpy array (N, H, W, C).
    images = torch.as_tensor(dataset.data)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return images, labels


def _finish(
    images: torch.Tensor, labels: torch.Tensor, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the first `limit` samples with pixels as contiguous float32 in [0, 1]."""
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images.contiguous().to(torch.float32) / PIXEL_MAX, labels.clone()
