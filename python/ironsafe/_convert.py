"""Raw little-endian tensor bytes to framework arrays, and back.

Every loader goes through here: bytes (a private memory map of the file, or
a fresh buffer that Rust filled) become a numpy array or a torch tensor
without a copy; other frameworks are reached from numpy.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
from typing import Any, Iterator, List, Tuple

from ironsafe._ironsafe import DIRECT_ALIGN, Reader, SafetensorError

# numpy's threshold for asking for huge pages (4 MiB).
_LARGE = 4 << 20

# Tensors of a cold file at least this big are read past the page cache into
# memory of their own; smaller ones are not worth their blocks' slack.
_DIRECT_MIN = 1 << 20

# What the reader says of a tensor: name, dtype code, shape, and its first
# and one-past-last byte in the file.
Info = Tuple[str, str, List[int], int, int]

# File code -> numpy dtype, for the dtypes numpy has natively.
_NUMPY_NATIVE = {
    "BOOL": "|b1",
    "U8": "|u1",
    "I8": "|i1",
    "I16": "<i2",
    "U16": "<u2",
    "F16": "<f2",
    "I32": "<i4",
    "U32": "<u4",
    "F32": "<f4",
    "C64": "<c8",
    "F64": "<f8",
    "I64": "<i8",
    "U64": "<u8",
}

# File code -> ml_dtypes attribute, for the ones numpy lacks.
_ML_DTYPES = {
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
}

# File code -> torch dtype attribute. Some exist only in newer torch versions.
TORCH_DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "C64": "complex64",
    "F64": "float64",
    "I64": "int64",
    "U64": "uint64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
    "F4": "float4_e2m1fn_x2",
}


def numpy_dtype(code: str) -> Any:
    """The numpy dtype of a file dtype code."""
    import numpy as np

    if code in _NUMPY_NATIVE:
        return np.dtype(_NUMPY_NATIVE[code])
    if code in _ML_DTYPES:
        try:
            import ml_dtypes
        except ImportError:
            raise SafetensorError(
                f"dtype {code} needs the ml_dtypes package with numpy: pip install ml_dtypes"
            ) from None
        return np.dtype(getattr(ml_dtypes, _ML_DTYPES[code]))
    raise SafetensorError(f"dtype {code} has no numpy equivalent")


def numpy_array(buffer: Any, offset: int, code: str, shape: list[int]) -> Any:
    """A numpy array over ``buffer[offset:]``, without a copy."""
    import numpy as np

    return np.ndarray(tuple(shape), dtype=numpy_dtype(code), buffer=buffer, offset=offset)


def torch_dtype(code: str) -> Any:
    """The torch dtype of a file dtype code."""
    import torch

    dtype = getattr(torch, TORCH_DTYPES.get(code, ""), None)
    if dtype is None:
        raise SafetensorError(f"dtype {code} is not supported by torch {torch.__version__}")
    return dtype


def torch_shape(code: str, shape: list[int]) -> list[int]:
    """The torch shape of a tensor: F4 packs two values per byte, so torch's
    last dimension is half the file's."""
    if code == "F4" and shape:
        return [*shape[:-1], shape[-1] // 2]
    return list(shape)


def torch_tensor(buffer: Any, offset: int, nbytes: int, code: str, shape: list[int]) -> Any:
    """A torch tensor over ``buffer[offset:offset + nbytes]``, without a copy."""
    import torch

    dtype = torch_dtype(code)
    if nbytes == 0:
        return torch.empty(torch_shape(code, shape), dtype=dtype)
    raw = torch.frombuffer(buffer, dtype=torch.uint8, count=nbytes, offset=offset)
    return torch_typed(raw, code, shape)


def torch_typed(raw: Any, code: str, shape: list[int]) -> Any:
    """A tensor of bytes (``uint8``, of exactly the tensor's length) as the
    tensor of dtype ``code`` and file shape ``shape``, without a copy."""
    return raw.view(torch_dtype(code)).reshape(torch_shape(code, shape))


def torch_views(buffer: Any, infos: list[Info]) -> dict[str, Any]:
    """Torch tensors over ``buffer`` (the whole file) for every tensor of
    ``infos``, without a copy. The per-tensor work is kept to one
    ``frombuffer`` and one ``view``: adapters hold tens of thousands of
    tensors."""
    import torch

    dtypes: dict[str, Any] = {}
    tensors = {}
    for name, code, shape, begin, end in infos:
        dtype = dtypes.get(code)
        if dtype is None:
            dtype = dtypes[code] = torch_dtype(code)
        if code == "F4" or end == begin:
            tensors[name] = torch_tensor(buffer, begin, end - begin, code, shape)
        else:
            count = (end - begin) // dtype.itemsize
            tensors[name] = torch.frombuffer(buffer, dtype=dtype, count=count, offset=begin).view(shape)
    return tensors


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector while a batch of tensors, or of
    their descriptions for a save, is made: tens of thousands of new objects
    would otherwise set off collections that scan the whole heap, often more
    than doubling the time of loading or saving an adapter. Nothing here
    makes cycles; collection resumes afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_owned(reader: Reader, infos: list[Info], *, torch: bool) -> dict[str, Any]:
    """Reads the tensors of ``infos`` into fresh memory of their own (torch
    tensors, or numpy arrays), all in one parallel read with the GIL released.

    Each destination is allocated uninitialized and written once, in place.
    """
    allocate, typed = _owned_memory(torch)
    for _, code, _, _, _ in infos:
        (torch_dtype if torch else numpy_dtype)(code)  # unsupported dtypes fail before any I/O
    large = [info for info in infos if info[4] - info[3] >= _DIRECT_MIN]
    cold = large and hasattr(mmap, "MAP_ANONYMOUS") and reader.is_cold()
    raws = _read_cold(reader, large, torch) if cold else {}
    jobs = []
    for name, _, _, begin, end in infos:
        if name not in raws:
            raws[name], address = allocate(end - begin)
            jobs.append((name, address))
    reader.read_into(jobs)
    return {name: typed(raws[name], code, shape) for name, code, shape, _, _ in infos}


def _read_cold(reader: Reader, infos: list[Info], torch: bool) -> dict[str, Any]:
    """Reads the tensors of ``infos`` (of a cold file) past the page cache:
    each into anonymous memory of its own, in the whole aligned blocks around
    it, and returns their bytes (a torch ``uint8`` tensor or numpy array
    starting at the tensor's first byte). The page cache would only add a
    copy, into fresh memory it has to find first."""
    import ctypes

    blocks = []
    jobs = []
    placed = []
    for info in infos:
        name, _, _, begin, end = info
        capacity = end - begin + 2 * DIRECT_ALIGN
        try:
            block = mmap.mmap(-1, capacity, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except OSError:  # no room: the usual allocation fails the framework's way
            continue
        placed.append(info)
        view = ctypes.c_char.from_buffer(block)
        jobs.append((name, ctypes.addressof(view), capacity))
        del view  # the address stays valid while the map lives
        blocks.append(block)
    shifts = reader.read_aligned_into(jobs)
    if torch:
        import torch as _torch

        frombuffer = _torch.frombuffer
        dtype: Any = _torch.uint8
    else:
        import numpy as np

        frombuffer = np.frombuffer
        dtype = np.uint8
    return {
        name: frombuffer(block, dtype=dtype, count=end - begin, offset=shift)
        for (name, _, _, begin, end), block, shift in zip(placed, blocks, shifts)
    }


def read_slice(reader: Reader, name: str, indices: list[Any], code: str, *, torch: bool, mapped: bool = False) -> Any:
    """Reads the part of tensor ``name`` that ``indices`` select into fresh
    memory of its own (a torch tensor or numpy array), runs in parallel.
    ``mapped`` (the mmap backend): a slice of many runs is copied from a map
    of the file rather than read with ``preadv`` (see ``Reader.read_slice_into``)."""
    allocate, typed = _owned_memory(torch)
    (torch_dtype if torch else numpy_dtype)(code)  # unsupported dtypes fail before any I/O
    raw, shape = reader.read_slice_into(name, indices, allocate, mapped=mapped)
    return typed(raw, code, shape)


def _owned_memory(torch: bool) -> tuple[Any, Any]:
    """``allocate(nbytes) -> (raw, address)``: uninitialized bytes, and
    ``typed(raw, code, shape)``: those bytes as a tensor of the file's dtype."""
    if torch:
        import torch as _torch

        def allocate(nbytes: int) -> tuple[Any, int]:
            raw = _torch.empty(nbytes, dtype=_torch.uint8)
            return raw, raw.data_ptr()

        return allocate, torch_typed

    import numpy as np

    def allocate_np(nbytes: int) -> tuple[Any, int]:
        if nbytes >= _LARGE and hasattr(mmap, "MAP_ANONYMOUS"):
            # numpy asks for transparent huge pages on allocations this big,
            # and a first touch of those was measured up to several times
            # slower than of plain pages (see the engine's notes): take plain
            # anonymous memory instead. The array owns it through its base.
            block = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            raw = np.frombuffer(block, dtype=np.uint8)
        else:
            raw = np.empty(nbytes, dtype=np.uint8)
        return raw, raw.ctypes.data

    def typed_np(raw: Any, code: str, shape: list[int]) -> Any:
        return raw.view(numpy_dtype(code)).reshape(shape)

    return allocate_np, typed_np


def from_numpy(framework: str, array: Any, device: Any) -> Any:
    """Converts a numpy array to ``framework``'s array type on ``device``."""
    if framework == "numpy":
        return array
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(array)
    if framework == "flax":
        import jax.numpy as jnp

        return jnp.array(array)
    if framework == "mlx":
        import mlx.core as mx

        return mx.array(array)
    if framework == "paddle":
        from ironsafe.paddle import _paddle_device, _to_paddle

        return _to_paddle(array, _paddle_device(device))
    raise AssertionError(f"no conversion for {framework}")
