"""Save and load TensorFlow tensors in the safetensors format.

The same functions as ``safetensors.tensorflow``. Tensors go through numpy
on the way in and out (``bfloat16`` and ``float8`` included, through
``ml_dtypes``, which TensorFlow depends on).
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Union

import numpy as np
import tensorflow as tf

from ironsafe import _convert
from ironsafe import numpy as _numpy
from ironsafe._safe_open import safe_open

__all__ = ["load", "load_file", "save", "save_file"]


def save(tensors: Dict[str, tf.Tensor], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes TensorFlow tensors into the bytes of a safetensors file.

    Args:
        tensors: tensor names -> ``tf.Tensor`` (or ``tf.Variable``: anything
            with a ``.numpy()`` method). The dict is not modified.
        metadata: optional text-only ``str -> str`` entries, stored in the
            header's ``__metadata__``; informative only.

    Returns:
        The file's bytes.

    Example::

        >>> import tensorflow as tf
        >>> from ironsafe.tensorflow import save
        >>> data = save({"embedding": tf.zeros((512, 1024)), "bias": tf.zeros(16)})
    """
    return _numpy.save(_to_numpy(tensors), metadata=metadata)


def save_file(
    tensors: Dict[str, tf.Tensor],
    filename: Union[str, os.PathLike[str]],
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Writes TensorFlow tensors to ``filename`` as a safetensors file
    (atomically: a temporary file beside it is renamed into place).

    Args:
        tensors: tensor names -> ``tf.Tensor``. The dict is not modified.
        filename: the path to write (``str`` or ``os.PathLike``).
        metadata: optional text-only ``str -> str`` entries for the header.

    Example::

        >>> import tensorflow as tf
        >>> from ironsafe.tensorflow import save_file
        >>> save_file({"embedding": tf.zeros((512, 1024))}, "model.safetensors")
    """
    _numpy.save_file(_to_numpy(tensors), filename, metadata=metadata)


def load(data: bytes) -> Dict[str, tf.Tensor]:
    """Loads TensorFlow tensors from the bytes of a safetensors file.

    Args:
        data: the content of a safetensors file.

    Returns:
        Tensor names -> ``tf.Tensor``, in file order.

    Example::

        >>> from ironsafe.tensorflow import load
        >>> with open("model.safetensors", "rb") as file:
        ...     tensors = load(file.read())
    """
    return {name: _convert.from_numpy("tensorflow", array, "cpu") for name, array in _numpy.load(data).items()}


def load_file(filename: Union[str, os.PathLike[str]], *, backend: str = "mmap") -> Dict[str, tf.Tensor]:
    """Loads every tensor of a safetensors file as TensorFlow tensors.

    Args:
        filename: the file to read (``str`` or ``os.PathLike``).
        backend: ``"mmap"`` (default) or ``"pread"``. Either way each tensor
            is TensorFlow's own copy, read in one parallel pass.

    Returns:
        Tensor names -> ``tf.Tensor``, in file order.

    Example::

        >>> from ironsafe.tensorflow import load_file
        >>> tensors = load_file("model.safetensors")
    """
    with safe_open(filename, framework="tf", backend=backend) as file:
        return file.get_tensors()


def _to_numpy(tensors: Dict[str, tf.Tensor]) -> Dict[str, np.ndarray]:
    """A new dict of the tensors as numpy arrays (``np.asarray``: a scalar
    tensor's ``.numpy()`` is a numpy scalar, not an array)."""
    return {name: np.asarray(value.numpy()) for name, value in tensors.items()}
