"""``ironsafe.numpy`` against the reference ``safetensors.numpy`` 0.8 as
oracle: bytes, cross-loading, errors, and ``safe_open(..., "np")`` slicing."""

from __future__ import annotations

import json
import os
import struct
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes gives numpy bfloat16 and float8")
pytest.importorskip("safetensors.numpy", reason="the reference safetensors is the oracle")

import safetensors  # noqa: E402
import safetensors.numpy as ref  # noqa: E402

import ironsafe  # noqa: E402
import ironsafe.numpy as ours  # noqa: E402
from ironsafe import SafetensorError  # noqa: E402

BACKENDS = ["mmap", "pread"]

# Every dtype numpy can express that the format has, with its file code.
NATIVE = {
    "bool": "BOOL",
    "uint8": "U8",
    "int8": "I8",
    "int16": "I16",
    "uint16": "U16",
    "float16": "F16",
    "int32": "I32",
    "uint32": "U32",
    "float32": "F32",
    "complex64": "C64",
    "float64": "F64",
    "int64": "I64",
    "uint64": "U64",
}
ML = {
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2": "F8_E5M2",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "float8_e8m0fnu": "F8_E8M0",
}
DTYPES = {**NATIVE, **ML}


def np_dtype(name: str) -> np.dtype:
    return np.dtype(getattr(ml_dtypes, name)) if name in ML else np.dtype(name)


def sample(name: str, shape: Tuple[int, ...], seed: int = 0) -> np.ndarray:
    """An array of ``name`` with arbitrary bit patterns (0/1 for bool)."""
    dtype = np_dtype(name)
    rng = np.random.default_rng(seed)
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    raw = rng.integers(0, 256, size=count * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (NaNs and -0.0 included)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def header(data: bytes) -> Dict[str, Any]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n])


def test_the_oracle_is_the_reference() -> None:
    # If some test aliased ``safetensors`` to ironsafe, every comparison
    # below would compare ironsafe with itself.
    assert ref.save is not ours.save
    assert safetensors.safe_open is not ironsafe.safe_open


# --- bytes equal to the reference's -----------------------------------------


@pytest.mark.parametrize("name", list(DTYPES))
def test_save_matches_reference(name: str) -> None:
    array = sample(name, (3, 5))
    data = ours.save({"x": array})
    assert data == ref.save({"x": array})
    assert header(data)["x"]["dtype"] == DTYPES[name]


def test_save_all_dtypes_in_one_file_matches_reference(tmp_path: Path) -> None:
    tensors = {f"t_{name}": sample(name, (2, 3), seed) for seed, name in enumerate(DTYPES)}
    data = ours.save(tensors)
    assert data == ref.save(dict(tensors))
    ours.save_file(tensors, tmp_path / "ours.safetensors")
    assert (tmp_path / "ours.safetensors").read_bytes() == data


@pytest.mark.parametrize(
    "tensors",
    [
        {"empty": np.zeros((0,), np.float32)},
        {"empty": np.zeros((2, 0, 3), np.int64), "b": np.ones((0,), bool)},
        {"scalar": np.array(1.5, np.float32)},
        {"scalar": np.array(7, np.int8), "s2": np.array(True), "v": np.arange(3, dtype=np.uint16)},
        {"bf_scalar": np.array(1.5, ml_dtypes.bfloat16), "bf_empty": np.zeros((0, 2), ml_dtypes.bfloat16)},
        {},
    ],
    ids=["empty", "empty-mixed", "scalar", "scalars-mixed", "bf16", "no-tensors"],
)
def test_empty_and_scalar_match_reference(tensors: Dict[str, np.ndarray]) -> None:
    data = ours.save(tensors)
    assert data == ref.save(dict(tensors))
    for name, array in ours.load(data).items():
        assert same(array, tensors[name])


def test_one_metadata_key_matches_reference(tmp_path: Path) -> None:
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], np.int64)}
    metadata = {"format": "np"}
    data = ours.save(tensors, metadata=metadata)
    assert data == ref.save(dict(tensors), metadata=metadata)
    ours.save_file(tensors, tmp_path / "m.safetensors", metadata=metadata)
    assert (tmp_path / "m.safetensors").read_bytes() == data
    with ironsafe.safe_open(tmp_path / "m.safetensors", "np") as file:
        assert file.metadata() == metadata


def test_metadata_keys_are_sorted(tmp_path: Path) -> None:
    # ironsafe writes __metadata__ keys sorted (the reference: hash order).
    data = ours.save({"a": np.zeros(1)}, metadata={"z": "1", "a": "2", "m": "3"})
    (n,) = struct.unpack("<Q", data[:8])
    assert data[8 : 8 + n].startswith(b'{"__metadata__":{"a":"2","m":"3","z":"1"}')
    path = tmp_path / "meta.safetensors"
    path.write_bytes(data)
    with safetensors.safe_open(path, "np") as file:
        assert file.metadata() == {"z": "1", "a": "2", "m": "3"}


# --- byte order and memory layout -------------------------------------------

BIG_ENDIAN = [">f4", ">f8", ">i2", ">u2", ">i4", ">u4", ">i8", ">u8", ">f2", ">c8"]


@pytest.mark.parametrize("dtype", BIG_ENDIAN)
def test_big_endian_input_is_written_little_endian(dtype: str) -> None:
    little = (np.arange(12) - 5).astype(dtype.replace(">", "<")).reshape(3, 4)
    big = little.astype(dtype)
    before = big.tobytes()
    data = ours.save({"x": big})
    assert data == ours.save({"x": little})
    assert data == ref.save({"x": little})
    assert data == ref.save({"x": big})
    assert big.tobytes() == before and big.dtype == np.dtype(dtype)  # the caller's array is untouched
    loaded = ours.load(data)["x"]
    assert loaded.dtype == little.dtype and np.array_equal(loaded, little)


def test_big_endian_scalar_and_empty() -> None:
    tensors = {"s": np.array(2.5, ">f8"), "e": np.zeros((0, 4), ">i4")}
    expected = {"s": np.array(2.5, "<f8"), "e": np.zeros((0, 4), "<i4")}
    assert ours.save(tensors) == ref.save(expected)


def _layouts() -> List[Tuple[str, Callable[[], np.ndarray]]]:
    base = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    return [
        ("transposed", lambda: base.T),
        ("step-slice", lambda: base[:, ::2, 1:]),
        ("negative-step", lambda: base[::-1, :, ::-3]),
        ("fortran", lambda: np.asfortranarray(base)),
        ("column", lambda: base[:, 1, :]),
        ("broadcast", lambda: np.broadcast_to(np.arange(4, dtype=np.int16), (3, 4))),
        ("big-endian-transposed", lambda: base.astype(">f4").T),
        ("bf16-strided", lambda: base.astype(ml_dtypes.bfloat16)[:, ::3]),
        ("bool-strided", lambda: (base > 20)[::2, ::-1]),
        ("zero-size-strided", lambda: base[:, :0, ::2]),
    ]


@pytest.mark.parametrize("make", [m for _, m in _layouts()], ids=[n for n, _ in _layouts()])
def test_non_contiguous_input_is_packed(make: Callable[[], np.ndarray]) -> None:
    array = make()
    assert not array.flags.c_contiguous or array.size == 0
    packed = np.ascontiguousarray(array)
    packed = packed.astype(packed.dtype.newbyteorder("<")) if packed.dtype.byteorder == ">" else packed
    # The reference writes the first nbytes after the data pointer for such
    # arrays (wrong values): compare with it saving the packed array.
    data = ours.save({"x": array})
    assert data == ref.save({"x": packed})
    loaded = ours.load(data)["x"]
    assert loaded.shape == array.shape and np.array_equal(loaded, array)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_subclasses_and_mappings() -> None:
    matrix = np.matrix([[1, 2], [3, 4]], dtype=np.int32)
    assert ours.save({"m": matrix}) == ref.save({"m": matrix})
    ordered = OrderedDict([("b", np.zeros(2)), ("a", np.ones(3, np.int8))])
    assert ours.save(ordered) == ref.save(OrderedDict(ordered))


def test_save_leaves_its_input_alone() -> None:
    tensors = {"a": np.arange(4, dtype=">i4"), "b": np.arange(6.0).reshape(2, 3).T}
    snapshot = {k: (v.dtype, v.shape, v.strides, v.tobytes()) for k, v in tensors.items()}
    ours.save(tensors)
    assert {k: (v.dtype, v.shape, v.strides, v.tobytes()) for k, v in tensors.items()} == snapshot


# --- cross-loading ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_reference_reads_ironsafe_files(tmp_path: Path, backend: str) -> None:
    # The reference's numpy loaders know only the native numpy dtypes.
    tensors = {f"t_{name}": sample(name, (2, 3), seed) for seed, name in enumerate(NATIVE)}
    tensors["scalar"] = np.array(3.25)
    tensors["empty"] = np.zeros((0, 2), np.int32)
    path = tmp_path / "ours.safetensors"
    ours.save_file(tensors, path, metadata={"k": "v"})
    loaded = ref.load_file(path, backend=backend)
    assert set(loaded) == set(tensors)
    assert all(same(loaded[k], v) for k, v in tensors.items())
    from_bytes = ref.load(path.read_bytes())
    assert all(same(from_bytes[k], v) for k, v in tensors.items())
    with safetensors.safe_open(path, "np", backend=backend) as file:
        assert file.metadata() == {"k": "v"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_ironsafe_reads_reference_files(tmp_path: Path, backend: str) -> None:
    tensors = {f"t_{name}": sample(name, (4, 3), seed) for seed, name in enumerate(DTYPES)}
    tensors["scalar"] = np.array(-1, np.int16)
    tensors["empty"] = np.zeros((3, 0), ml_dtypes.bfloat16)
    path = tmp_path / "ref.safetensors"
    ref.save_file(dict(tensors), path, metadata={"k": "v"})
    loaded = ours.load_file(path, backend=backend)
    assert set(loaded) == set(tensors)
    assert all(same(loaded[k], v) for k, v in tensors.items())
    from_bytes = ours.load(path.read_bytes())
    assert all(same(from_bytes[k], v) for k, v in tensors.items())
    assert ours.load_file(str(path), backend=backend).keys() == loaded.keys()


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_file_is_in_file_order(tmp_path: Path, backend: str) -> None:
    tensors = {"c": np.zeros(1, np.int8), "a": np.zeros(1, np.float64), "b": np.zeros(1, np.float64)}
    path = tmp_path / "order.safetensors"
    ours.save_file(tensors, path)
    # 8-byte dtypes first, then by name.
    assert list(ours.load_file(path, backend=backend)) == ["a", "b", "c"]
    assert list(ours.load(path.read_bytes())) == ["a", "b", "c"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_loaded_arrays_are_writable_and_never_write_the_file(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "w.safetensors"
    ours.save_file({"a": np.arange(8, dtype=np.int32)}, path)
    before = path.read_bytes()
    array = ours.load_file(path, backend=backend)["a"]
    array[:] = -1  # the file is closed: the array keeps its memory alive
    assert path.read_bytes() == before
    assert np.array_equal(ours.load_file(path, backend=backend)["a"], np.arange(8))
    owned = ours.load(before)["a"]
    owned += 1
    assert np.array_equal(owned, np.arange(1, 9))


@pytest.mark.parametrize("backend", BACKENDS)
def test_loaded_arrays_own_their_bytes(tmp_path: Path, backend: str) -> None:
    # As the reference's numpy arrays do: cutting the file short or writing
    # over it afterwards (a save to the same path truncates) changes nothing.
    path = tmp_path / "z.safetensors"
    matrix = np.arange(300_000, dtype=np.float32).reshape(1000, 300)
    ours.save_file({"a": matrix}, path)
    loaded = ours.load_file(path, backend=backend)["a"]
    with ironsafe.safe_open(path, framework="np", backend=backend) as f:
        rows, columns = f.get_slice("a")[10:900], f.get_slice("a")[:, 7:200:3]
    os.truncate(path, 0)
    path.write_bytes(b"\xff" * 4096)
    assert np.array_equal(loaded, matrix)
    assert np.array_equal(rows, matrix[10:900])
    assert np.array_equal(columns, matrix[:, 7:200:3])


def test_path_like_filenames(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    ours.save_file({"a": np.ones(2)}, path)
    ours.save_file({"a": np.ones(2)}, str(path))
    assert np.array_equal(ours.load_file(path)["a"], np.ones(2))


def test_bf16_load_without_ml_dtypes_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ours.save({"a": np.ones(2, ml_dtypes.bfloat16)})
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes -> ImportError
    with pytest.raises(SafetensorError, match="ml_dtypes"):
        ours.load(data)


def test_dtypes_numpy_lacks_are_errors() -> None:
    # F4 (two values a byte): torch writes it, numpy has no such dtype.
    buffer = np.zeros(2, np.uint8)
    spec = ironsafe.TensorSpec(dtype="float4_e2m1fn_x2", shape=[2, 1], data_ptr=buffer.ctypes.data, data_len=2)
    data = ironsafe.serialize({"f4": spec})
    with pytest.raises(SafetensorError, match="F4"):
        ours.load(data)


# --- errors: the reference's types and messages -----------------------------

# The binding's TypeErrors (the argument's type) come from PyO3; the
# reference's PyO3 prefixes them with "argument 'NAME': ", ironsafe's PyO3
# adds that as a note instead. Those compare by suffix.
PYO3_ARGUMENT = "argument"


def _outcome(call: Callable[[], Any]) -> Tuple[str, str]:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - any exception is an outcome
        return type(exc).__name__, str(exc)
    return "no error", ""


BAD_SAVES: Dict[str, Callable[[Any], Any]] = {
    "list": lambda m: m.save([np.zeros(1)]),
    "none": lambda m: m.save(None),
    "value-int": lambda m: m.save({"a": 1}),
    "value-list": lambda m: m.save({"a": [1, 2]}),
    "value-none": lambda m: m.save({"a": None}),
    "value-after-valid": lambda m: m.save({"ok": np.zeros(1), "a": "text"}),
    "complex128": lambda m: m.save({"a": np.zeros(2, np.complex128)}),
    "longdouble": lambda m: m.save({"a": np.zeros(2, np.longdouble)}),
    "object": lambda m: m.save({"a": np.array([1, "x"], dtype=object)}),
    "str": lambda m: m.save({"a": np.array(["x"])}),
    "datetime": lambda m: m.save({"a": np.zeros(2, "datetime64[s]")}),
    "structured": lambda m: m.save({"a": np.zeros(2, [("x", "<f4")])}),
    "int4": lambda m: m.save({"a": np.zeros(2, ml_dtypes.int4)}),
    "float4": lambda m: m.save({"a": np.zeros(2, ml_dtypes.float4_e2m1fn)}),
    "float8_e4m3": lambda m: m.save({"a": np.zeros(2, ml_dtypes.float8_e4m3)}),
    "key-int": lambda m: m.save({1: np.zeros(2)}),
    "metadata-value-int": lambda m: m.save({"a": np.zeros(2)}, metadata={"a": 1}),
    "metadata-key-int": lambda m: m.save({"a": np.zeros(2)}, metadata={1: "a"}),
    "metadata-list": lambda m: m.save({"a": np.zeros(2)}, metadata=["a"]),
    "metadata-value-none": lambda m: m.save({"a": np.zeros(2)}, metadata={"a": None}),
    "filename-int": lambda m: m.save_file({"a": np.zeros(2)}, 3),
    "filename-none": lambda m: m.save_file({"a": np.zeros(2)}, None),
    "load-str": lambda m: m.load("abc"),
    "load-none": lambda m: m.load(None),
    "load-file-missing": lambda m: m.load_file("/nonexistent/dir/x.safetensors"),
    "load-file-backend": lambda m: m.load_file("/nonexistent/dir/x.safetensors", backend="mmmap"),
    "load-file-backend-pread-typo": lambda m: m.load_file("x.safetensors", backend="Pread"),
}


@pytest.mark.parametrize("case", list(BAD_SAVES))
def test_errors_match_reference(case: str) -> None:
    expected = _outcome(lambda: BAD_SAVES[case](ref))
    got = _outcome(lambda: BAD_SAVES[case](ours))
    assert expected[0] != "no error"
    assert got[0] == expected[0]
    if got[1] != expected[1]:
        prefix, _, rest = expected[1].partition(": ")
        assert prefix.startswith(PYO3_ARGUMENT) and rest == got[1], (expected, got)


def test_non_array_with_a_dtype_is_an_attribute_error() -> None:
    # The reference fails on whatever attribute such a value lacks (numpy
    # scalars: ctypes; torch tensors: dtype.byteorder), always with an
    # AttributeError; ironsafe says what it expected.
    with pytest.raises(AttributeError, match=r"Key `a` is invalid, expected numpy.ndarray but received <class 'numpy.float32'>"):
        ours.save({"a": np.float32(1.0)})
    with pytest.raises(AttributeError):
        ref.save({"a": np.float32(1.0)})


def test_load_bad_bytes_is_a_safetensor_error() -> None:
    # Same type as the reference; ironsafe's messages say more.
    for data in (b"", b"abc", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", struct.pack("<Q", 2) + b"[]"):
        with pytest.raises(SafetensorError, match="^Error while deserializing: "):
            ours.load(data)
        with pytest.raises(safetensors.SafetensorError, match="^Error while deserializing: "):
            ref.load(data)


def test_save_file_into_a_missing_folder_fails(tmp_path: Path) -> None:
    # The reference raises SafetensorError("Error while serializing: I/O error: ...").
    with pytest.raises((SafetensorError, OSError)):
        ours.save_file({"a": np.zeros(2)}, tmp_path / "missing" / "x.safetensors")


# --- safe_open(..., "np").get_slice -----------------------------------------

SHAPES = [(7,), (4, 6), (3, 4, 5), (2, 0, 3), (), (1, 3, 1, 2)]


@pytest.fixture(scope="module")
def sliced_file(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Dict[str, np.ndarray]]:
    tensors = {f"t{i}": (np.arange(int(np.prod(s)), dtype=np.int32) - 7).reshape(s) for i, s in enumerate(SHAPES)}
    tensors["bf16"] = np.arange(60, dtype=np.float32).reshape(3, 4, 5).astype(ml_dtypes.bfloat16)
    tensors["bool"] = (np.arange(24) % 3 == 0).reshape(4, 6)
    tensors["c64"] = (np.arange(12) + 1j * np.arange(12)).astype(np.complex64).reshape(3, 4)
    path = tmp_path_factory.mktemp("slices") / "s.safetensors"
    ours.save_file(tensors, path)
    return path, tensors


FIXED_KEYS: List[Any] = [
    0,
    -1,
    slice(None),
    slice(1, None),
    slice(None, -1),
    slice(-3, None),
    slice(None, None, 2),
    slice(None, None, -1),
    slice(None, None, -2),
    slice(5, 1, -1),
    slice(-1, -100, -2),
    slice(1, 100),
    slice(-100, 2),
    slice(3, 1),
    slice(100, 200),
    slice(None, None, 3),
    Ellipsis,
    None,
    (Ellipsis, 0),
    (0, Ellipsis),
    (None, 0),
    (slice(None), None),
    (Ellipsis, None),
    (None, Ellipsis, None),
    (slice(None, None, -1), Ellipsis, slice(1, None, 2)),
    (),
]


def _keys_for(shape: Tuple[int, ...], rng: np.random.Generator, count: int) -> List[Any]:
    """Random keys for ``shape``: mostly valid, some with an index out of
    range (and with ``...`` anywhere, some with too many indices)."""
    keys: List[Any] = []
    for _ in range(count):
        items: List[Any] = []
        take = int(rng.integers(0, len(shape) + 1))
        for size in shape[:take]:
            bound = size + 3
            if rng.random() < 0.3:
                items.append(int(rng.integers(-bound, bound)) if rng.random() < 0.2 else int(rng.integers(-size, max(size, 1))))
            else:

                def pick() -> Optional[int]:
                    return None if rng.random() < 0.3 else int(rng.integers(-bound, bound + 1))

                step = None if rng.random() < 0.3 else int(rng.choice([-3, -2, -1, 1, 2, 3]))
                items.append(slice(pick(), pick(), step))
            if rng.random() < 0.1:
                items.append(None)
        if rng.random() < 0.2:
            items.insert(int(rng.integers(0, len(items) + 1)), Ellipsis)
        keys.append(tuple(items) if len(items) != 1 or rng.random() < 0.5 else items[0])
    return keys


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_slice_equals_numpy_indexing(sliced_file: Tuple[Path, Dict[str, np.ndarray]], backend: str) -> None:
    path, tensors = sliced_file
    rng = np.random.default_rng(1234)
    checked = failed = 0
    with ironsafe.safe_open(path, "np", backend=backend) as file:
        for name, array in tensors.items():
            view = file.get_slice(name)
            assert view.get_shape() == list(array.shape)
            for key in FIXED_KEYS + _keys_for(array.shape, rng, 80):
                try:
                    expected = array[key]
                except IndexError:
                    with pytest.raises(IndexError) as info:
                        view[key]
                    assert isinstance(info.value, SafetensorError), (name, key)
                    failed += 1
                    continue
                got = view[key]
                assert isinstance(got, np.ndarray), (name, key)
                assert got.dtype == expected.dtype and got.shape == expected.shape, (name, key)
                assert got.tobytes() == np.ascontiguousarray(expected).tobytes(), (name, key)
                checked += 1
    assert checked > 500 and failed > 20


BAD_KEYS: List[Tuple[Tuple[int, ...], Any]] = [
    ((7,), 7),
    ((7,), -8),
    ((4, 6), (0, 6)),
    ((4, 6), (-5, 0)),
    ((4, 6), (0, 0, 0)),
    ((4, 6), (Ellipsis, 0, 0, 0)),
    ((4, 6), (Ellipsis, Ellipsis)),
    ((), 0),
    ((), (slice(None),)),
    ((2, 0, 3), (0, 0)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape,key", BAD_KEYS, ids=[f"{s}-{k}" for s, k in BAD_KEYS])
def test_bad_slice_keys_are_index_errors(tmp_path: Path, backend: str, shape: Tuple[int, ...], key: Any) -> None:
    array = np.zeros(shape, np.float32)
    with pytest.raises(IndexError):
        array[key]  # numpy says so too
    path = tmp_path / "bad.safetensors"
    ours.save_file({"x": array}, path)
    with ironsafe.safe_open(path, "np", backend=backend) as file:
        view = file.get_slice("x")
        with pytest.raises(IndexError) as info:
            view[key]
        assert isinstance(info.value, SafetensorError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_slice_reads_the_reference_file(tmp_path: Path, backend: str) -> None:
    array = sample("float32", (6, 5), 3)
    path = tmp_path / "r.safetensors"
    ref.save_file({"x": array}, path)
    with ironsafe.safe_open(path, "np", backend=backend) as file:
        view = file.get_slice("x")
        assert view.get_dtype() == "F32"
        assert same(view[1:4], array[1:4])
        assert same(view[:, ::-2], np.ascontiguousarray(array[:, ::-2]))


def test_bfloat16_without_ml_dtypes_names_it(tmp_path, monkeypatch):
    path = tmp_path / "bf16.safetensors"
    ironsafe.numpy.save_file({"b": np.array([1.5, -2.0], ml_dtypes.bfloat16)}, path)
    # An entry of None in sys.modules makes `import ml_dtypes` raise ImportError.
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    for backend in ("mmap", "pread"):
        with pytest.raises(ironsafe.SafetensorError, match="needs the ml_dtypes package"):
            ironsafe.numpy.load_file(path, backend=backend)
