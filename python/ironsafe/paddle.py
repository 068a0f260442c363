"""Save and load PaddlePaddle tensors in the safetensors format.

The same functions as ``safetensors.paddle``. Saving hands the tensors'
memory to the writer without a copy (tensors not on the CPU are copied there
first); loading reads the tensors as numpy arrays and hands them to paddle,
which copies them into tensors of its own, then moves them to ``device``.

Every dtype that both the format and paddle have is supported:
``bool``, ``uint8``, ``int8``, ``int16``, ``uint16``, ``int32``, ``uint32``,
``int64``, ``uint64``, ``float16``, ``bfloat16``, ``float32``, ``float64``,
``complex64``, ``float8_e4m3fn`` and ``float8_e5m2``.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Dict, List, Optional, Union

import numpy as np
import paddle

from ironsafe import _convert
from ironsafe import numpy as _numpy
from ironsafe._ironsafe import SafetensorError, TensorSpec, serialize, serialize_file
from ironsafe._safe_open import safe_open

__all__ = ["load", "load_file", "save", "save_file"]


def save(tensors: Dict[str, paddle.Tensor], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes paddle tensors into the bytes of a safetensors file.

    Args:
        tensors: tensor names -> contiguous ``paddle.Tensor``.
        metadata: optional text-only ``str -> str`` entries, stored in the
            header's ``__metadata__``; informative only.

    Returns:
        The file's bytes.

    Raises:
        ValueError: ``tensors`` is not a dict, a value is not a
            ``paddle.Tensor``, or a tensor is not contiguous.

    Example::

        >>> import paddle
        >>> from ironsafe.paddle import save
        >>> data = save({"embedding": paddle.zeros([512, 1024]), "bias": paddle.zeros([16])})
    """
    keep_alive: List[Any] = []
    specs = _specs(tensors, keep_alive)
    return serialize(specs, metadata=metadata)


def save_file(
    tensors: Dict[str, paddle.Tensor],
    filename: Union[str, os.PathLike[str]],
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Writes paddle tensors to ``filename`` as a safetensors file
    (atomically: a temporary file beside it is renamed into place).

    Args:
        tensors: tensor names -> contiguous ``paddle.Tensor``.
        filename: the path to write (``str`` or ``os.PathLike``).
        metadata: optional text-only ``str -> str`` entries for the header.

    Raises:
        ValueError: as ``save``.

    Example::

        >>> import paddle
        >>> from ironsafe.paddle import save_file
        >>> save_file({"embedding": paddle.zeros([512, 1024])}, "model.safetensors")
    """
    keep_alive: List[Any] = []
    specs = _specs(tensors, keep_alive)
    serialize_file(specs, filename, metadata=metadata)


def load(data: bytes, device: str = "cpu") -> Dict[str, paddle.Tensor]:
    """Loads paddle tensors from the bytes of a safetensors file.

    Args:
        data: the content of a safetensors file.
        device: where the tensors go: ``"cpu"`` (default), ``"cuda"``,
            ``"cuda:N"`` or an int N (paddle's ``"gpu:N"``), or any device
            string paddle itself accepts (``"gpu:0"``, ``"xpu:1"``, ...).

    Returns:
        Tensor names -> ``paddle.Tensor``, in file order.

    Example::

        >>> from ironsafe.paddle import load
        >>> with open("model.safetensors", "rb") as file:
        ...     tensors = load(file.read())
    """
    target = _paddle_device(device)
    return {name: _to_paddle(array, target) for name, array in _numpy.load(data).items()}


def load_file(
    filename: Union[str, os.PathLike[str]], device: Union[str, int] = "cpu", *, backend: str = "mmap"
) -> Dict[str, paddle.Tensor]:
    """Loads every tensor of a safetensors file as paddle tensors.

    Args:
        filename: the file to read (``str`` or ``os.PathLike``).
        device: where the tensors go, as ``safe_open`` accepts it: ``"cpu"``
            (default), ``"cuda"``, ``"cuda:N"``, an int N, ``"xpu:N"``, ...
        backend: ``"mmap"`` (default) or ``"pread"``. Either way each tensor
            is paddle's own copy, read in one parallel pass.

    Returns:
        Tensor names -> ``paddle.Tensor``, in file order.

    Example::

        >>> from ironsafe.paddle import load_file
        >>> tensors = load_file("model.safetensors")
    """
    with safe_open(filename, framework="paddle", device=device, backend=backend) as file:
        return {name: file.get_tensor(name) for name in file.offset_keys()}


# numpy dtype name -> (the paddle dtype attribute, the numpy dtype paddle is
# handed the bytes as). paddle.to_tensor takes only some numpy dtypes (and
# takes uint16 for bfloat16): the others go in as a signed integer of their
# width and are reinterpreted with Tensor.view.
_FROM_NUMPY = {
    "bool": ("bool", None),
    "uint8": ("uint8", None),
    "int8": ("int8", None),
    "int16": ("int16", None),
    "uint16": ("uint16", "int16"),
    "float16": ("float16", None),
    "bfloat16": ("bfloat16", "int16"),
    "int32": ("int32", None),
    "uint32": ("uint32", "int32"),
    "float32": ("float32", None),
    "complex64": ("complex64", None),
    "float64": ("float64", None),
    "int64": ("int64", None),
    "uint64": ("uint64", "int64"),
    "float8_e4m3fn": ("float8_e4m3fn", "int8"),
    "float8_e5m2": ("float8_e5m2", "int8"),
}


def _to_paddle(array: np.ndarray, device: Any) -> paddle.Tensor:
    """A paddle tensor holding a copy of ``array``, on ``device`` (None: the CPU)."""
    entry = _FROM_NUMPY.get(array.dtype.name)
    dtype = getattr(paddle, entry[0], None) if entry else None
    if entry is None or dtype is None:
        version = getattr(paddle, "__version__", "")
        raise SafetensorError(f"dtype {array.dtype.name} is not supported by paddle {version}")
    if not array.dtype.isnative:  # little-endian data on a big-endian host
        array = array.astype(array.dtype.newbyteorder("="))
    carrier = entry[1]
    tensor = paddle.to_tensor(array if carrier is None else array.view(carrier), place=paddle.CPUPlace())
    if carrier is not None:
        tensor = tensor.view(dtype)
    if device is not None:
        tensor = tensor.to(device)
    return tensor


def _paddle_device(device: Any) -> Any:
    """The paddle device for ``device``: None for the CPU, ``"gpu:N"`` for
    CUDA devices (``"cuda"``, ``"cuda:N"``, an int N); anything else is
    handed to paddle as it is."""
    if device is None or device == "cpu":
        return None
    if isinstance(device, int) and not isinstance(device, bool):
        return f"gpu:{device}"
    if isinstance(device, str):
        kind, _, index = device.partition(":")
        if kind == "cuda":
            return f"gpu:{index or 0}"
    return device


# paddle dtype attribute -> the TensorSpec dtype name. The name is not taken
# from str(dtype): paddle prints uint16 as "paddle.bfloat16".
_SPEC_NAMES = (
    "bool",
    "uint8",
    "int8",
    "int16",
    "uint16",
    "float16",
    "bfloat16",
    "int32",
    "uint32",
    "float32",
    "complex64",
    "float64",
    "int64",
    "uint64",
    "float8_e4m3fn",
    "float8_e5m2",
)


def _spec_name(dtype: Any) -> str:
    """The TensorSpec name of a paddle dtype; one the format lacks keeps its
    own name, which TensorSpec rejects with the list of supported dtypes."""
    for name in _SPEC_NAMES:
        if getattr(paddle, name, None) == dtype:
            return name
    return str(dtype).rpartition(".")[2]


_NON_CONTIGUOUS = (
    "You are trying to save a non contiguous tensor: `{name}` which is not allowed. It either means you"
    " are trying to save tensors which are reference of each other in which case it's recommended to save"
    " only the full tensors, and reslice at load time, or simply call `.contiguous()` on your tensor to"
    " pack it before saving."
)


@_convert.gc_paused()
def _specs(tensors: Dict[str, paddle.Tensor], keep_alive: List[Any]) -> Dict[str, TensorSpec]:
    """A ``TensorSpec`` for each tensor, pointing at its memory (or at a CPU
    or byteswapped copy, appended to ``keep_alive`` like the tensors: the
    caller keeps that list until the write has returned)."""
    if not isinstance(tensors, dict):
        raise ValueError(f"Expected a dict of [str, paddle.Tensor] but received {type(tensors)}")
    for name, value in tensors.items():
        if not isinstance(value, paddle.Tensor):
            raise ValueError(f"Key `{name}` is invalid, expected paddle.Tensor but received {type(value)}")
    specs = {}
    for name, tensor in tensors.items():
        if not tensor.is_contiguous():
            raise ValueError(_NON_CONTIGUOUS.format(name=name))
        dtype_name = _spec_name(tensor.dtype)
        if not tensor.place.is_cpu_place():
            tensor = tensor.cpu()
        keep_alive.append(tensor)
        # math.prod, not numel(): paddle has no numel kernel for float8.
        nbytes = math.prod(tensor.shape) * tensor.element_size()
        if sys.byteorder == "little" or tensor.element_size() == 1:
            data_ptr = tensor.data_ptr() if nbytes else 0
        else:
            # The file is little-endian: swap a copy (numpy has an integer
            # of every width, and byteswap only needs the width).
            swapped = tensor.numpy().byteswap()
            keep_alive.append(swapped)
            data_ptr = swapped.ctypes.data
        specs[name] = TensorSpec(dtype=dtype_name, shape=list(tensor.shape), data_ptr=data_ptr, data_len=nbytes)
    return specs
