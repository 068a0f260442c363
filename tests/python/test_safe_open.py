"""`safe_open`: argument validation, the file's names and metadata, closed
handles, slicing, zero-copy and owned loads, a file replaced while open,
and concurrent use. Compared with the reference `safetensors` 0.8.0 where
the contract (compat.md) says ironsafe behaves like it."""

from __future__ import annotations

import json
import mmap
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
import safetensors as reference
import torch

import ironsafe
import ironsafe.numpy
import ironsafe.torch
from oracle import outcome
from ironsafe import SafetensorError, safe_open

WriteFile = Callable[..., Path]

BACKENDS = ["mmap", "pread"]


@pytest.fixture
def small_file(write_file: WriteFile) -> Path:
    """Three tensors whose file order (by dtype size, then name) is not their
    name order, and metadata."""
    return write_file(
        {
            "a": np.arange(6, dtype=np.uint8).reshape(2, 3),
            "b": np.linspace(0, 1, 4, dtype=np.float64),
            "c": np.arange(-3, 3, dtype=np.int32),
        },
        metadata={"format": "pt", "note": "é"},
    )


# --- arguments ---------------------------------------------------------------------

FRAMEWORKS = ["pt", "torch", "pytorch", "np", "numpy", "tf", "tensorflow", "jax", "flax", "mlx", "paddle"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_framework_name_opens(framework: str, small_file: Path) -> None:
    with safe_open(small_file, framework) as f:
        assert f.keys() == ["a", "b", "c"]


@pytest.mark.parametrize("framework", ["foo", "PT", "", "torch ", "numpy.ndarray"])
def test_invalid_framework_like_the_reference(framework: str, small_file: Path) -> None:
    ours = outcome(lambda: safe_open(small_file, framework))
    assert ours == ("SafetensorError", f"framework {framework} is invalid")
    assert ours == outcome(lambda: reference.safe_open(small_file, framework))


@pytest.mark.parametrize("framework", [None, 1])
def test_framework_of_another_type(framework: Any, small_file: Path) -> None:
    """Documented difference: the contract's SafetensorError for any other
    framework; the reference's argument conversion raises TypeError."""
    assert outcome(lambda: safe_open(small_file, framework)) == ("SafetensorError", f"framework {framework} is invalid")
    assert outcome(lambda: reference.safe_open(small_file, framework))[0] == "TypeError"


DEVICES: List[Tuple[str, Any]] = [
    ("pt", "cpu"), ("pt", None), ("pt", 0), ("pt", 3), ("pt", "cuda"), ("pt", "cuda:1"), ("pt", "cuda:01"),
    ("pt", "mps"), ("pt", "mps:0"), ("pt", "mps:1"), ("pt", "npu"), ("pt", "xpu:3"), ("pt", "xla"),
    ("pt", "mlu:0"), ("pt", "musa"), ("pt", "hpu:2"), ("paddle", "cuda"), ("paddle", "cpu"),
    ("pt", "tpu"), ("pt", "gpu"), ("pt", "meta"), ("pt", ""), ("pt", "CPU"), ("pt", "cpu:0"), ("np", "cpu:0"),
    ("pt", -1), ("pt", 2**70), ("pt", 1.5), ("pt", b"cpu"), ("pt", [0]), ("pt", torch.device("cpu")),
    ("np", "cuda"), ("np", 0), ("np", "mps"), ("numpy", "cuda:2"), ("tf", "cuda:0"), ("jax", "cuda"),
    ("flax", "xpu"), ("mlx", "mps"), ("np", "tpu"), ("np", None), ("tf", "cpu"),
]


@pytest.mark.parametrize("framework, device", DEVICES)
def test_devices_like_the_reference(framework: str, device: Any, small_file: Path) -> None:
    """Opening validates the device (and never touches it)."""
    ours = outcome(lambda: safe_open(small_file, framework, device))
    assert ours[0] in ("ok", "SafetensorError")
    if framework == "paddle":
        assert ours == ("ok", "")  # the reference would import paddle here
    else:
        assert ours == outcome(lambda: reference.safe_open(small_file, framework, device))


def test_device_messages(small_file: Path) -> None:
    def message(framework: str, device: Any) -> str:
        with pytest.raises(SafetensorError) as info:
            safe_open(small_file, framework, device)
        return str(info.value)

    assert message("pt", "mps:1") == "device mps:1 is invalid: only mps or mps:0 is supported"
    assert message("pt", "tpu") == "device tpu is invalid"
    assert message("pt", -1) == "device -1 is invalid"
    assert message("np", "cuda") == "Device cuda:0 is not supported for framework numpy"
    assert message("tf", "cuda:3") == "Device cuda:3 is not supported for framework tensorflow"
    assert message("jax", 1) == "Device 1 is not supported for framework flax"


@pytest.mark.parametrize("device", ["cuda:x", "cuda:", "cuda:-1", "npu:1.5"])
def test_bad_device_index(device: str, small_file: Path) -> None:
    """Both raise ValueError; the reference's message is Rust's integer parse
    error, ours names the device."""
    assert outcome(lambda: reference.safe_open(small_file, "pt", device))[0] == "ValueError"
    with pytest.raises(ValueError, match=f"device {device} is invalid"):
        safe_open(small_file, "pt", device)


@pytest.mark.parametrize("device", [True, False])
def test_bool_device(device: bool, small_file: Path) -> None:
    """Documented difference: the reference takes a bool as device 0 or 1."""
    reference.safe_open(small_file, "pt", device)
    with pytest.raises(SafetensorError, match=f"device {device} is invalid"):
        safe_open(small_file, "pt", device)


@pytest.mark.parametrize("backend", ["foo", "MMAP", "", "read"])
def test_invalid_backend_like_the_reference(backend: str, small_file: Path) -> None:
    ours = outcome(lambda: safe_open(small_file, "pt", backend=backend))
    assert ours == ("SafetensorError", f'backend "{backend}" is invalid (expected one of: "mmap", "pread")')
    assert ours == outcome(lambda: reference.safe_open(small_file, "pt", backend=backend))


def test_backend_is_keyword_only(small_file: Path) -> None:
    for lib in (ironsafe, reference):
        with pytest.raises(TypeError):
            lib.safe_open(small_file, "pt", "cpu", "pread")


# --- the file's names, metadata, tensors ---------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("framework", ["pt", "np"])
def test_names_metadata_and_tensors_like_the_reference(framework: str, backend: str, small_file: Path) -> None:
    with safe_open(small_file, framework, backend=backend) as ours, reference.safe_open(
        small_file, framework, backend=backend
    ) as theirs:
        assert ours.keys() == theirs.keys() == ["a", "b", "c"]
        assert ours.offset_keys() == theirs.offset_keys() == ["b", "c", "a"]
        assert ours.metadata() == theirs.metadata() == {"format": "pt", "note": "é"}
        tensors = ours.get_tensors()
        assert list(tensors) == ["b", "c", "a"]
        for name, value in theirs.get_tensors().items():
            assert type(tensors[name]) is type(value)
            assert tensors[name].dtype == value.dtype
            assert tensors[name].shape == value.shape
            assert (tensors[name] == value).all()
            assert (ours.get_tensor(name) == value).all()
            ours_slice, theirs_slice = ours.get_slice(name), theirs.get_slice(name)
            assert ours_slice.get_shape() == theirs_slice.get_shape()
            assert ours_slice.get_dtype() == theirs_slice.get_dtype()


def test_no_metadata_and_no_tensors(write_file: WriteFile) -> None:
    path = write_file({})
    for lib in (ironsafe, reference):
        with lib.safe_open(path, "np") as f:
            assert f.metadata() is None
            assert f.keys() == f.offset_keys() == []
            assert f.get_tensors() == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_tensor(backend: str, small_file: Path) -> None:
    with safe_open(small_file, "pt", backend=backend) as f:
        for call in (f.get_tensor, f.get_slice):
            with pytest.raises(SafetensorError) as info:
                call("nope")
            assert str(info.value) == "File does not contain tensor nope"


# --- closed handles -------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_method_fails_once_closed(backend: str, small_file: Path) -> None:
    for lib in (ironsafe, reference):
        with lib.safe_open(small_file, "pt", backend=backend) as f:
            early = f.get_slice("b")
        calls: Dict[str, Callable[[], Any]] = {
            "keys": f.keys,
            "offset_keys": f.offset_keys,
            "metadata": f.metadata,
            "get_tensor": lambda: f.get_tensor("a"),
            "get_tensors": f.get_tensors,
            "get_slice": lambda: f.get_slice("a"),
        }
        for name, call in calls.items():
            assert outcome(call) == ("SafetensorError", "File is closed"), (lib.__name__, name)
        # A slice taken while open still reads (the reference's does too).
        assert early.get_shape() == [4]
        assert early.get_dtype() == "F64"
        assert early[1:3].tolist() == pytest.approx([1 / 3, 2 / 3])
        f.__exit__(None, None, None)  # closing twice is fine


# --- file names -------------------------------------------------------------------------


def test_missing_file_like_the_reference(tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    ours = outcome(lambda: safe_open(missing, "pt"))
    assert ours == ("FileNotFoundError", f"No such file or directory: {missing}")
    assert ours == outcome(lambda: reference.safe_open(str(missing), "pt"))


def test_directory_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        reference.safe_open(str(tmp_path), "pt")
    with pytest.raises(IsADirectoryError):
        safe_open(tmp_path, "pt")


class CustomPath(os.PathLike):  # type: ignore[type-arg]
    def __init__(self, path: Any) -> None:
        self.path = path

    def __fspath__(self) -> Any:
        return self.path


@pytest.mark.parametrize(
    "convert",
    [str, Path, lambda p: CustomPath(str(p)), os.fsencode, lambda p: CustomPath(os.fsencode(p))],
    ids=["str", "Path", "PathLike-str", "bytes", "PathLike-bytes"],
)
def test_filename_types(convert: Callable[[Path], Any], small_file: Path) -> None:
    """str and os.PathLike, like the reference; bytes too (the reference
    refuses bytes with a TypeError)."""
    with safe_open(convert(small_file), "np") as f:
        assert f.keys() == ["a", "b", "c"]
    with pytest.raises(FileNotFoundError):
        safe_open(convert(small_file.with_name("missing")), "np")


def test_non_ascii_filename(write_file: WriteFile) -> None:
    path = write_file({"x": np.ones(2, dtype=np.float32)}, name="mödel ✓.safetensors")
    with safe_open(path, "np") as f:
        assert f.get_tensor("x").tolist() == [1.0, 1.0]


# --- slicing ----------------------------------------------------------------------------


def random_key(rng: np.random.Generator, shape: Tuple[int, ...]) -> Any:
    """A random basic-indexing key for `shape`: ints (negative too), slices
    (negative or out-of-range bounds, positive steps), `...` and `None`."""
    consumed = int(rng.integers(0, len(shape) + 1))
    ellipsis = len(shape) > 0 and rng.random() < 0.3
    items: List[Any] = []
    dims = list(range(consumed))
    split = -1
    if ellipsis:  # the ellipsis stands for the dimensions not indexed
        split = int(rng.integers(0, consumed + 1))
        dims = list(range(split)) + list(range(len(shape) - (consumed - split), len(shape)))
    for position, dim in enumerate(dims):
        if ellipsis and position == split:
            items.append(Ellipsis)
        items.append(random_item(rng, shape[dim]))
    if ellipsis and split == consumed:
        items.append(Ellipsis)
    for _ in range(int(rng.integers(0, 3)) if rng.random() < 0.3 else 0):
        items.insert(int(rng.integers(0, len(items) + 1)), None)
    if len(items) == 1 and rng.random() < 0.5:
        return items[0]
    return tuple(items)


def random_item(rng: np.random.Generator, size: int) -> Any:
    if size > 0 and rng.random() < 0.35:
        return int(rng.integers(-size, size))

    def bound() -> Any:
        return None if rng.random() < 0.3 else int(rng.integers(-size - 3, size + 4))

    step = [None, 1, 2, 3][int(rng.integers(0, 4))]
    return slice(bound(), bound(), step)


_SEED = torch.Generator().manual_seed(0)
TENSORS = {
    "f32": torch.randn(6, 5, 4, generator=_SEED),
    "i64": torch.arange(-3, 4, dtype=torch.int64),
    "bf16": torch.randn(3, 7, generator=_SEED).to(torch.bfloat16),
    "bool": torch.rand(4, 3, generator=_SEED) > 0.5,
    "empty": torch.zeros(4, 0, 3, dtype=torch.float16),
    "scalar": torch.tensor(2.5, dtype=torch.float64),
    "u8": torch.arange(60, dtype=torch.uint8).reshape(3, 4, 5),
}


@pytest.fixture(scope="module")
def tensors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slices") / "tensors.safetensors"
    kept = {name: value.contiguous() for name, value in TENSORS.items()}
    specs = {
        name: ironsafe.TensorSpec(
            dtype=str(value.dtype).split(".")[1],
            shape=list(value.shape),
            data_ptr=value.data_ptr(),
            data_len=value.numel() * value.element_size(),
        )
        for name, value in kept.items()
    }
    ironsafe.serialize_file(specs, path)
    return path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(TENSORS))
def test_torch_slices_equal_indexing_the_whole_tensor(name: str, backend: str, tensors_file: Path) -> None:
    rng = np.random.default_rng(sum(map(ord, name + backend)))
    full = TENSORS[name]
    with safe_open(tensors_file, "pt", backend=backend) as f:
        part = f.get_slice(name)
        assert part.get_shape() == list(full.shape)
        for _ in range(60):
            key = random_key(rng, tuple(full.shape))
            expected = full[key]
            got = part[key]
            assert got.dtype == expected.dtype, key
            assert got.shape == expected.shape, key
            assert torch.equal(got, expected), key


def test_keys_let_through_unchecked_are_ones_no_indexing_refuses() -> None:
    # Views skip normalizing keys of plain slices (a tensor-parallel rank's
    # every call): each such key must be one normalize accepts.
    from ironsafe import _indexing

    rng = np.random.default_rng(7)
    for _ in range(2000):
        shape = [int(n) for n in rng.integers(0, 6, int(rng.integers(0, 4)))]
        key = random_key(rng, tuple(shape))
        if _indexing.cannot_fail(key, len(shape)):
            _indexing.normalize(key, shape)
    assert _indexing.cannot_fail((slice(None, 3), slice(-9, None)), 2)
    assert _indexing.cannot_fail(slice(1, 2), 1)
    for refused in [(slice(0, 1),) * 3, (0, slice(None)), slice(0, 4, 2), (Ellipsis,), None, slice(True, 2), slice(0, 1.5)]:
        assert not _indexing.cannot_fail(refused, 2), refused


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["f32", "i64", "empty", "scalar", "u8"])
def test_numpy_slices_equal_indexing_the_whole_array(name: str, backend: str, tensors_file: Path) -> None:
    """numpy slices take negative steps too."""
    rng = np.random.default_rng(sum(map(ord, name + backend)) + 1)
    full = TENSORS[name].numpy()
    with safe_open(tensors_file, "np", backend=backend) as f:
        part = f.get_slice(name)
        for _ in range(60):
            key = random_key(rng, full.shape)
            if isinstance(key, slice) and rng.random() < 0.5:
                key = slice(key.stop, key.start, -(key.step or 1))
            expected = full[key]
            got = part[key]
            assert isinstance(got, np.ndarray), key
            assert got.dtype == expected.dtype, key
            assert got.shape == expected.shape, key
            assert np.array_equal(got, expected), key


def test_float4_slices_index_the_packed_tensor(write_file: WriteFile) -> None:
    """torch's float4_e2m1fn_x2 holds two values per element: a slice indexes
    the packed tensor, as indexing the whole tensor does, on both backends."""
    packed = np.arange(12, dtype=np.uint8)
    path = write_file({})
    spec = ironsafe.TensorSpec(dtype="float4_e2m1fn_x2", shape=[3, 4], data_ptr=packed.ctypes.data, data_len=12)
    ironsafe.serialize_file({"f4": spec}, path)
    for backend in BACKENDS:
        with safe_open(path, "pt", backend=backend) as f:
            full = f.get_tensor("f4")
            assert full.dtype == torch.float4_e2m1fn_x2
            assert f.get_slice("f4").get_shape() == [3, 8]
            for key in [(slice(None), slice(1, 3)), 1, (slice(None), 2), (slice(0, 3, 2), slice(None, None, 3))]:
                got = f.get_slice("f4")[key]
                assert got.view(torch.uint8).tolist() == full[key].view(torch.uint8).tolist(), key


@pytest.mark.parametrize(
    "key",
    [10, -11, (0, 0, 0, 0), (slice(None), 5), (0, -6), (..., 0, 0, 0, 0), (None, 6)],
)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("framework", ["pt", "np"])
def test_slice_index_errors(key: Any, backend: str, framework: str, tensors_file: Path) -> None:
    """Out-of-range positions and too many indices: IndexError, as indexing
    raises, and SafetensorError, as the reference raises."""
    with safe_open(tensors_file, framework, backend=backend) as f:
        part = f.get_slice("f32")
        shape = part.get_shape()
        assert shape == [6, 5, 4]
        with pytest.raises(IndexError) as info:
            part[key]
        assert isinstance(info.value, SafetensorError)
        with pytest.raises(IndexError):
            TENSORS["f32"][key]


@pytest.mark.parametrize("backend", BACKENDS)
def test_slice_errors_without_reading(backend: str, tensors_file: Path) -> None:
    with safe_open(tensors_file, "np", backend=backend) as f:
        with pytest.raises(IndexError):
            f.get_slice("f32")[..., ...]
        with pytest.raises(TypeError) as info:
            f.get_slice("f32")[1.5]
        assert isinstance(info.value, SafetensorError)


def test_torch_mmap_slices_take_torch_indexing(tensors_file: Path) -> None:
    """The reference hands torch + mmap keys to torch: lists, index tensors
    and masks work there, and here."""
    full = TENSORS["f32"]
    keys = [[0, 2, 5], torch.tensor([1, 1, 0]), (slice(None), [4, 0]), full[:, 0, 0] > 0, (1, [0, 1], [2, 3]), True]
    with safe_open(tensors_file, "pt") as ours, reference.safe_open(tensors_file, "pt") as theirs:
        for key in keys:
            expected = full[key]
            assert torch.equal(ours.get_slice("f32")[key], expected), key
            assert torch.equal(theirs.get_slice("f32")[key], expected), key


@pytest.mark.parametrize("backend", BACKENDS)
def test_slices_like_the_reference_where_it_supports_them(backend: str, tensors_file: Path) -> None:
    """Keys every reference path takes: in range, non-negative, no `None`,
    `start <= stop` (the reference's pread path panics on `[3:1]`)."""
    rng = np.random.default_rng(7)

    def item(size: int) -> Any:
        if rng.random() < 0.4:
            return int(rng.integers(0, size))
        start = int(rng.integers(0, size))
        return slice(start, int(rng.integers(start, size + 1)), int(rng.integers(1, 3)))

    with safe_open(tensors_file, "pt", backend=backend) as ours, reference.safe_open(
        tensors_file, "pt", backend=backend
    ) as theirs:
        for _ in range(40):
            key = tuple(item(size) for size in TENSORS["f32"].shape[: int(rng.integers(1, 4))])
            assert torch.equal(ours.get_slice("f32")[key], theirs.get_slice("f32")[key]), key


# --- memory: zero-copy maps, owned reads -----------------------------------------------


def base_chain(array: np.ndarray) -> List[Any]:
    chain, base = [], array.base
    while base is not None:
        chain.append(base)
        base = getattr(base, "base", None) if isinstance(base, np.ndarray) else getattr(base, "obj", None)
    return chain


def data_offsets(path: Path) -> Dict[str, Tuple[int, int]]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    return {name: tuple(entry["data_offsets"]) for name, entry in header.items()}


@pytest.mark.parametrize("backend", ["mmap", "pread"])
def test_numpy_tensors_are_owned_copies(small_file: Path, backend: str) -> None:
    # As the reference's: numpy arrays own their bytes on every backend.
    with safe_open(small_file, "np", backend=backend) as f:
        array = f.get_tensor("b")
        assert not any(isinstance(base, mmap.mmap) for base in base_chain(array))
        assert array.flags.writeable
        array[0] = 42
        assert f.get_tensor("b")[0] == 0
        part = f.get_slice("a")[1]
        assert not any(isinstance(base, mmap.mmap) for base in base_chain(part))


def test_mmap_torch_tensors_share_one_mapping(small_file: Path) -> None:
    with safe_open(small_file, "pt") as f:
        b, c, a = f.get_tensor("b"), f.get_tensor("c"), f.get_tensor("a")
        again = f.get_tensor("b")
    begins = {name: begin for name, (begin, _) in data_offsets(small_file).items()}
    # Three tensors of one file: their addresses are the file offsets apart.
    assert c.data_ptr() - b.data_ptr() == begins["c"] - begins["b"]
    assert a.data_ptr() - b.data_ptr() == begins["a"] - begins["b"]
    assert again.data_ptr() == b.data_ptr()
    # The map is private: writing to a tensor never reaches the file.
    before = small_file.read_bytes()
    b.add_(1)
    assert again[0].item() == 1.0
    assert small_file.read_bytes() == before
    with safe_open(small_file, "pt") as f:
        assert f.get_tensor("b")[0].item() == 0.0


def test_pread_gives_owned_memory(small_file: Path) -> None:
    with safe_open(small_file, "pt", backend="pread") as f:
        first, second = f.get_tensor("b"), f.get_tensor("b")
        assert first.data_ptr() != second.data_ptr()
        first.add_(5)
        assert second[0].item() == 0.0


# --- a file replaced while open ------------------------------------------------------


@pytest.mark.parametrize("how", ["serialize_file", "os.replace"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("framework", ["pt", "np"])
def test_replaced_file_keeps_old_contents(
    framework: str, backend: str, how: str, write_file: WriteFile, tmp_path: Path
) -> None:
    old: Dict[str, np.ndarray] = {"x": np.arange(8, dtype=np.float32), "y": np.full(3, 7, dtype=np.int16)}
    new = {"x": -np.arange(16, dtype=np.float32), "z": np.ones(5, dtype=np.uint8)}
    path = write_file(old)
    with safe_open(path, framework, backend=backend) as f:
        # The header was read; no tensor yet, so no map yet either.
        if how == "os.replace":
            os.replace(write_file(new, name="other.safetensors"), path)
        else:
            write_file(new)  # serialize_file renames a new file over the old
        with safe_open(path, framework) as g:
            assert g.keys() == ["x", "z"]
        assert f.keys() == ["x", "y"]
        for name, expected in old.items():
            assert np.array_equal(np.asarray(f.get_tensor(name)), expected)
        assert np.array_equal(np.asarray(f.get_slice("x")[2:5]), old["x"][2:5])


# --- threads --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_share_one_handle(backend: str, tensors_file: Path) -> None:
    full = TENSORS["u8"]
    errors: List[BaseException] = []
    start = threading.Barrier(8)

    with safe_open(tensors_file, "pt", backend=backend) as f:

        def work(seed: int) -> None:
            try:
                rng = np.random.default_rng(seed)
                start.wait()
                for _ in range(150):
                    key = random_key(rng, tuple(full.shape))
                    if not torch.equal(f.get_slice("u8")[key], full[key]):
                        raise AssertionError(key)
                    if seed % 2:
                        assert torch.equal(f.get_tensor("f32"), TENSORS["f32"])
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


def test_serialize_file_lets_python_run(tmp_path: Path) -> None:
    """serialize_file releases the GIL: another thread runs Python code while
    a large tensor is written. Only correctness is checked, not timing."""
    big = np.random.default_rng(0).integers(0, 256, 48 * 2**20, dtype=np.uint8)
    spec = ironsafe.TensorSpec(dtype="uint8", shape=[big.size], data_ptr=big.ctypes.data, data_len=big.nbytes)
    path = tmp_path / "big.safetensors"
    done = threading.Event()
    counted: List[int] = []

    def count() -> None:
        total = 0
        while not done.is_set():
            total = sum(range(1000)) + total % 7
            counted.append(total)

    other = threading.Thread(target=count)
    other.start()
    try:
        ironsafe.serialize_file({"big": spec}, path, {"k": "v"})
        data = ironsafe.serialize({"big": spec})
    finally:
        done.set()
        other.join()
    assert counted and all(value >= 499500 for value in counted)
    with safe_open(path, "np") as f:
        assert f.metadata() == {"k": "v"}
        assert np.array_equal(f.get_tensor("big"), big)
    assert data[-big.nbytes :] == big.tobytes()


# --- the batch reader under the loaders ----------------------------------------------


def test_read_into_refuses_overlapping_or_null_destinations(small_file: Path) -> None:
    from ironsafe._ironsafe import Reader

    reader = Reader(small_file)
    (_, _, _, begin_a, end_a), *_ = reader.infos()
    name = reader.offset_keys()[0]
    buffer = np.zeros(4 * (end_a - begin_a), np.uint8)
    address = buffer.ctypes.data
    with pytest.raises(ValueError, match="destinations overlap"):
        reader.read_into([(name, address), (name, address + 1)])
    with pytest.raises(ValueError, match="invalid destination address"):
        reader.read_into([(name, 0)])
    with pytest.raises(ironsafe.SafetensorError, match="File does not contain tensor nope"):
        reader.read_into([("nope", address)])
    assert not buffer.any(), "nothing may be written when a job is refused"


FRESH_LOADS = """
import sys
import numpy as np
import safetensors.numpy
import ironsafe.numpy, ironsafe.torch
from ironsafe import safe_open

path = sys.argv[1]
expected = safetensors.numpy.load_file(path)
loaded = {"np": ironsafe.numpy.load_file(path), "np pread": ironsafe.numpy.load_file(path, backend="pread")}
loaded["pt pread"] = {k: v.numpy() for k, v in ironsafe.torch.load_file(path, backend="pread").items()}
for framework, backend in [("np", "mmap"), ("np", "pread"), ("pt", "pread")]:
    with safe_open(path, framework, backend=backend) as f:
        for key in ("rows", "columns"):
            loaded[f"{framework} {backend} {key}"] = {
                name: np.asarray(f.get_slice(name)[:700] if key == "rows" else f.get_slice(name)[:, 3:650])
                for name in ("big", "wide")
            }
bad = [
    f"{how}: {name}"
    for how, arrays in loaded.items()
    for name, array in arrays.items()
    if not np.array_equal(array, expected[name][:700] if "rows" in how else expected[name][:, 3:650] if "columns" in how else expected[name])
]
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


@pytest.mark.parametrize("userfaultfd", ["1", "0"])
def test_owned_loads_place_fresh_pages_or_read_them(userfaultfd: str, write_file: WriteFile, rng: np.random.Generator) -> None:
    # Owned loads and slices place the whole pages of fresh memory from a
    # window buffer (userfaultfd) where the system allows it, and read the
    # partial pages at the edges; IRONSAFE_USERFAULTFD=0 reads everything.
    # Either way: the reference's bytes, at offsets and lengths of every
    # alignment.
    path = write_file({
        "odd": rng.integers(0, 256, 4093, dtype=np.uint8),
        "big": rng.standard_normal((1500, 1001)).astype(np.float32),
        "wide": rng.integers(-(2**15), 2**15, (900, 4099), dtype=np.int16),
        "tail": rng.integers(0, 256, 3, dtype=np.uint8),
    })  # fmt: skip
    env = {**os.environ, "IRONSAFE_USERFAULTFD": userfaultfd, "IRONSAFE_THREADS": "3"}
    done = subprocess.run(
        [sys.executable, "-c", FRESH_LOADS, str(path)], env=env, timeout=120, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_staging_reads_land_at_the_shift_they_return(
    write_file: WriteFile, rng: np.random.Generator, evict: Callable[[Path], None]
) -> None:
    # The GPU loader reads ranges of tensor data into staging buffers: through
    # the page cache, or directly (O_DIRECT) for a cold file, in whole aligned
    # blocks around the range. Either way the bytes must be those of the file.
    from ironsafe._ironsafe import DIRECT_ALIGN, Reader

    path = write_file({"w": rng.integers(0, 256, 3 << 20, dtype=np.uint8), "b": np.arange(777, dtype=np.int16)})
    data = path.read_bytes()
    evict(path)
    reader = Reader(path)
    assert reader.is_cold()
    capacity = (4 << 20) + 2 * DIRECT_ALIGN
    block = np.zeros(capacity + DIRECT_ALIGN, np.uint8)
    skip = -block.ctypes.data % DIRECT_ALIGN
    buffer = block[skip : skip + capacity]
    first = reader.infos()[0][3]
    for offset, length in [(first, len(data) - first), (first + 1, 5000), (len(data) - 7, 7), (first + 4095, 1 << 20)]:
        for direct in (True, False):
            buffer[:] = 0xEE
            shift = reader.read_range_into(offset, length, buffer.ctypes.data, capacity, direct=direct)
            assert shift == (offset % DIRECT_ALIGN if direct else None)
            at = shift or 0
            assert buffer[at : at + length].tobytes() == data[offset : offset + length]
    assert not Reader(path).is_cold()  # read through the page cache above


def test_owned_loads_of_a_cold_file_read_past_the_page_cache(
    tmp_path: Path, rng: np.random.Generator, evict: Callable[[Path], None]
) -> None:
    # Large tensors of a cold file are read directly into memory of their
    # own; small ones the usual way. Offsets of every alignment, and the
    # bytes must be the reference's.
    import safetensors.numpy
    import safetensors.torch

    arrays = {
        "odd": rng.integers(0, 256, 4093, dtype=np.uint8),
        "big": rng.standard_normal((700, 1000)).astype(np.float32),
        "small": np.arange(77, dtype=np.int16),
        "bigger": rng.integers(-100, 100, (3, 1 << 19), dtype=np.int8),
        "last": rng.standard_normal(300_001).astype(np.float64),
    }
    path = tmp_path / "cold.safetensors"
    ironsafe.numpy.save_file(arrays, path)
    expected_np = safetensors.numpy.load_file(path)
    expected_pt = safetensors.torch.load_file(path)
    for load in (
        lambda: ironsafe.numpy.load_file(path),
        lambda: ironsafe.numpy.load_file(path, backend="pread"),
        lambda: ironsafe.torch.load_file(path, backend="pread"),
    ):
        evict(path)
        assert ironsafe._ironsafe.Reader(path).is_cold(), "the file must start cold"
        loaded = load()
        assert ironsafe._ironsafe.Reader(path).is_cold(), "read past the page cache"
        for name, array in loaded.items():
            if isinstance(array, torch.Tensor):
                assert torch.equal(array, expected_pt[name]), name
                # Memory of its own: saving the result sees no shared tensors.
                assert array.untyped_storage().nbytes() == array.nbytes
            else:
                np.testing.assert_array_equal(array, expected_np[name], err_msg=name)
                assert array.flags.writeable
        if isinstance(loaded["big"], torch.Tensor):
            ironsafe.torch.save_file(loaded, tmp_path / "again.safetensors")
            assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()


def test_aligned_reads_refuse_buffers_without_room_for_the_blocks(small_file: Path) -> None:
    from ironsafe._ironsafe import DIRECT_ALIGN, Reader

    reader = Reader(small_file)
    name, _, _, begin, end = reader.infos()[0]
    block = mmap.mmap(-1, 4 * DIRECT_ALIGN)
    address = np.frombuffer(block, np.uint8).ctypes.data
    with pytest.raises(ValueError, match=f"cannot hold tensor {name}"):
        reader.read_aligned_into([(name, address, end - begin + DIRECT_ALIGN)])
    with pytest.raises(SafetensorError, match="File does not contain tensor nope"):
        reader.read_aligned_into([("nope", address, 4 * DIRECT_ALIGN)])
    with pytest.raises(ValueError, match="invalid destination address"):
        reader.read_aligned_into([(name, 0, 4 * DIRECT_ALIGN)])
    [shift] = reader.read_aligned_into([(name, address, 4 * DIRECT_ALIGN)])
    assert shift == begin % DIRECT_ALIGN
    assert bytes(block[shift : shift + end - begin]) == small_file.read_bytes()[begin:end]
    # A file cut short since it was opened: an error naming it.
    os.truncate(small_file, reader.file_len - 2)
    with pytest.raises(SafetensorError, match=small_file.name):
        reader.read_aligned_into([(name, address, 4 * DIRECT_ALIGN)])


def test_staging_reads_refuse_ranges_and_buffers_that_do_not_fit(small_file: Path) -> None:
    from ironsafe._ironsafe import Reader

    reader = Reader(small_file)
    buffer = np.zeros(64, np.uint8)
    with pytest.raises(ValueError, match="outside the tensor data"):
        reader.read_range_into(0, 8, buffer.ctypes.data, 64)
    with pytest.raises(ValueError, match="outside the tensor data"):
        reader.read_range_into(reader.file_len - 4, 8, buffer.ctypes.data, 64)
    with pytest.raises(ValueError, match="cannot hold"):
        reader.read_range_into(reader.infos()[0][3], 8, buffer.ctypes.data, 4)
    # A buffer unfit for direct reads is read the usual way, and says so.
    begin = reader.infos()[0][3]
    assert reader.read_range_into(begin, 6, buffer.ctypes.data + 1, 63, direct=True) is None
    assert buffer[1:7].tobytes() == small_file.read_bytes()[begin : begin + 6]
    with pytest.raises(ValueError, match="invalid destination address"):
        reader.read_range_into(begin, 6, 0, 64)
    # A file cut short since it was opened: an error naming it, direct or not.
    os.truncate(small_file, reader.file_len - 2)
    for direct in (False, True):
        with pytest.raises(ironsafe.SafetensorError, match=small_file.name):
            reader.read_range_into(begin, 6, buffer.ctypes.data, 64, direct=direct)


def truncate(path: Path) -> None:
    os.truncate(path, 100)


def rewrite_in_place(path: Path) -> None:
    with open(path, "r+b") as file:
        file.seek(-8, os.SEEK_END)
        file.write(b"\xff" * 8)


@pytest.mark.parametrize("change", [truncate, rewrite_in_place])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("framework", ["pt", "np"])
def test_a_file_changed_under_an_open_handle_raises(
    framework: str, backend: str, change: Callable[[Path], None], tmp_path: Path
) -> None:
    path = tmp_path / "t.safetensors"
    ironsafe.numpy.save_file({"w": np.arange(1000, dtype=np.float32).reshape(100, 10)}, path)
    with safe_open(path, framework, backend=backend) as f:
        time.sleep(0.01)  # a modification time that differs even on coarse clocks
        change(path)
        reads = (
            lambda: f.get_tensor("w"),
            f.get_tensors,
            lambda: f.get_slice("w")[3:7],
            lambda: f.get_slice("w")[:, 2:4],  # many runs: numpy gathers them from a map
        )
        for read in reads:
            with pytest.raises(ironsafe.SafetensorError, match="changed after it was opened"):
                read()
        # The header stays readable: it was read when the file was opened.
        assert f.keys() == ["w"]


def test_read_slice_into_checks_what_allocate_returns(small_file: Path) -> None:
    from ironsafe._ironsafe import Reader

    reader = Reader(small_file)
    name = reader.offset_keys()[0]
    with pytest.raises(ValueError, match="invalid destination address"):
        reader.read_slice_into(name, [(0, 1, 1)], lambda nbytes: (None, 0))
    with pytest.raises(TypeError):
        reader.read_slice_into(name, [(0, 1, 1)], lambda nbytes: "not a pair")


def test_durable_saves_write_the_same_bytes(tmp_path: Path) -> None:
    arrays = {"w": np.arange(1 << 16, dtype=np.float32), "b": np.ones(3, np.int8)}
    plain, durable = tmp_path / "plain.safetensors", tmp_path / "durable.safetensors"
    ironsafe.numpy.save_file(arrays, plain)
    ironsafe.numpy.save_file(arrays, durable, durable=True)
    assert plain.read_bytes() == durable.read_bytes()


@pytest.mark.parametrize("backend", ["mmap", "pread"])
def test_large_numpy_tensors_own_their_memory(tmp_path: Path, backend: str) -> None:
    # Over 4 MiB: allocated as plain anonymous memory rather than by numpy.
    path = tmp_path / "large.safetensors"
    ironsafe.numpy.save_file({"w": np.arange(2 << 20, dtype=np.float32)}, path)
    array = ironsafe.numpy.load_file(path, backend=backend)["w"]
    assert array.flags.writeable and array.nbytes == 8 << 20
    # Rewriting the file in place must not reach the loaded array.
    with open(path, "r+b") as file:
        file.seek(-4, os.SEEK_END)
        file.write(b"\xff\xff\xff\xff")
    assert array[-1] == (2 << 20) - 1
    array[0] = -1.0
    assert np.array_equal(array[1:5], [1, 2, 3, 4])
