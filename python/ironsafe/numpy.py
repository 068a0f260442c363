"""Save and load numpy arrays in the safetensors format.

The same functions as ``safetensors.numpy``: ``save``, ``save_file``,
``load`` and ``load_file``. Arrays of every dtype the format has a numpy
equivalent for are supported; ``bfloat16`` and the ``float8`` types come
from the ``ml_dtypes`` package (what ``jax`` and ``tensorflow`` also use).

Arrays are written little-endian and row-major whatever their layout in
memory: arrays in big-endian byte order are byteswapped, non-contiguous ones
are packed, both into temporary copies (the caller's arrays are never
changed).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ironsafe import _convert
from ironsafe._ironsafe import TensorSpec, deserialize, serialize, serialize_file
from ironsafe._safe_open import safe_open

__all__ = ["load", "load_file", "save", "save_file"]


def save(tensor_dict: Dict[str, np.ndarray], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes numpy arrays into the bytes of a safetensors file.

    Args:
        tensor_dict: tensor names -> ``numpy.ndarray``. Any byte order and
            memory layout; the file holds little-endian, row-major data.
        metadata: optional text-only ``str -> str`` entries, stored in the
            header's ``__metadata__``; informative only.

    Returns:
        The file's bytes.

    Example::

        >>> import numpy as np
        >>> from ironsafe.numpy import save
        >>> data = save({"embedding": np.zeros((512, 1024)), "bias": np.zeros(16)})
    """
    keep_alive: List[np.ndarray] = []
    specs = _specs(tensor_dict, keep_alive)
    return serialize(specs, metadata=metadata)


def save_file(
    tensor_dict: Dict[str, np.ndarray],
    filename: Union[str, os.PathLike[str]],
    metadata: Optional[Dict[str, str]] = None,
    *,
    durable: bool = False,
) -> None:
    """Writes numpy arrays to ``filename`` as a safetensors file.

    The file is written to a temporary file beside it, then renamed into
    place, so a reader never sees a partial file.

    Args:
        tensor_dict: tensor names -> ``numpy.ndarray`` (see ``save``).
        filename: the path to write (``str`` or ``os.PathLike``).
        metadata: optional text-only ``str -> str`` entries for the header.
        durable: make the file durable before returning: its data goes
            to disk while it is written (on Linux, with direct I/O, past the
            page cache: a load right after reads from disk), and the rename
            is synced too. Off by default, as in the reference.

    Example::

        >>> import numpy as np
        >>> from ironsafe.numpy import save_file
        >>> save_file({"embedding": np.zeros((512, 1024))}, "model.safetensors")
    """
    keep_alive: List[np.ndarray] = []
    specs = _specs(tensor_dict, keep_alive)
    serialize_file(specs, filename, metadata=metadata, durable=durable)


def load(data: bytes) -> Dict[str, np.ndarray]:
    """Loads numpy arrays from the bytes of a safetensors file.

    Args:
        data: the content of a safetensors file.

    Returns:
        Tensor names -> ``numpy.ndarray`` (writable arrays of their own, in
        file order).

    Example::

        >>> from ironsafe.numpy import load
        >>> with open("model.safetensors", "rb") as file:
        ...     tensors = load(file.read())
    """
    return {
        name: _convert.numpy_array(entry["data"], 0, entry["dtype"], entry["shape"])
        for name, entry in deserialize(data)
    }


def load_file(filename: Union[str, os.PathLike[str]], *, backend: str = "mmap") -> Dict[str, np.ndarray]:
    """Loads every tensor of a safetensors file as numpy arrays.

    Args:
        filename: the file to read (``str`` or ``os.PathLike``).
        backend: ``"mmap"`` (default) or ``"pread"``. Either way each
            array owns its bytes, read in one parallel pass, as the
            reference's numpy arrays do: changing the file afterwards never
            changes them, and writing to them never changes the file.

    Returns:
        Tensor names -> ``numpy.ndarray``, in file order.

    Example::

        >>> from ironsafe.numpy import load_file
        >>> tensors = load_file("model.safetensors")
    """
    with safe_open(filename, framework="np", backend=backend) as file:
        return file.get_tensors()


@_convert.gc_paused()
def _specs(tensor_dict: Dict[str, np.ndarray], keep_alive: List[np.ndarray]) -> Dict[str, TensorSpec]:
    """A ``TensorSpec`` for each array, in ``tensor_dict``'s order.

    The arrays the specs point at (the caller's, or little-endian, C-ordered
    copies) are appended to ``keep_alive``: the caller keeps that list until
    the write that takes the specs has returned.
    """
    specs = {}
    for name, value in tensor_dict.items():
        array = _little_endian_c_order(name, value)
        keep_alive.append(array)
        specs[name] = TensorSpec(
            dtype=array.dtype.name,
            shape=list(array.shape),
            data_ptr=array.ctypes.data,
            data_len=array.nbytes,
        )
    return specs


def _little_endian_c_order(name: Any, value: Any) -> np.ndarray:
    """``value`` itself when it is a little-endian, C-contiguous array, else
    such a copy of it."""
    if not isinstance(value, np.ndarray):
        # An AttributeError, as the reference raises for any such value.
        if not hasattr(value, "dtype"):
            # The reference's very message, for ints, lists, None, ...
            raise AttributeError(f"'{type(value).__name__}' object has no attribute 'dtype'")
        raise AttributeError(f"Key `{name}` is invalid, expected numpy.ndarray but received {type(value)}")
    if not _is_little_endian(value.dtype):
        return value.astype(value.dtype.newbyteorder("<"), order="C")
    if not value.flags.c_contiguous:
        return value.copy(order="C")
    return value


def _is_little_endian(dtype: np.dtype) -> bool:
    """Whether ``dtype``'s values are stored little-endian (or are single
    bytes, for which byte order means nothing)."""
    order = dtype.byteorder
    if order == "=":
        return sys.byteorder == "little"
    return order in ("<", "|")
