"""The public API called wrongly, where no other test module does: names and
file names of the wrong type, a handle used again after it was closed, and
slice keys whose bounds or steps are malformed. Each raises a clear Python
exception of the reference's type; none crashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np
import pytest
import safetensors as reference
import safetensors.numpy  # noqa: F401 - lib.numpy and lib.torch below, for both libraries
import safetensors.torch

import ironsafe
import ironsafe.numpy
import ironsafe.torch
from conftest import WriteFile
from oracle import outcome
from ironsafe import SafetensorError

BACKENDS = ["mmap", "pread"]
ARRAY = np.arange(24, dtype=np.int32).reshape(2, 3, 4)


@pytest.fixture
def small_file(write_file: WriteFile) -> Path:
    return write_file({"a": ARRAY})


@pytest.mark.parametrize("name", [5, None, b"a", ["a"], 1.5])
@pytest.mark.parametrize("method", ["get_tensor", "get_slice"])
def test_tensor_names_of_another_type_are_type_errors(name: Any, method: str, small_file: Path) -> None:
    for lib in (ironsafe, reference):
        with lib.safe_open(small_file, "np") as f:
            assert outcome(lambda: getattr(f, method)(name))[0] == "TypeError", lib.__name__


# Every way of opening a file by name.
OPENERS: Dict[str, Callable[[Any, Any], Any]] = {
    "safe_open": lambda lib, filename: lib.safe_open(filename, "np"),
    "numpy.load_file": lambda lib, filename: lib.numpy.load_file(filename),
    "torch.load_file": lambda lib, filename: lib.torch.load_file(filename),
}


@pytest.mark.parametrize("filename", [None, 5, 3.5, ["model.safetensors"]])
@pytest.mark.parametrize("opener", list(OPENERS))
def test_file_names_of_another_type_are_type_errors(filename: Any, opener: str) -> None:
    for lib in (ironsafe, reference):
        assert outcome(lambda: OPENERS[opener](lib, filename))[0] == "TypeError", lib.__name__


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_closed_handle_entered_again_stays_closed(backend: str, small_file: Path) -> None:
    for lib in (ironsafe, reference):
        f = lib.safe_open(small_file, "np", backend=backend)
        with f:
            assert f.keys() == ["a"]
        with f:
            assert outcome(f.keys) == ("SafetensorError", "File is closed"), lib.__name__
            assert outcome(lambda: f.get_tensor("a")) == ("SafetensorError", "File is closed")


# (key, the Python exception numpy's own indexing raises with it).
MALFORMED_KEYS = [
    (slice(None, None, 0), ValueError),
    (slice(0.5, 2), TypeError),
    (slice("a", None), TypeError),
    ((0, slice(None, 2.0)), TypeError),
    ((slice(None), slice(None, None, 0)), ValueError),
]


@pytest.mark.parametrize("key,python_error", MALFORMED_KEYS, ids=[repr(k) for k, _ in MALFORMED_KEYS])
@pytest.mark.parametrize("backend", BACKENDS)
def test_malformed_slices_raise_the_python_error_and_safetensor_error(
    key: Any, python_error: type, backend: str, small_file: Path
) -> None:
    """Bounds that are not integers, and a step of zero: the error indexing
    raises, and a SafetensorError as the reference's numpy slices raise."""
    with pytest.raises(python_error):
        ARRAY[key]
    with ironsafe.safe_open(small_file, "np", backend=backend) as f:
        with pytest.raises(python_error) as info:
            f.get_slice("a")[key]
        assert isinstance(info.value, SafetensorError)
    with reference.safe_open(small_file, "np") as f:
        assert outcome(lambda: f.get_slice("a")[key])[0] in ("SafetensorError", python_error.__name__)


@pytest.mark.parametrize("step", [2**64, 2**100, -(2**64), 2**63 - 1])
@pytest.mark.parametrize("backend", BACKENDS)
def test_steps_past_any_dimension_select_one_position(step: int, backend: str, small_file: Path) -> None:
    """A step far longer than the dimension selects its first (or, negative,
    last) position, as numpy's indexing does. It once reached the reader
    unclamped and failed to convert, with a TypeError naming internals."""
    with ironsafe.safe_open(small_file, "np", backend=backend) as f:
        for key in (slice(None, None, step), (0, slice(None, None, step)), (..., slice(1, None, step))):
            got = f.get_slice("a")[key]
            assert got.shape == ARRAY[key].shape and got.tolist() == ARRAY[key].tolist(), key
