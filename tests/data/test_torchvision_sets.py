"""Tests for effdl.data.torchvision_sets on tiny files fabricated in each real on-disk format.

Nothing downloads: every test writes IDX files (MNIST, Fashion-MNIST) or CIFAR-10 pickles under
pytest's tmp_path and reads them through torchvision's own dataset classes.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets
from torchvision.transforms import functional as tvf

from effdl.data.torchvision_sets import TORCHVISION_NAMES, load_torchvision

N_TRAIN = 20  # fabricated train-file samples; CIFAR-10 spreads them over 5 batches of 4
N_TEST = 6
TEST_ID_OFFSET = 100  # test samples carry ids 100.. so they never collide with train ids
# A pixel that is 0 in every fabricated image except where we set it, to check the channel axis.
MARK_CHANNEL, MARK_ROW, MARK_COL, MARK_VALUE = 1, 3, 5, 200


# --- writers for the real formats ------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` (uint8) as an IDX file: magic 0x0000 08 <ndim>, big-endian dims, raw bytes."""
    assert array.dtype == np.uint8
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def mnist_images(ids: np.ndarray) -> np.ndarray:
    """Return (N, 28, 28) uint8 images whose pixel (0, 0) is the sample id."""
    images = np.zeros((len(ids), 28, 28), dtype=np.uint8)
    images[:, 0, 0] = ids
    images[:, 27, 27] = 255  # the extreme value must map to exactly 1.0
    images[:, MARK_ROW, MARK_COL] = MARK_VALUE
    return images


def fabricate_idx_dataset(root: Path, folder: str) -> None:
    """Write the four uncompressed IDX files torchvision's MNIST-style classes look for."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    train_ids = np.arange(N_TRAIN)
    test_ids = TEST_ID_OFFSET + np.arange(N_TEST)
    write_idx(raw / "train-images-idx3-ubyte", mnist_images(train_ids))
    write_idx(raw / "train-labels-idx1-ubyte", (train_ids % 10).astype(np.uint8))
    write_idx(raw / "t10k-images-idx3-ubyte", mnist_images(test_ids))
    write_idx(raw / "t10k-labels-idx1-ubyte", (test_ids % 10).astype(np.uint8))


def cifar_batch(ids: np.ndarray) -> dict:
    """Return one CIFAR-10 batch dict: data (N, 3072) uint8 in R, G, B planes, labels a list."""
    planes = np.zeros((len(ids), 3, 32, 32), dtype=np.uint8)
    planes[:, 0, 0, 0] = ids
    planes[:, 2, 31, 31] = 255  # ids in red, the mark in green, 255 in blue
    planes[:, MARK_CHANNEL, MARK_ROW, MARK_COL] = MARK_VALUE
    # The real files are Python 2 pickles whose str keys torchvision decodes (encoding="latin1")
    # to str, so the keys it indexes are "data" and "labels" (bytes keys only appear when a
    # reader passes encoding="bytes", as the CIFAR web page's snippet does).
    return {
        "batch_label": "fabricated",
        "labels": [int(i % 10) for i in ids],
        "data": planes.reshape(len(ids), 3072),
        "filenames": [f"img_{i}.png" for i in ids],
    }


def fabricate_cifar10(root: Path) -> dict[str, str]:
    """Write cifar-10-batches-py under root; return the md5 of every file written."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    per_batch = N_TRAIN // 5
    contents = {
        f"data_batch_{b + 1}": cifar_batch(np.arange(b * per_batch, (b + 1) * per_batch))
        for b in range(5)
    }
    contents["test_batch"] = cifar_batch(TEST_ID_OFFSET + np.arange(N_TEST))
    contents["batches.meta"] = {"label_names": [f"class_{k}" for k in range(10)]}
    md5 = {}
    for file_name, content in contents.items():
        path = folder / file_name
        path.write_bytes(pickle.dumps(content, protocol=2))
        md5[file_name] = hashlib.md5(path.read_bytes()).hexdigest()
    return md5


def trust_fabricated_cifar_checksums(monkeypatch: pytest.MonkeyPatch, md5: dict[str, str]) -> None:
    """Make torchvision's CIFAR10 expect our files' md5 sums instead of the published ones.

    Unlike MNIST (which only checks that files exist), CIFAR10 verifies the md5 of every batch
    and of batches.meta each time it is constructed, so fabricated files are rejected as
    "corrupted". Swapping only the expected checksums keeps all of torchvision's code in use:
    its integrity check, its unpickling and its reshaping.
    """
    cls = datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f, md5[f]] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, md5[f]] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})


@pytest.fixture(params=["mnist", "fashion_mnist", "cifar10"])
def fabricated(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """Return (name, root) of a tiny fabricated copy of one dataset."""
    name = request.param
    if name == "cifar10":
        trust_fabricated_cifar_checksums(monkeypatch, fabricate_cifar10(tmp_path))
    else:
        fabricate_idx_dataset(tmp_path, {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name])
    return name, tmp_path


def sample_ids(x: torch.Tensor) -> list[int]:
    """Return the id each fabricated image stores in its first pixel."""
    return torch.round(x[:, 0, 0, 0] * 255).to(torch.int64).tolist()


# --- round trip ------------------------------------------------------------------------------


def test_shapes_dtypes_and_range(fabricated):
    name, root = fabricated
    splits = load_torchvision(name, root, val_fraction=0.25)
    shape = (3, 32, 32) if name == "cifar10" else (1, 28, 28)
    assert splits.name == name
    assert splits.num_classes == 10
    assert splits.sizes() == {"train": 15, "val": 5, "test": N_TEST}
    for x, y in (splits.train, splits.val, splits.test):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == shape and x.is_contiguous()
        assert x.min().item() == 0.0 and x.max().item() == 1.0


def test_pixels_and_labels_survive(fabricated):
    name, root = fabricated
    splits = load_torchvision(name, root, val_fraction=0.25)
    for x, y in (splits.train, splits.val, splits.test):
        ids = torch.tensor(sample_ids(x))
        assert torch.equal(y, ids % 10)  # each label still belongs to its own image
        mark = x[:, MARK_CHANNEL if name == "cifar10" else 0, MARK_ROW, MARK_COL]
        assert torch.equal(mark, torch.full_like(mark, MARK_VALUE / 255))
        assert torch.equal(x[:, -1, -1, -1], torch.ones(len(x)))
    # The test split is torchvision's test file, in file order.
    assert sample_ids(splits.test[0]) == list(range(TEST_ID_OFFSET, TEST_ID_OFFSET + N_TEST))


def test_matches_torchvision_per_item_transform(fabricated):
    """Our bulk read of .data equals torchvision's own PIL + to_tensor path, item by item."""
    name, root = fabricated
    splits = load_torchvision(name, root)
    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}.get(
        name, datasets.CIFAR10
    )
    reference = cls(root, train=False)
    for i in range(N_TEST):
        image, label = reference[i]
        assert torch.equal(splits.test[0][i], tvf.to_tensor(image))
        assert splits.test[1][i].item() == label


def test_train_and_val_partition_the_train_file(fabricated):
    name, root = fabricated
    splits = load_torchvision(name, root, val_fraction=0.25, seed=3)
    train_ids, val_ids = set(sample_ids(splits.train[0])), set(sample_ids(splits.val[0]))
    assert not train_ids & val_ids
    assert train_ids | val_ids == set(range(N_TRAIN))
    assert len(val_ids) == 5


def test_split_is_deterministic_per_seed(fabricated):
    name, root = fabricated
    first = load_torchvision(name, root, val_fraction=0.25, seed=7)
    again = load_torchvision(name, root, val_fraction=0.25, seed=7)
    other = load_torchvision(name, root, val_fraction=0.25, seed=8)
    for a, b in zip(first.train + first.val, again.train + again.val, strict=True):
        assert torch.equal(a, b)
    assert sample_ids(first.val[0]) != sample_ids(other.val[0])


def test_limit_caps_every_split(fabricated):
    name, root = fabricated
    full = load_torchvision(name, root, val_fraction=0.25, seed=1)
    small = load_torchvision(name, root, val_fraction=0.25, seed=1, limit=3)
    assert small.sizes() == {"train": 3, "val": 3, "test": 3}
    # limit keeps the leading samples and does not change which samples go to val.
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(small, part)[0], getattr(full, part)[0][:3])
    assert load_torchvision(name, root, val_fraction=0.25, limit=1000).sizes() == full.sizes()


def test_loaders_yield_batches(fabricated):
    name, root = fabricated
    train, _, test = load_torchvision(name, root).loaders(batch_size=4, seed=0)
    x, y = next(iter(train))
    assert x.shape[0] == 4 and y.dtype == torch.int64
    assert sum(len(b[1]) for b in test) == N_TEST


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_missing_folder_says_how_to_get_the_data(tmp_path: Path, name: str):
    root = tmp_path / "no_data_here"
    with pytest.raises(FileNotFoundError) as caught:
        load_torchvision(name, root)
    message = str(caught.value)
    assert "download=True" in message
    assert str(root) in message
    assert name in message
    assert not root.exists()  # nothing was created, let alone downloaded


def test_partial_mnist_folder_is_reported_missing(tmp_path: Path):
    fabricate_idx_dataset(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_torchvision("mnist", tmp_path)


def test_fabricated_cifar_fails_torchvision_md5_check(tmp_path: Path):
    """Without trusting our checksums, torchvision rejects the files; we say so, not crash."""
    fabricate_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="corrupted") as caught:
        load_torchvision("cifar10", tmp_path)
    assert "md5" in str(caught.value) and "cifar-10-batches-py" in str(caught.value)


def test_unknown_name_lists_allowed_names(tmp_path: Path):
    with pytest.raises(ValueError, match="name") as caught:
        load_torchvision("imagenet", tmp_path)
    message = str(caught.value)
    assert "'imagenet'" in message
    for allowed in ("mnist", "fashion_mnist", "cifar10"):
        assert allowed in message


@pytest.mark.parametrize("val_fraction", [1.0, -0.1, 1.5])
def test_bad_val_fraction(tmp_path: Path, val_fraction: float):
    fabricate_idx_dataset(tmp_path, "MNIST")
    with pytest.raises(ValueError, match="val_fraction"):
        load_torchvision("mnist", tmp_path, val_fraction=val_fraction)


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit(tmp_path: Path, limit):
    with pytest.raises(ValueError, match="limit"):
        load_torchvision("mnist", tmp_path, limit=limit)


def test_default_root_is_the_repository_data_folder_unless_the_env_var_says(monkeypatch, tmp_path):
    from effdl.data.torchvision_sets import DATA_ROOT_ENV, default_data_root

    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    repository = Path(__file__).resolve().parents[2]
    assert default_data_root() == repository / "data"
    assert (repository / "data" / "README.md").is_file()
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert default_data_root() == tmp_path
    # load_torchvision without a root reads there: the error names the folder.
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_torchvision("mnist")
