import pytest

from effdl._checks import (
    check_fraction,
    check_in,
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
)


def test_positive_int_returns_the_value():
    assert check_positive_int("epochs", 3) == 3


@pytest.mark.parametrize("bad", [True, False, 0, -1, 2.0, "3", None])
def test_positive_int_rejects_bools_non_ints_and_non_positive(bad):
    with pytest.raises(ValueError, match=rf"^epochs must be a positive int, got {bad!r}$"):
        check_positive_int("epochs", bad)


def test_non_negative_int():
    assert check_non_negative_int("warmup", 0) == 0
    for bad in (True, -1, 1.5):
        with pytest.raises(ValueError, match=rf"warmup must be a non-negative int, got {bad!r}"):
            check_non_negative_int("warmup", bad)


def test_positive_number():
    assert check_positive_number("clip", 1) == 1.0
    for bad in (True, 0, -0.5, float("nan"), "1"):
        with pytest.raises(ValueError, match="clip must be a number > 0"):
            check_positive_number("clip", bad)


def test_fraction():
    assert check_fraction("val_fraction", 0) == 0.0
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\), got 0"):
        check_fraction("test_fraction", 0, allow_zero=False)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1"):
        check_fraction("val_fraction", 1)
    with pytest.raises(TypeError, match="val_fraction must be a float, got bool True"):
        check_fraction("val_fraction", True)


def test_in_lists_the_allowed_values():
    assert check_in("pool", "mean", ("cls", "mean")) == "mean"
    with pytest.raises(ValueError, match=r"pool must be one of \('cls', 'mean'\), got 'max'"):
        check_in("pool", "max", ("cls", "mean"))


def test_tensor_and_module_checks_name_the_argument_and_the_type_given():
    import torch

    from effdl._checks import check_module, check_tensor

    check_tensor("weight", torch.zeros(2))
    check_module("model", torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"weight must be a torch.Tensor, got list"):
        check_tensor("weight", [1.0])
    with pytest.raises(TypeError, match=r"model must be an nn.Module, got Tensor"):
        check_module("model", torch.zeros(1))
