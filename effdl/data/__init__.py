"""Datasets for the course: generated (digits, mnist1d), torchvision's on-disk sets, and
variants of controllable difficulty. Every loader returns a seeded `Splits`."""

from effdl.data.builtin import DATASETS, load, load_digits, load_mnist1d
from effdl.data.splits import Splits, split_three_ways, split_train_val
from effdl.data.torchvision_sets import load_torchvision
from effdl.data.variants import make_variant

__all__ = [
    "DATASETS",
    "Splits",
    "load",
    "load_digits",
    "load_mnist1d",
    "load_torchvision",
    "make_variant",
    "split_three_ways",
    "split_train_val",
]
