"""Save and load JAX arrays (as used by Flax) in the safetensors format.

The same functions as ``safetensors.flax``. Arrays go through numpy on the
way in and out (``bfloat16`` and ``float8`` included, through
``ml_dtypes``, which JAX depends on). Loaded arrays are put on JAX's default
device. Note that JAX, unless ``jax_enable_x64`` is set, turns 64-bit
values into 32-bit ones when it makes an array.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Union

import numpy as np
from jax import Array

from ironsafe import _convert
from ironsafe import numpy as _numpy
from ironsafe._safe_open import safe_open

__all__ = ["load", "load_file", "save", "save_file"]


def save(tensors: Dict[str, Array], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes JAX arrays into the bytes of a safetensors file.

    Args:
        tensors: tensor names -> ``jax.Array`` (anything ``numpy.asarray``
            accepts is taken too). The dict is not modified.
        metadata: optional text-only ``str -> str`` entries, stored in the
            header's ``__metadata__``; informative only.

    Returns:
        The file's bytes.

    Example::

        >>> import jax.numpy as jnp
        >>> from ironsafe.flax import save
        >>> data = save({"embedding": jnp.zeros((512, 1024)), "bias": jnp.zeros(16)})
    """
    return _numpy.save(_to_numpy(tensors), metadata=metadata)


def save_file(
    tensors: Dict[str, Array],
    filename: Union[str, os.PathLike[str]],
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Writes JAX arrays to ``filename`` as a safetensors file (atomically:
    a temporary file beside it is renamed into place).

    Args:
        tensors: tensor names -> ``jax.Array``. The dict is not modified.
        filename: the path to write (``str`` or ``os.PathLike``).
        metadata: optional text-only ``str -> str`` entries for the header.

    Example::

        >>> import jax.numpy as jnp
        >>> from ironsafe.flax import save_file
        >>> save_file({"embedding": jnp.zeros((512, 1024))}, "model.safetensors")
    """
    _numpy.save_file(_to_numpy(tensors), filename, metadata=metadata)


def load(data: bytes) -> Dict[str, Array]:
    """Loads JAX arrays from the bytes of a safetensors file.

    Args:
        data: the content of a safetensors file.

    Returns:
        Tensor names -> ``jax.Array``, in file order.

    Example::

        >>> from ironsafe.flax import load
        >>> with open("model.safetensors", "rb") as file:
        ...     tensors = load(file.read())
    """
    return {name: _convert.from_numpy("flax", array, "cpu") for name, array in _numpy.load(data).items()}


def load_file(filename: Union[str, os.PathLike[str]], *, backend: str = "mmap") -> Dict[str, Array]:
    """Loads every tensor of a safetensors file as JAX arrays.

    Args:
        filename: the file to read (``str`` or ``os.PathLike``).
        backend: ``"mmap"`` (default) or ``"pread"``. Either way each array
            is JAX's own copy, read in one parallel pass.

    Returns:
        Tensor names -> ``jax.Array``, in file order.

    Example::

        >>> from ironsafe.flax import load_file
        >>> tensors = load_file("model.safetensors")
    """
    with safe_open(filename, framework="flax", backend=backend) as file:
        return file.get_tensors()


def _to_numpy(tensors: Dict[str, Array]) -> Dict[str, np.ndarray]:
    """A new dict of the arrays as numpy arrays (copied to the host if need be)."""
    return {name: np.asarray(value) for name, value in tensors.items()}
