"""PyTorch tensors to and from safetensors: the equivalent of ``safetensors.torch``.

Saving hands each tensor's memory to the Rust writer as a ``TensorSpec``
(address and length, no copy); loading a file maps it privately, so CPU
tensors view the file without a copy (``backend="pread"`` reads each tensor
into memory of its own instead).

``save_model`` and ``load_model`` handle models whose parameters share
memory (tied weights), which plain ``save_file`` refuses: only one name per
shared storage is written, and the others are recorded in the metadata.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple, Union

import torch

from ironsafe import TensorSpec, _convert, deserialize, safe_open, serialize, serialize_file

# The public API. As in the reference, the package's ``TensorSpec``,
# ``safe_open``, ``serialize``, ... can be imported from here too.
__all__ = [
    "TensorSpec",
    "deserialize",
    "load",
    "load_file",
    "load_model",
    "safe_open",
    "save",
    "save_file",
    "save_model",
    "serialize",
    "serialize_file",
    "storage_ptr",
    "storage_size",
]

# File dtype code -> torch dtype, for every code this torch has a dtype for.
_TYPES: Dict[str, torch.dtype] = {
    code: getattr(torch, name) for code, name in _convert.TORCH_DTYPES.items() if hasattr(torch, name)
}

# torch dtype -> bytes per element (a ``float4_e2m1fn_x2`` element is one
# byte holding two values).
_SIZE: Dict[torch.dtype, int] = {dtype: torch.empty(0, dtype=dtype).element_size() for dtype in _TYPES.values()}

_SHARED_MEMORY = """
            Some tensors share memory, this will lead to duplicate memory on disk and potential differences when loading them again: {groups}.
            A potential way to correctly save your model is to use `save_model`.
            More information at https://huggingface.co/docs/safetensors/torch_shared_tensors
            """

_NO_NAME_TO_KEEP = (
    "Error while trying to find names to remove to save state dict, but found no suitable name to keep"
    " for saving amongst: {group}. None is covering the entire storage.Refusing to save/load the model"
    " since you could be storing much more memory than needed. Please refer to"
    " https://huggingface.co/docs/safetensors/torch_shared_tensors for more information. Or open an"
    " issue."
)

_SPARSE = (
    "You are trying to save a sparse tensors: `{names}` which this library does not support."
    " You can make it a dense tensor before saving with `.to_dense()` but be aware this might"
    " make a much larger file than needed."
)

_NON_CONTIGUOUS = (
    "You are trying to save a non contiguous tensor: `{name}` which is not allowed. It either means you"
    " are trying to save tensors which are reference of each other in which case it's recommended to save"
    " only the full tensors, and reslice at load time, or simply call `.contiguous()` on your tensor to"
    " pack it before saving."
)

_FORCE_CONTIGUOUS_HINT = " Or use save_model(..., force_contiguous=True), read the docs for potential caveats."

_BIG_ENDIAN = sys.byteorder == "big"


# --- shared storage -----------------------------------------------------------


def storage_ptr(tensor: torch.Tensor) -> int:
    """The address of the start of ``tensor``'s storage (not of the tensor
    itself, which may start further in); 0 for a tensor without data (meta)."""
    try:
        return tensor.untyped_storage().data_ptr()
    except AttributeError:  # torch < 2.0 has no untyped_storage
        pass
    except (NotImplementedError, RuntimeError):
        return 0
    try:
        return tensor.storage().data_ptr()
    except (NotImplementedError, RuntimeError):
        return 0


def storage_size(tensor: torch.Tensor) -> int:
    """The size in bytes of ``tensor``'s whole storage."""
    try:
        return tensor.untyped_storage().nbytes()
    except AttributeError:  # torch < 2.0
        pass
    except (NotImplementedError, RuntimeError):
        return tensor.nelement() * tensor.element_size()
    try:
        return tensor.storage().size() * tensor.element_size()
    except (NotImplementedError, RuntimeError):
        return tensor.nelement() * tensor.element_size()


def _end_ptr(tensor: torch.Tensor) -> int:
    """The address just past the last byte ``tensor`` uses: its data pointer
    for an empty tensor. Works for any strides, not only contiguous ones."""
    start = tensor.data_ptr()
    if tensor.nelement() == 0:
        return start
    last = sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride()))
    return start + (last + 1) * tensor.element_size()


def _getdtype(dtype_str: str) -> torch.dtype:
    """The torch dtype of a file dtype code such as ``"F32"``; ``KeyError``
    for a code this torch has no dtype for."""
    return _TYPES[dtype_str]


def _filter_shared_not_shared(tensors: List[Set[str]], state_dict: Dict[str, torch.Tensor]) -> List[Set[str]]:
    """Splits each group of names that share a storage into the groups whose
    bytes actually overlap: two tensors in disjoint parts of one storage are
    not shared. Groups of fewer than two names are kept as they are."""
    result: List[Set[str]] = []
    for group in tensors:
        if len(group) < 2:
            result.append(group)
            continue
        areas = sorted((state_dict[name].data_ptr(), _end_ptr(state_dict[name]), name) for name in group)
        current: Set[str] = set()
        reach = 0
        for start, stop, name in areas:
            if not current or start >= reach:
                current = {name}
                result.append(current)
                reach = stop
            else:
                current.add(name)
                reach = max(reach, stop)
    return result


def _find_shared_tensors(state_dict: Dict[str, torch.Tensor]) -> List[Set[str]]:
    """Groups the names of ``state_dict`` whose tensors overlap in memory.

    Every tensor with data appears in exactly one group (most groups have
    one name); meta tensors and tensors with an empty storage appear in none.
    Groups come in the order of their first name in ``state_dict``.
    """
    by_storage: Dict[Tuple[Any, int, int], Set[str]] = {}
    for name, tensor in state_dict.items():
        if tensor.device.type == "meta":
            continue
        pointer, size = storage_ptr(tensor), storage_size(tensor)
        if pointer == 0 or size == 0:
            continue
        # The device is part of the key: two devices can use the same address.
        by_storage.setdefault((tensor.device, pointer, size), set()).add(name)
    return _filter_shared_not_shared(list(by_storage.values()), state_dict)


def _is_complete(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` starts at its storage's start and covers all of its bytes."""
    return (
        tensor.data_ptr() == storage_ptr(tensor)
        and tensor.nelement() * tensor.element_size() == storage_size(tensor)
    )


def _remove_duplicate_names(
    state_dict: Dict[str, torch.Tensor],
    *,
    preferred_names: Optional[Iterable[str]] = None,
    discard_names: Optional[Iterable[str]] = None,
) -> Dict[str, List[str]]:
    """For each group of names sharing memory, picks the name to keep and
    returns ``{kept: [removed names, sorted]}``.

    The kept name covers its whole storage ("complete"); among the complete
    names it is the alphabetically first of those in ``preferred_names`` if
    any, else of those not in ``discard_names`` if any, else of all. A group
    without a complete name raises ``RuntimeError``.
    """
    preferred = set(preferred_names) if preferred_names is not None else set()
    discard = set(discard_names) if discard_names is not None else set()
    removed: Dict[str, List[str]] = defaultdict(list)
    for group in _find_shared_tensors(state_dict):
        complete = {name for name in group if _is_complete(state_dict[name])}
        if not complete:
            raise RuntimeError(_NO_NAME_TO_KEEP.format(group=group))
        keep = min((complete & preferred) or (complete - discard) or complete)
        for name in sorted(group):
            if name != keep:
                removed[keep].append(name)
    return removed


# --- saving -------------------------------------------------------------------


def _check_for_save(tensors: Any) -> None:
    """The checks made before anything is written, in the reference's order."""
    if not isinstance(tensors, dict):
        raise ValueError(f"Expected a dict of [str, torch.Tensor] but received {type(tensors)}")
    sparse = []
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"Key `{name}` is invalid, expected torch.Tensor but received {type(tensor)}")
        if tensor.layout != torch.strided:
            sparse.append(name)
    if sparse:
        raise ValueError(_SPARSE.format(names=sparse))
    shared = [group for group in _find_shared_tensors(tensors) if len(group) > 1]
    if shared:
        raise RuntimeError(_SHARED_MEMORY.format(groups=shared))


def _byteswapped(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of ``tensor`` with each value's bytes reversed (complex values
    component by component): little-endian <-> big-endian."""
    unit = tensor.element_size() // 2 if tensor.is_complex() else tensor.element_size()
    if unit == 1 or tensor.nelement() == 0:
        return tensor
    raw = tensor.reshape(-1).view(torch.uint8).reshape(-1, unit).flip(-1).contiguous()
    return raw.reshape(-1).view(tensor.dtype).reshape(tensor.shape)


@_convert.gc_paused()
def _to_specs(tensors: Any, keep_alive: List[torch.Tensor]) -> Dict[str, TensorSpec]:
    """Checks ``tensors`` and describes each as a ``TensorSpec`` over its own
    memory. Tensors whose memory is described (CPU copies, resolved views)
    are appended to ``keep_alive``: the caller holds it until written."""
    _check_for_save(tensors)
    specs = {}
    for name, tensor in tensors.items():
        if not tensor.is_contiguous():
            raise ValueError(_NON_CONTIGUOUS.format(name=name))
        if tensor.device.type != "cpu":
            tensor = tensor.to("cpu")
        # Lazily conjugated or negated views hold the unresolved values.
        tensor = tensor.resolve_conj().resolve_neg()
        if _BIG_ENDIAN:
            tensor = _byteswapped(tensor)
        keep_alive.append(tensor)
        specs[name] = TensorSpec(
            dtype=str(tensor.dtype).rpartition(".")[2],
            shape=list(tensor.shape),
            data_ptr=tensor.data_ptr(),
            data_len=tensor.nelement() * tensor.element_size(),
        )
    return specs


def save(tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes a dict of tensors into the bytes of a safetensors file.

    Args:
        tensors: name -> tensor; every tensor dense and contiguous, and no two
            sharing memory (see ``save_model`` for models with tied weights).
            Tensors on other devices are copied to the CPU first.
        metadata: optional string -> string information stored in the header.

    Returns:
        The bytes of the file.

    Example::

        from ironsafe.torch import save
        data = save({"embedding": torch.zeros((512, 1024))})
    """
    keep_alive: List[torch.Tensor] = []
    specs = _to_specs(tensors, keep_alive)
    return serialize(specs, metadata=metadata)


def save_file(
    tensors: Dict[str, torch.Tensor],
    filename: Union[str, os.PathLike],
    metadata: Optional[Dict[str, str]] = None,
    *,
    durable: bool = False,
) -> None:
    """Writes a dict of tensors to ``filename`` as a safetensors file.

    The tensors' memory is read while the file is written: do not modify
    them from another thread meanwhile.

    Args:
        tensors: name -> tensor; every tensor dense and contiguous, and no two
            sharing memory (see ``save_model`` for models with tied weights).
        filename: where to write.
        metadata: optional string -> string information stored in the header.
        durable: make the file durable before returning: its data goes
            to disk while it is written (on Linux, with direct I/O, past the
            page cache: a load right after reads from disk), and the rename
            is synced too. Off by default, as in the reference.

    Example::

        from ironsafe.torch import save_file
        save_file({"embedding": torch.zeros((512, 1024))}, "model.safetensors")
    """
    keep_alive: List[torch.Tensor] = []
    specs = _to_specs(tensors, keep_alive)
    serialize_file(specs, filename, metadata=metadata, durable=durable)


# --- loading ------------------------------------------------------------------


def load(data: bytes) -> Dict[str, torch.Tensor]:
    """Parses the bytes of a safetensors file into a dict of CPU tensors, in
    file order.

    Example::

        from ironsafe.torch import load
        with open("model.safetensors", "rb") as f:
            tensors = load(f.read())
    """
    result = {}
    for name, entry in deserialize(data):
        raw = entry["data"]
        tensor = _convert.torch_tensor(raw, 0, len(raw), entry["dtype"], entry["shape"])
        if _BIG_ENDIAN:
            tensor = _byteswapped(tensor)
        result[name] = tensor
    return result


def load_file(
    filename: Union[str, os.PathLike],
    device: Union[str, int] = "cpu",
    *,
    backend: str = "mmap",
) -> Dict[str, torch.Tensor]:
    """Loads every tensor of a safetensors file, in file order.

    Args:
        filename: the file to read.
        device: where the tensors go (``"cpu"``, ``"cuda"``, ``"cuda:1"``, an
            int, ...). To a CUDA device, the file is read in parallel into a
            small ring of pinned buffers (128 MiB) and copied to the device
            while the next part is read; each tensor gets device memory of
            its own, complete when this returns.
        backend: ``"mmap"`` (default): CPU tensors view a private
            (copy-on-write) map of the file, no copy; ``"pread"``: each tensor
            is read into memory of its own. No difference for CUDA.

    Example::

        from ironsafe.torch import load_file
        tensors = load_file("model.safetensors")
    """
    with safe_open(filename, framework="pt", device=device, backend=backend) as file:
        return file.get_tensors()


# --- models -------------------------------------------------------------------


def save_model(
    model: torch.nn.Module,
    filename: Union[str, os.PathLike],
    metadata: Optional[Dict[str, str]] = None,
    force_contiguous: bool = True,
) -> None:
    """Saves ``model``'s state dict to ``filename``, handling shared tensors.

    Of each group of parameters or buffers that share memory (tied weights)
    only one name is written; each dropped name is recorded in the metadata
    as ``{dropped: kept}`` unless ``metadata`` already has that key.
    ``load_model`` restores such files.

    Args:
        model: the model to save.
        filename: where to write.
        metadata: optional string -> string information for the header (the
            dict passed in is not modified).
        force_contiguous: save non-contiguous tensors as contiguous copies
            (same values; only the memory layout of the saved copy changes)
            instead of failing.
    """
    state_dict = model.state_dict()
    removed = _remove_duplicate_names(state_dict)
    if removed:
        metadata = {} if metadata is None else dict(metadata)  # a copy: the caller's stays as it is
        for kept, names in removed.items():
            for name in names:
                metadata.setdefault(name, kept)  # never overwrite the caller's keys
                del state_dict[name]
    if force_contiguous:
        state_dict = {name: tensor.contiguous() for name, tensor in state_dict.items()}
    try:
        save_file(state_dict, filename, metadata=metadata)
    except ValueError as err:
        raise ValueError(f"{err}{_FORCE_CONTIGUOUS_HINT}") from err


def load_model(
    model: torch.nn.Module,
    filename: Union[str, os.PathLike],
    strict: bool = True,
    device: Union[str, int] = "cpu",
    *,
    backend: str = "mmap",
) -> Tuple[Set[str], List[str]]:
    """Loads a safetensors file into ``model``, handling shared tensors.

    Names that share memory in the model are filled through the one name the
    file holds for them (as ``save_model`` writes it), so they count as
    neither missing nor unexpected.

    Args:
        model: the model to load into.
        filename: the file to read.
        strict: raise ``RuntimeError`` if a model name is missing from the
            file or a file name is unexpected; when false, just return them.
        device: where the loaded tensors go before being copied in.
        backend: ``"mmap"`` (default) or ``"pread"``, as for ``load_file``.

    Returns:
        ``(missing, unexpected)``: the set of model names the file did not
        fill, and the list of file names the model did not use.
    """
    state_dict = load_file(filename, device=device, backend=backend)
    removed = _remove_duplicate_names(model.state_dict(), preferred_names=state_dict.keys())
    missing_keys, unexpected_keys = model.load_state_dict(state_dict, strict=False)
    missing = set(missing_keys)
    unexpected = list(unexpected_keys)
    for names in removed.values():
        for name in names:
            if name in missing:
                missing.remove(name)
            else:
                unexpected.append(name)
    if strict and (missing or unexpected):
        error = f"Error(s) in loading state_dict for {model.__class__.__name__}:"
        if missing:
            error += "\n    Missing key(s) in state_dict: " + ", ".join(f'"{name}"' for name in sorted(missing))
        if unexpected:
            error += "\n    Unexpected key(s) in state_dict: " + ", ".join(
                f'"{name}"' for name in sorted(unexpected)
            )
        raise RuntimeError(error)
    return missing, unexpected
