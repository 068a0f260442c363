"""Save and load MLX arrays in the safetensors format.

The same functions as ``safetensors.mlx``. Arrays go through numpy on the
way in and out (``bfloat16`` included, as ``ml_dtypes.bfloat16``). MLX's
own ``mx.save_safetensors`` / ``mx.load`` read and write the same format;
this module is for code written against ``safetensors.mlx``.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Union

import mlx.core as mx
import numpy as np

from ironsafe import _convert
from ironsafe import numpy as _numpy
from ironsafe._safe_open import safe_open

__all__ = ["load", "load_file", "save", "save_file"]


def save(tensors: Dict[str, mx.array], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes MLX arrays into the bytes of a safetensors file.

    Args:
        tensors: tensor names -> ``mlx.core.array`` (anything
            ``numpy.asarray`` accepts is taken too). The dict is not modified.
        metadata: optional text-only ``str -> str`` entries, stored in the
            header's ``__metadata__``; informative only.

    Returns:
        The file's bytes.

    Example::

        >>> import mlx.core as mx
        >>> from ironsafe.mlx import save
        >>> data = save({"embedding": mx.zeros((512, 1024)), "bias": mx.zeros(16)})
    """
    return _numpy.save(_to_numpy(tensors), metadata=metadata)


def save_file(
    tensors: Dict[str, mx.array],
    filename: Union[str, os.PathLike[str]],
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Writes MLX arrays to ``filename`` as a safetensors file (atomically:
    a temporary file beside it is renamed into place).

    Args:
        tensors: tensor names -> ``mlx.core.array``. The dict is not modified.
        filename: the path to write (``str`` or ``os.PathLike``).
        metadata: optional text-only ``str -> str`` entries for the header.

    Example::

        >>> import mlx.core as mx
        >>> from ironsafe.mlx import save_file
        >>> save_file({"embedding": mx.zeros((512, 1024))}, "model.safetensors")
    """
    _numpy.save_file(_to_numpy(tensors), filename, metadata=metadata)


def load(data: bytes) -> Dict[str, mx.array]:
    """Loads MLX arrays from the bytes of a safetensors file.

    Args:
        data: the content of a safetensors file.

    Returns:
        Tensor names -> ``mlx.core.array``, in file order.

    Example::

        >>> from ironsafe.mlx import load
        >>> with open("model.safetensors", "rb") as file:
        ...     tensors = load(file.read())
    """
    return {name: _convert.from_numpy("mlx", array, "cpu") for name, array in _numpy.load(data).items()}


def load_file(filename: Union[str, os.PathLike[str]], *, backend: str = "mmap") -> Dict[str, mx.array]:
    """Loads every tensor of a safetensors file as MLX arrays.

    Args:
        filename: the file to read (``str`` or ``os.PathLike``).
        backend: ``"mmap"`` (default) or ``"pread"``. Either way each array
            is MLX's own copy, read in one parallel pass.

    Returns:
        Tensor names -> ``mlx.core.array``, in file order.

    Example::

        >>> from ironsafe.mlx import load_file
        >>> tensors = load_file("model.safetensors")
    """
    with safe_open(filename, framework="mlx", backend=backend) as file:
        return file.get_tensors()


def _to_numpy(tensors: Dict[str, mx.array]) -> Dict[str, np.ndarray]:
    """A new dict of the arrays as numpy arrays."""
    return {name: _array_to_numpy(value) for name, value in tensors.items()}


def _array_to_numpy(value: mx.array) -> np.ndarray:
    """``value`` as a numpy array. MLX exports no ``bfloat16`` buffer that
    numpy understands: such an array goes out as its 16-bit patterns, seen
    as ``ml_dtypes.bfloat16``."""
    if isinstance(value, mx.array) and value.dtype == mx.bfloat16:
        import ml_dtypes

        return np.asarray(value.view(mx.uint16)).view(ml_dtypes.bfloat16)
    return np.asarray(value)
