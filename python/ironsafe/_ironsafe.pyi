"""Type stubs of ``ironsafe._ironsafe``, the extension module written in Rust
(crates/ironsafe-python). ``tests/python/test_stubs.py`` checks them against
the built module with ``mypy.stubtest``."""

import os
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Final, TypedDict, TypeVar, final

from typing_extensions import TypeAlias

_T = TypeVar("_T")

__all__ = [
    "SafetensorError",
    "TensorSpec",
    "Reader",
    "serialize",
    "serialize_file",
    "deserialize",
    "cli_main",
    "convert_checkpoint",
    "__version__",
    "MAP_NORESERVE",
    "DIRECT_ALIGN",
]

__version__: Final[str]
MAP_NORESERVE: Final[int]
# The alignment of direct reads (``Reader.read_range_into(direct=True)``).
DIRECT_ALIGN: Final[int]

class SafetensorError(Exception):
    """Raised for any problem with the content of a safetensors file or with the tensors to write."""

@final
class TensorSpec:
    """One tensor to write: its dtype (a torch-style name such as ``"float32"``),
    its shape, and ``data_len`` bytes of little-endian, row-major data at
    address ``data_ptr``. For ``float4_e2m1fn_x2`` the last dimension given is
    doubled (two values per byte). Frozen.

    The memory at ``data_ptr`` must stay alive and unchanged until every
    ``serialize``/``serialize_file`` call that takes the spec has returned.
    """

    def __new__(cls, *, dtype: str, shape: Sequence[int], data_ptr: int, data_len: int) -> TensorSpec: ...
    @property
    def dtype(self) -> str:
        """The file's dtype code, e.g. ``"F32"``."""
    @property
    def shape(self) -> list[int]:
        """The logical shape, as the header records it."""
    @property
    def data_ptr(self) -> int:
        """The address of the first byte."""
    @property
    def data_len(self) -> int:
        """The number of bytes."""

# One index of ``Reader.read_slice_into``: a position (the dimension is dropped),
# or ``(start, stop, step)`` already clamped to the dimension, ``step >= 1``.
_Index: TypeAlias = int | tuple[int, int, int]

@final
class Reader:
    """An open safetensors file: its validated header, and the file, for reads
    with ``pread``. ``safe_open`` is built on it."""

    def __new__(cls, filename: str | os.PathLike[str], *, max_header_size: int = ...) -> Reader: ...
    def keys(self) -> list[str]:
        """Tensor names, sorted."""
    def offset_keys(self) -> list[str]:
        """Tensor names in file order."""
    def metadata(self) -> dict[str, str] | None:
        """The metadata, or ``None``."""
    @property
    def path(self) -> pathlib.Path:
        """The file's path, as given."""
    if sys.platform != "win32":
        def fileno(self) -> int:
            """The descriptor of the open file."""

    @property
    def file_len(self) -> int:
        """The length of the file: the header and all tensor data."""
    def info(self, name: str) -> tuple[str, list[int], int, int]:
        """``(dtype, shape, begin, end)`` of a tensor, with absolute file offsets."""
    def infos(self) -> list[tuple[str, str, list[int], int, int]]:
        """``(name, dtype, shape, begin, end)`` of every tensor in file order,
        with absolute file offsets."""
    def check_unchanged(self) -> None:
        """Raises ``SafetensorError`` if the file was truncated or modified
        since it was opened (a rename over it is not a change)."""
    def fill_page_cache(self) -> bool:
        """Reads the tensor data into the page cache in parallel, unless most
        of it is cached already; returns whether it read."""
    def read_into(self, jobs: Sequence[tuple[str, int]]) -> None:
        """Reads whole tensors into caller memory: each job pairs a tensor name
        with the address of a buffer of exactly its byte length. Parallel, with
        the GIL released."""
    def is_cold(self) -> bool:
        """Whether most of the tensor data is out of the page cache (a sample
        of pages); ``False`` where the system cannot tell."""
    def read_range_into(
        self, offset: int, len: int, address: int, capacity: int, *, direct: bool = False
    ) -> int | None:
        """Reads ``len`` bytes of tensor data from absolute file offset
        ``offset`` into the ``capacity`` bytes of caller memory at ``address``
        (a staging buffer). Parallel, with the GIL released. With ``direct``,
        past the page cache where the system allows it (``address`` aligned to
        ``DIRECT_ALIGN``, ``capacity >= len + 2 * DIRECT_ALIGN``). Returns
        where in the buffer the bytes begin when they were read directly,
        ``None`` when they were read through the page cache."""
    def read_aligned_into(self, jobs: Sequence[tuple[str, int, int]]) -> list[int]:
        """Reads whole tensors of a cold file into ``(name, address, capacity)``
        buffers aligned to ``DIRECT_ALIGN``, each at least the tensor's length
        plus ``2 * DIRECT_ALIGN``: past the page cache where the system allows
        it. Returns where in each buffer its tensor begins."""
    def read_slice_into(
        self,
        name: str,
        indices: Sequence[_Index],
        allocate: Callable[[int], tuple[_T, int]],
        *,
        mapped: bool = False,
    ) -> tuple[_T, list[int]]:
        """Reads the part of a tensor that ``indices`` select into the buffer
        ``allocate(nbytes)`` returns with its address; returns the buffer and
        the slice's shape. ``mapped``: a slice of many runs is gathered from a
        map of the file (the mmap backend's hazards) instead of read with
        ``preadv``, which copies the bytes between the runs too."""

class _TensorDict(TypedDict):
    shape: list[int]
    dtype: str
    data: bytearray

def serialize(tensor_dict: dict[str, TensorSpec], metadata: dict[str, str] | None = None) -> bytes:
    """Serializes tensors into the bytes of a safetensors file.

    Every ``TensorSpec``'s memory must stay alive until this returns.
    """

def serialize_file(
    tensor_dict: dict[str, TensorSpec],
    filename: str | os.PathLike[str],
    metadata: dict[str, str] | None = None,
    *,
    durable: bool = False,
) -> None:
    """Writes tensors to ``filename`` as a safetensors file, atomically. With
    ``durable=True`` the file is on disk (data and rename) before this returns.

    Every ``TensorSpec``'s memory must stay alive until this returns.
    """

def deserialize(bytes: bytes) -> list[tuple[str, _TensorDict]]:
    """Parses the bytes of a safetensors file into
    ``[(name, {"shape": [...], "dtype": "F32", "data": bytearray}), ...]``, in file order."""

def cli_main(argv: list[str]) -> int:
    """Runs the ``ironsafe`` command line ``argv`` (the program name first)
    with the GIL released; returns the exit status. Output goes straight to
    the process's stdout and stderr."""

class _ConversionReport(TypedDict):
    tensors: list[str]
    removed: dict[str, str]
    skipped: list[str]

def convert_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    key: str | None = None,
    strict: bool = False,
    verify: bool = True,
) -> _ConversionReport:
    """Converts the torch checkpoint ``src`` (zip or legacy ``torch.save``
    format) to the safetensors file ``dst``, without running pickle. Returns
    ``{"tensors": [...], "removed": {name: kept}, "skipped": [...]}``."""
