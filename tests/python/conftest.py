"""Fixtures shared by the Python tests.

The reference implementation (`safetensors` 0.8.0) is installed next to
ironsafe as the oracle that behaviour and bytes are compared with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Iterator, Mapping, Optional

import numpy as np
import pytest

import ironsafe

# paddle crashes the process when it is imported after tensorflow (their
# native libraries clash); the other order works. Import it first, whichever
# test module happens to need each.
try:
    import paddle  # noqa: F401
except ImportError:
    pass

# Writes a safetensors file (with ironsafe) from numpy arrays; returns its path.
WriteFile = Callable[..., Path]


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: random tests give the same cases on every run."""
    return np.random.default_rng(20240611)


@pytest.fixture
def evict() -> Callable[[Path], None]:
    """``evict(path)``: writes back the file's dirty pages and drops all of
    them from the page cache, so that the next read is cold. Skips the test
    where the system has no ``posix_fadvise``."""
    if not hasattr(os, "posix_fadvise"):
        pytest.skip("needs posix_fadvise")

    def drop(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

    return drop


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    """``write_file(arrays, metadata=None, name="model.safetensors") -> Path``:
    writes numpy arrays (of numpy's own dtypes) to ``tmp_path / name``."""

    def write(
        arrays: Mapping[str, np.ndarray],
        metadata: Optional[Dict[str, str]] = None,
        name: str = "model.safetensors",
    ) -> Path:
        kept = {key: np.ascontiguousarray(value) for key, value in arrays.items()}
        specs = {
            key: ironsafe.TensorSpec(
                dtype=_TORCH_NAMES[value.dtype.str],
                shape=list(value.shape),
                data_ptr=value.ctypes.data,
                data_len=value.nbytes,
            )
            for key, value in kept.items()
        }
        path = tmp_path / name
        ironsafe.serialize_file(specs, path, metadata)
        return path

    return write


# numpy dtype string -> the TensorSpec dtype name.
_TORCH_NAMES = {
    "|b1": "bool",
    "|u1": "uint8",
    "|i1": "int8",
    "<i2": "int16",
    "<u2": "uint16",
    "<f2": "float16",
    "<i4": "int32",
    "<u4": "uint32",
    "<f4": "float32",
    "<c8": "complex64",
    "<f8": "float64",
    "<i8": "int64",
    "<u8": "uint64",
}


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """``umask(mask)`` sets the process umask; the old one is restored after
    the test."""
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(old)
