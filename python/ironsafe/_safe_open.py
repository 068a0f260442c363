"""``safe_open``: lazy, per-tensor access to a safetensors file."""

from __future__ import annotations

import mmap
import os
import re
from typing import Any, Union

from ironsafe import _convert, _cuda, _indexing
from ironsafe._ironsafe import MAP_NORESERVE, Reader, SafetensorError

# Accepted framework names -> the name the reference reports them by.
_FRAMEWORKS = {
    "pt": "pytorch",
    "torch": "pytorch",
    "pytorch": "pytorch",
    "np": "numpy",
    "numpy": "numpy",
    "tf": "tensorflow",
    "tensorflow": "tensorflow",
    "jax": "flax",
    "flax": "flax",
    "mlx": "mlx",
    "paddle": "paddle",
}
# Frameworks that can place tensors on an accelerator.
_DEVICE_FRAMEWORKS = ("pytorch", "paddle")
_ACCELERATORS = ("cuda", "npu", "xpu", "xla", "mlu", "musa", "hpu")
_BACKENDS = ("mmap", "pread")

# How files are mapped: private and writable (torch needs a writable buffer;
# writes go to copies, never to the file). Without MAP_NORESERVE, Linux
# reserves memory for a copy of every page up front, so that mapping a file
# larger than memory and swap fails with ENOMEM, as torch's own maps do.
if hasattr(mmap, "MAP_PRIVATE"):
    _COPY_ON_WRITE: dict[str, int] = {
        "flags": mmap.MAP_PRIVATE | MAP_NORESERVE,
        "prot": mmap.PROT_READ | mmap.PROT_WRITE,
    }
else:  # Windows
    _COPY_ON_WRITE = {"access": mmap.ACCESS_COPY}

Device = Union[str, int, None]


def _framework(framework: Any) -> str:
    name = _FRAMEWORKS.get(framework) if isinstance(framework, str) else None
    if name is None:
        raise SafetensorError(f"framework {framework} is invalid")
    return name


def _device(device: Any, framework: str) -> Device:
    """Validates a device the way the reference does; returns it normalized."""
    if device is None:
        return "cpu"
    if isinstance(device, int) and not isinstance(device, bool):
        if not 0 <= device < 2**64:
            raise SafetensorError(f"device {device} is invalid")
        normalized: Device = device
    elif isinstance(device, str):
        normalized = _device_name(device)
    else:  # as the reference, for a torch.device too (bools: it takes them as 0 and 1)
        raise SafetensorError(f"device {device!r} is invalid")
    if normalized != "cpu" and framework not in _DEVICE_FRAMEWORKS:
        raise SafetensorError(f"Device {normalized} is not supported for framework {framework}")
    return normalized


def _device_name(device: str) -> str:
    if device == "cpu":
        return device
    if device in ("mps", "mps:0"):
        return device
    if device.startswith("mps:"):
        raise SafetensorError(f"device {device} is invalid: only mps or mps:0 is supported")
    kind, colon, index = device.partition(":")
    if kind in _ACCELERATORS:
        if not colon:
            return f"{kind}:0"
        if re.fullmatch(r"[0-9]+", index):
            return device
        raise ValueError(f"device {device} is invalid: {index!r} is not a device index")
    raise SafetensorError(f"device {device} is invalid")


def _backend(backend: Any) -> str:
    if backend not in _BACKENDS:
        raise SafetensorError(f'backend "{backend}" is invalid (expected one of: "mmap", "pread")')
    return str(backend)


class safe_open:  # noqa: N801 - the reference's name
    """Opens a safetensors file lazily: the header is read and validated, and
    tensors are read only when asked for.

    Args:
        filename: the file (``str`` or ``os.PathLike``).
        framework: ``"pt"``, ``"np"``, ``"tf"``, ``"flax"``, ``"mlx"`` or
            ``"paddle"`` (and their aliases), the type of the tensors returned.
        device: where tensors go: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, an int
            N, ``"mps"``, ... (non-CPU devices for torch and paddle only).
            torch tensors for a CUDA device are read through pinned staging
            buffers straight to it (see ``ironsafe.torch.load_file``).
        backend: ``"mmap"`` (default): torch CPU tensors view a private,
            copy-on-write map of the file, no copy; ``"pread"``: torch tensors
            are read into memory of their own, in parallel, with the GIL
            released. Other frameworks always get memory of their own, as in
            the reference.

    Usable as a context manager; once closed, every method raises
    ``SafetensorError("File is closed")``.
    """

    def __init__(self, filename: Any, framework: str, device: Device = "cpu", *, backend: str = "mmap") -> None:
        self._framework = _framework(framework)
        self._device = _device(device, self._framework)
        self._backend = _backend(backend)
        self._reader: Reader | None = Reader(os.fsdecode(os.fspath(filename)))
        self._map: mmap.mmap | None = None

    def __enter__(self) -> safe_open:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._reader = None
        # Tensors already handed out keep the map alive through their buffers.
        self._map = None

    def _open(self) -> Reader:
        if self._reader is None:
            raise SafetensorError("File is closed")
        return self._reader

    def keys(self) -> list[str]:
        """The tensor names, sorted."""
        return self._open().keys()

    def offset_keys(self) -> list[str]:
        """The tensor names in the order of their data in the file."""
        return self._open().offset_keys()

    def metadata(self) -> dict[str, str] | None:
        """The file's ``__metadata__``, or ``None``."""
        return self._open().metadata()

    def get_tensor(self, name: str) -> Any:
        """The tensor called ``name``, in the framework and on the device asked for."""
        info = (name, *self._open().info(name))
        if self._to_cuda():
            return _cuda.load(self._open(), [info], self._device)[name]
        return self._place(self._cpu_tensors([info])[name])

    def get_tensors(self) -> dict[str, Any]:
        """Every tensor, in file order (read in one parallel batch where the
        tensors are owned copies, or straight to a CUDA device)."""
        if self._to_cuda():
            with _convert.gc_paused():
                return _cuda.load(self._open(), self._open().infos(), self._device)
        if self._views():
            # Every tensor is wanted: a cold file is read into the page cache
            # first, in parallel, rather than one fault at a time through the map.
            self._open().fill_page_cache()
        with _convert.gc_paused():
            tensors = self._cpu_tensors(self._open().infos())
        if self._framework == "pytorch" and self._device == "cpu":
            return tensors
        return {name: self._place(tensor) for name, tensor in tensors.items()}

    def get_slice(self, name: str) -> SafeSlice:
        """A lazy view of ``name``: its shape and dtype, and ``[key]`` to read part of it."""
        info = self._open().info(name)  # fails early for an unknown name
        if self._views() and self._map is None:
            self._mapping()  # made now, so that the slice shares it
        # The slice holds the open file itself: like the reference's, it can
        # still be read after this handle is closed. A tensor-parallel rank
        # slices every tensor, so the handle is copied the cheap way.
        handle = safe_open.__new__(safe_open)
        handle.__dict__.update(self.__dict__)
        return SafeSlice(handle, name, info)

    def _to_cuda(self) -> bool:
        """Whether tensors go to a CUDA device, through pinned staging
        buffers rather than by way of CPU tensors (see ``_cuda``)."""
        return self._framework == "pytorch" and _cuda.is_cuda(self._device)

    def _views(self) -> bool:
        """Whether tensors view the map rather than own their bytes: torch with
        the mmap backend, as in the reference. Every other framework (and
        pread) gets owned copies, as the reference's do."""
        return self._framework == "pytorch" and self._backend == "mmap"

    def _cpu_tensors(self, infos: list[_convert.Info], *, whole: bool = True) -> dict[str, Any]:
        """The tensors of ``infos`` on the CPU: views of the map, or owned
        copies filled by one parallel read. ``whole``: all of each tensor is
        wanted (not just a slice), so its pages are worth reading ahead."""
        if self._views():
            mapping = self._mapping()
            if whole:
                _prefetch(mapping, infos)
            return _convert.torch_views(mapping, infos)
        return _convert.read_owned(self._open(), infos, torch=self._framework == "pytorch")

    def _mapping(self) -> mmap.mmap:
        """A private (copy-on-write) map of the open file, made once. Checks
        first that the file has not changed since it was opened: touching a
        map of a file cut short since would fault (SIGBUS) on the lost pages."""
        self._open().check_unchanged()
        if self._map is None:
            reader = self._open()
            fileno = getattr(reader, "fileno", None)
            if fileno is not None:
                self._map = mmap.mmap(fileno(), reader.file_len, **_COPY_ON_WRITE)
            else:  # no descriptor to share (Windows): map the path
                with open(reader.path, "rb") as file:
                    self._map = mmap.mmap(file.fileno(), reader.file_len, **_COPY_ON_WRITE)
        return self._map

    def _place(self, tensor: Any) -> Any:
        """Converts a CPU tensor (torch or numpy) to the framework and device."""
        if self._framework == "pytorch":
            return tensor if self._device == "cpu" else tensor.to(self._device)
        return _convert.from_numpy(self._framework, tensor, self._device)

    def _read_slice(self, name: str, info: tuple[str, list[int], int, int], key: Any) -> Any:
        reader = self._open()
        code, shape, _, _ = info
        # torch indexes a float4 tensor in packed elements (two values each),
        # which byte ranges of the file cannot always express: read it whole.
        if self._views() or (code == "F4" and self._framework == "pytorch"):
            # The framework's own indexing of the whole tensor: a view of the
            # map (no copy), or, for float4 read with pread, the tensor read whole.
            full = self._cpu_tensors([(name, *info)], whole=False)[name]
            if not _indexing.cannot_fail(key, full.dim()):
                try:
                    _indexing.normalize(key, list(full.shape))  # the same errors on every path
                except _indexing.SliceTypeError:
                    # Lists, index tensors and masks: the reference hands torch +
                    # mmap keys to torch's own indexing, and so do we.
                    if self._framework != "pytorch":
                        raise
            part = full[key]
            if self._framework != "pytorch":
                import numpy as np

                part = np.asarray(part)
            return self._place(part)
        plan = _indexing.normalize(key, shape)
        if plan.flips and self._framework == "pytorch":
            raise ValueError("step must be greater than zero")  # as torch indexing says
        part = _convert.read_slice(
            reader, name, plan.indices, code, torch=self._framework == "pytorch", mapped=self._backend == "mmap"
        )
        if self._framework == "pytorch":
            for axis in plan.new_axes:
                part = part.unsqueeze(axis)
        else:
            import numpy as np

            if plan.flips:
                part = np.flip(part, axis=tuple(plan.flips))
            for axis in plan.new_axes:
                part = np.expand_dims(part, axis)
        return self._place(part)


def _prefetch(mapping: mmap.mmap, infos: list[_convert.Info]) -> None:
    """Asks the kernel to read the tensors' pages ahead, all at once (on a cold
    file, deep queues instead of one readahead window after another)."""
    if not infos or not hasattr(mmap, "MADV_WILLNEED"):
        return
    start = min(begin for _, _, _, begin, _ in infos) // mmap.PAGESIZE * mmap.PAGESIZE
    end = max(end for _, _, _, _, end in infos)
    if end > start:
        mapping.madvise(mmap.MADV_WILLNEED, start, end - start)


class SafeSlice:
    """A tensor not yet read: its shape and dtype, and ``[key]`` to read the
    part that ``key`` selects (ints, slices with steps, ``...``, ``None``), with
    the result equal to indexing the whole tensor."""

    def __init__(self, file: safe_open, name: str, info: tuple[str, list[int], int, int]) -> None:
        self._file = file
        self._name = name
        # (dtype, shape, begin, end): the header is read once, so this never changes.
        self._info = info

    def get_shape(self) -> list[int]:
        """The shape, as the header records it."""
        return list(self._info[1])

    def get_dtype(self) -> str:
        """The dtype code, e.g. ``"F32"``."""
        return self._info[0]

    def __getitem__(self, key: Any) -> Any:
        return self._file._read_slice(self._name, self._info, key)
