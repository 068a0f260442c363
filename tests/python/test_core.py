"""The extension's core API (`TensorSpec`, `serialize`, `serialize_file`,
`deserialize`, `SafetensorError`, `__version__`) compared with the reference
`safetensors` 0.8.0: the same bytes, the same results, the same exception
types. Where ironsafe differs on purpose (see compat.md), the test says so."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import math
import os
import pickle
import re
import stat
import struct
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pytest
import safetensors as reference
import torch  # noqa: F401 - imported once here, not inside the first 'pt' case

import ironsafe
from oracle import outcome
from ironsafe import SafetensorError

# The 20 TensorSpec dtype names -> (file code, bytes per element as given).
# float4_e2m1fn_x2 is given packed: one byte holds two values.
DTYPES: Dict[str, Tuple[str, int]] = {
    "bool": ("BOOL", 1),
    "int8": ("I8", 1),
    "uint8": ("U8", 1),
    "int16": ("I16", 2),
    "uint16": ("U16", 2),
    "int32": ("I32", 4),
    "uint32": ("U32", 4),
    "int64": ("I64", 8),
    "uint64": ("U64", 8),
    "float16": ("F16", 2),
    "float32": ("F32", 4),
    "float64": ("F64", 8),
    "bfloat16": ("BF16", 2),
    "float8_e4m3fn": ("F8_E4M3", 1),
    "float8_e4m3fnuz": ("F8_E4M3FNUZ", 1),
    "float8_e5m2": ("F8_E5M2", 1),
    "float8_e5m2fnuz": ("F8_E5M2FNUZ", 1),
    "float8_e8m0fnu": ("F8_E8M0", 1),
    "float4_e2m1fn_x2": ("F4", 1),
    "complex64": ("C64", 8),
}

# A tensor to write: (TensorSpec dtype name, shape as given, its bytes).
Raw = Tuple[str, Tuple[int, ...], np.ndarray]


def raw(rng: np.random.Generator, dtype: str, shape: Tuple[int, ...]) -> Raw:
    size = math.prod(shape) * DTYPES[dtype][1]
    return dtype, shape, rng.integers(0, 256, size, dtype=np.uint8)


def specs(lib: Any, tensors: Dict[str, Raw]) -> Dict[str, Any]:
    """`lib.TensorSpec`s of `tensors` (whose buffers the caller keeps alive)."""
    return {
        name: lib.TensorSpec(dtype=dtype, shape=list(shape), data_ptr=data.ctypes.data, data_len=data.nbytes)
        for name, (dtype, shape, data) in tensors.items()
    }


def both_serialize(tensors: Dict[str, Raw], metadata: Optional[Dict[str, str]] = None) -> Tuple[bytes, bytes]:
    ours = ironsafe.serialize(specs(ironsafe, tensors), metadata)
    theirs = reference.serialize(specs(reference, tensors), metadata)
    return ours, theirs


def split(data: bytes) -> Tuple[Dict[str, Any], bytes]:
    """The parsed header and the data section of a file's bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def random_tensors(rng: np.random.Generator, count: int) -> Dict[str, Raw]:
    """Tensors of every dtype with random names and shapes (scalars and
    empty ones among them)."""
    alphabet = list("abcXYZ019_./-é")
    tensors: Dict[str, Raw] = {}
    while len(tensors) < count:
        name = "".join(rng.choice(alphabet, size=int(rng.integers(1, 6))))
        dtype = list(DTYPES)[len(tensors) % len(DTYPES)]
        rank = int(rng.integers(0, 4))
        shape = tuple(int(d) for d in rng.integers(0, 4, size=rank))
        if dtype == "float4_e2m1fn_x2" and not shape:
            shape = (1,)
        tensors[name] = raw(rng, dtype, shape)
    return tensors


# --- serialize ----------------------------------------------------------------

SHAPES = [(), (0,), (3, 0), (5,), (2, 3), (2, 1, 4)]


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}], ids=["no-metadata", "one-key"])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_serialize_equals_reference_for_every_dtype(
    dtype: str, metadata: Optional[Dict[str, str]], rng: np.random.Generator
) -> None:
    code, _ = DTYPES[dtype]
    for shape in SHAPES:
        if dtype == "float4_e2m1fn_x2" and not shape:
            continue  # half a byte: an error, see below
        tensors = {"t": raw(rng, dtype, shape)}
        ours, theirs = both_serialize(tensors, metadata)
        assert ours == theirs, (dtype, shape)
        header, data = split(ours)
        logical = list(shape)
        if code == "F4":
            logical[-1] *= 2
        assert header["t"] == {"dtype": code, "shape": logical, "data_offsets": [0, len(data)]}
        assert data == tensors["t"][2].tobytes()
        assert (8 + len(header_bytes(ours))) % 8 == 0


def header_bytes(data: bytes) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    return data[8 : 8 + n]


@pytest.mark.parametrize(
    "metadata",
    [None, {}, {"format": "pt"}, {"": ""}, {"ключ": 'a "quoted" \\ value\n\t\x01 é'}],
    ids=["none", "empty", "one", "empty-strings", "escapes"],
)
@pytest.mark.parametrize("seed", range(4))
def test_serialize_many_tensors_equals_reference(seed: int, metadata: Optional[Dict[str, str]]) -> None:
    rng = np.random.default_rng(seed)
    tensors = random_tensors(rng, 40)
    # Names that need JSON escapes, and ties of dtype broken by name.
    tensors['q"uote\\back\x01slash\n'] = raw(rng, "float32", (2,))
    tensors["Ä"] = raw(rng, "float32", (1,))
    tensors["a"] = raw(rng, "float32", ())
    ours, theirs = both_serialize(tensors, metadata)
    assert ours == theirs


def test_serialize_orders_by_dtype_alignment_then_name(rng: np.random.Generator) -> None:
    tensors = {f"{dtype}-{i}": raw(rng, dtype, (2,)) for dtype in DTYPES for i in (1, 0)}
    ours, theirs = both_serialize(tensors)
    assert ours == theirs
    header, _ = split(ours)
    begins = {name: entry["data_offsets"][0] for name, entry in header.items()}
    order = sorted(begins, key=lambda name: begins[name])
    sizes = [DTYPES[name.rsplit("-", 1)[0]][1] for name in order]
    assert sizes == sorted(sizes, reverse=True)
    assert order[:2] == sorted(order[:2])


def test_serialize_contract_examples() -> None:
    zeros = np.zeros((2, 2), dtype=np.int32)
    spec = ironsafe.TensorSpec(dtype="int32", shape=[2, 2], data_ptr=zeros.ctypes.data, data_len=16)
    expected_header = b'{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}    '
    assert ironsafe.serialize({"test": spec}) == struct.pack("<Q", 64) + expected_header + bytes(16)
    assert ironsafe.serialize({}) == struct.pack("<Q", 8) + b"{}      "
    assert ironsafe.serialize({}) == reference.serialize({})


def test_serialize_metadata_keys_sorted_and_deterministic(rng: np.random.Generator) -> None:
    """Documented difference: with two or more metadata keys ironsafe writes
    them sorted (the reference: hash order). The header has the same content
    and the same length, so the data section is the same."""
    tensors = {"w": raw(rng, "float32", (3,)), "b": raw(rng, "int64", (2,))}
    keys = ["zeta", "alpha", "mid", "Beta", "0"]
    metadata = {key: key.upper() for key in keys}
    ours = ironsafe.serialize(specs(ironsafe, tensors), metadata)
    theirs = reference.serialize(specs(reference, tensors), metadata)
    assert len(ours) == len(theirs)
    assert split(ours) == split(theirs)
    assert list(split(ours)[0]["__metadata__"]) == sorted(keys)
    assert header_bytes(ours).startswith(b'{"__metadata__":{"0":"0","Beta":"BETA","alpha"')
    for order in (keys[::-1], sorted(keys), keys[2:] + keys[:2]):
        assert ironsafe.serialize(specs(ironsafe, tensors), {key: metadata[key] for key in order}) == ours


def test_serialize_empty_metadata_without_tensors() -> None:
    """Documented difference: for no tensors and `{}` metadata the reference
    writes a header that is not JSON (and cannot read it back); ironsafe
    writes `{"__metadata__":{}}`."""
    ours = ironsafe.serialize({}, {})
    theirs = reference.serialize({}, {})
    assert header_bytes(ours) == b'{"__metadata__":{}}     '
    assert ironsafe.deserialize(ours) == []
    with pytest.raises(reference.SafetensorError):
        reference.deserialize(theirs)


def test_serialize_float4_needs_whole_bytes() -> None:
    """A float4 scalar is half a byte: both libraries refuse it."""
    byte = np.zeros(1, dtype=np.uint8)
    for lib in (ironsafe, reference):
        spec = lib.TensorSpec(dtype="float4_e2m1fn_x2", shape=[], data_ptr=byte.ctypes.data, data_len=1)
        with pytest.raises(lib.SafetensorError, match="^Error while serializing: "):
            lib.serialize({"f4": spec})


@pytest.mark.parametrize("shape, data_len", [([4], 12), ([3], 16), ([5], 16), ([2**62], 16)])
def test_serialize_size_mismatch(shape: List[int], data_len: int) -> None:
    data = np.zeros(4, dtype=np.float32)
    for lib in (ironsafe, reference):
        spec = lib.TensorSpec(dtype="float32", shape=shape, data_ptr=data.ctypes.data, data_len=data_len)
        with pytest.raises(lib.SafetensorError, match="^Error while serializing: "):
            lib.serialize({"a": spec})


def test_serialize_refuses_a_tensor_named_metadata(rng: np.random.Generator) -> None:
    """Documented difference: the reference writes a file it cannot read."""
    tensors = {"__metadata__": raw(rng, "float32", (1,))}
    with pytest.raises(SafetensorError, match="__metadata__"):
        ironsafe.serialize(specs(ironsafe, tensors))
    with pytest.raises(reference.SafetensorError):
        reference.deserialize(reference.serialize(specs(reference, tensors)))


@pytest.mark.parametrize(
    "call",
    [
        lambda lib, spec: lib.serialize([("a", spec)]),
        lambda lib, spec: lib.serialize({"a": {"dtype": "float32", "shape": [1], "data_ptr": 0, "data_len": 0}}),
        lambda lib, spec: lib.serialize({1: spec}),
        lambda lib, spec: lib.serialize({"a": spec}, {"k": 1}),
        lambda lib, spec: lib.serialize({"a": spec}, [("k", "v")]),
        lambda lib, spec: lib.serialize_file({"a": spec}, b"/tmp/bytes-name.safetensors"),
        lambda lib, spec: lib.serialize_file({"a": spec}, 5),
        lambda lib, spec: lib.deserialize("not bytes"),
        lambda lib, spec: lib.deserialize(bytearray(8)),
    ],
    ids=["list", "dict-not-spec", "int-name", "int-metadata", "list-metadata", "bytes-filename", "int-filename",
         "str-data", "bytearray-data"],
)
def test_argument_type_errors(call: Callable[[Any, Any], Any]) -> None:
    """Wrong argument types are TypeErrors in both libraries."""
    for lib in (ironsafe, reference):
        spec = lib.TensorSpec(dtype="float32", shape=[0], data_ptr=0, data_len=0)
        with pytest.raises(TypeError):
            call(lib, spec)


# --- serialize_file -------------------------------------------------------------


@pytest.mark.parametrize("metadata", [None, {"format": "np"}])
def test_serialize_file_equals_reference(
    metadata: Optional[Dict[str, str]], tmp_path: Path, rng: np.random.Generator
) -> None:
    tensors = random_tensors(rng, 30)
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    ironsafe.serialize_file(specs(ironsafe, tensors), ours, metadata)
    reference.serialize_file(specs(reference, tensors), str(theirs), metadata)
    assert ours.read_bytes() == theirs.read_bytes()
    assert ours.read_bytes() == ironsafe.serialize(specs(ironsafe, tensors), metadata)
    # A str path, and replacing an existing file.
    ironsafe.serialize_file(specs(ironsafe, {"x": tensors[next(iter(tensors))]}), str(ours))
    ironsafe.serialize_file(specs(ironsafe, tensors), str(ours), metadata)
    assert ours.read_bytes() == theirs.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.safetensors", "theirs.safetensors"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_serialize_file_mode_follows_umask(
    mask: int, mode: int, umask: Callable[[int], None], tmp_path: Path
) -> None:
    umask(mask)
    path = tmp_path / "m.safetensors"
    ironsafe.serialize_file({}, path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    path.unlink()
    path.write_bytes(b"")  # an existing file is replaced by a new one
    path.chmod(0o600)
    ironsafe.serialize_file({}, path)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_reference_writes_0600(umask: Callable[[int], None], tmp_path: Path) -> None:
    """Documented difference: the reference ignores the umask (0600)."""
    umask(0o022)
    reference.serialize_file({}, str(tmp_path / "r.safetensors"))
    assert stat.S_IMODE((tmp_path / "r.safetensors").stat().st_mode) == 0o600


def test_serialize_file_failures(tmp_path: Path, rng: np.random.Generator) -> None:
    tensors = {"a": raw(rng, "float32", (2,))}
    for lib in (ironsafe, reference):
        with pytest.raises(lib.SafetensorError, match="^Error while serializing: "):
            lib.serialize_file(specs(lib, tensors), str(tmp_path / "missing-dir" / "x.safetensors"))
    # A bad spec leaves an existing file as it was, and no temporary file.
    path = tmp_path / "keep.safetensors"
    path.write_bytes(b"old")
    bad = ironsafe.TensorSpec(dtype="float32", shape=[3], data_ptr=tensors["a"][2].ctypes.data, data_len=8)
    with pytest.raises(SafetensorError, match="^Error while serializing: "):
        ironsafe.serialize_file({"a": bad}, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.safetensors"]


# --- deserialize -------------------------------------------------------------------


def as_dict(entries: Sequence[Tuple[str, Mapping[str, Any]]]) -> Dict[str, Tuple[List[int], str, bytes]]:
    result = {}
    for name, entry in entries:
        assert set(entry) == {"shape", "dtype", "data"}
        assert isinstance(entry["data"], bytearray)
        result[name] = (entry["shape"], entry["dtype"], bytes(entry["data"]))
    assert len(result) == len(entries)
    return result


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("metadata", [None, {"a": "b", "c": "d"}])
def test_deserialize_equals_reference(seed: int, metadata: Optional[Dict[str, str]]) -> None:
    tensors = random_tensors(np.random.default_rng(seed), 25)
    for data in both_serialize(tensors, metadata):
        ours = ironsafe.deserialize(data)
        assert as_dict(ours) == as_dict(reference.deserialize(data))
        # ironsafe: file order (the reference's is hash order).
        header, _ = split(data)
        header.pop("__metadata__", None)
        assert [name for name, _ in ours] == sorted(header, key=lambda n: tuple(header[n]["data_offsets"]))
        for name, (dtype, shape, raw_bytes) in tensors.items():
            code, _ = DTYPES[dtype]
            logical = list(shape)
            if code == "F4":
                logical[-1] *= 2
            assert as_dict(ours)[name] == (logical, code, raw_bytes.tobytes())


def test_deserialize_empty_and_metadata_only() -> None:
    for data in (ironsafe.serialize({}), ironsafe.serialize({}, {"k": "v"})):
        assert ironsafe.deserialize(data) == reference.deserialize(data) == []


def test_deserialize_returns_fresh_buffers() -> None:
    data = np.arange(4, dtype=np.uint8)
    blob = ironsafe.serialize({"a": ironsafe.TensorSpec(dtype="uint8", shape=[4], data_ptr=data.ctypes.data, data_len=4)})
    first = ironsafe.deserialize(blob)[0][1]["data"]
    first[0] = 99
    assert ironsafe.deserialize(blob)[0][1]["data"] == bytearray(b"\x00\x01\x02\x03")


# --- TensorSpec ------------------------------------------------------------------


def test_tensor_spec_attributes_and_repr_equal_reference() -> None:
    for dtype, (code, _) in DTYPES.items():
        shapes: List[Any] = [[2, 3], (4,), [0], np.array([7, 1])]
        for shape in shapes:
            ours = ironsafe.TensorSpec(dtype=dtype, shape=shape, data_ptr=1234, data_len=24)
            theirs = reference.TensorSpec(dtype=dtype, shape=shape, data_ptr=1234, data_len=24)
            assert ours.dtype == theirs.dtype == code
            assert ours.shape == theirs.shape
            assert isinstance(ours.shape, list)
            assert (ours.data_ptr, ours.data_len) == (theirs.data_ptr, theirs.data_len) == (1234, 24)
            assert repr(ours) == repr(theirs)
    # float4 is given packed; the spec holds the logical shape.
    f4 = ironsafe.TensorSpec(dtype="float4_e2m1fn_x2", shape=[2, 3], data_ptr=0, data_len=0)
    assert f4.shape == [2, 6]
    assert ironsafe.TensorSpec(dtype="float4_e2m1fn_x2", shape=[], data_ptr=0, data_len=0).shape == []
    assert repr(f4) == "TensorSpec(dtype='F4', shape=[2, 6], data_ptr=0, data_len=0)"


def test_tensor_spec_is_frozen_and_final() -> None:
    for lib in (ironsafe, reference):
        spec = lib.TensorSpec(dtype="float32", shape=[1], data_ptr=8, data_len=4)
        for attribute in ("dtype", "shape", "data_ptr", "data_len", "other"):
            with pytest.raises(AttributeError):
                setattr(spec, attribute, 1)
        with pytest.raises(TypeError):
            type("Sub", (lib.TensorSpec,), {})
        with pytest.raises(TypeError):
            pickle.dumps(spec)


def spec_outcome(lib: Any, *args: Any, **kwargs: Any) -> Tuple[str, str]:
    try:
        lib.TensorSpec(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the outcome is compared
        return type(err).__name__, str(err)
    return "ok", ""


SPEC_ERRORS: List[Tuple[Tuple[Any, ...], Dict[str, Any]]] = [
    ((), {"dtype": "float128", "shape": [1], "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "F32", "shape": [1], "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "Float32", "shape": [1], "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "", "shape": [1], "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "float32", "shape": [-1], "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "float32", "shape": [1], "data_ptr": -1, "data_len": 0}),
    ((), {"dtype": "float32", "shape": [1], "data_ptr": 1, "data_len": -4}),
    ((), {"dtype": "float32", "shape": [2**64], "data_ptr": 1, "data_len": 4}),
    (("float32", [1], 0, 0), {}),
    (("float32",), {"shape": [1], "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "float32", "shape": [1], "data_ptr": 0}),
    ((), {"dtype": "float32", "shape": [1], "data_ptr": 0, "data_len": 0, "extra": 1}),
    ((), {"dtype": None, "shape": [1], "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "float32", "shape": "12", "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "float32", "shape": [1.0], "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "float32", "shape": 3, "data_ptr": 0, "data_len": 0}),
    ((), {"dtype": "float32", "shape": [1], "data_ptr": 1.5, "data_len": 0}),
]


@pytest.mark.parametrize("args, kwargs", SPEC_ERRORS)
def test_tensor_spec_errors_equal_reference(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    ours, theirs = spec_outcome(ironsafe, *args, **kwargs), spec_outcome(reference, *args, **kwargs)
    assert ours[0] == theirs[0] != "ok"
    # The same message, but for the "argument 'x': " the reference's pyo3 puts
    # before the conversion errors of arguments.
    assert re.fullmatch(r"(argument '\w+': )?" + re.escape(ours[1]), theirs[1])


def test_tensor_spec_unknown_dtype_message() -> None:
    with pytest.raises(SafetensorError) as info:
        ironsafe.TensorSpec(dtype="float128", shape=[1], data_ptr=0, data_len=0)
    assert str(info.value) == 'Unknown dtype "float128". Supported dtypes: ' + ", ".join(DTYPES)


def test_tensor_spec_null_pointer_with_bytes() -> None:
    """Documented difference: a null `data_ptr` with `data_len > 0` is a
    ValueError at once (the reference accepts it and would read address 0)."""
    with pytest.raises(ValueError, match="null"):
        ironsafe.TensorSpec(dtype="uint8", shape=[4], data_ptr=0, data_len=4)
    reference.TensorSpec(dtype="uint8", shape=[4], data_ptr=0, data_len=4)


# --- SafetensorError and __version__ -------------------------------------------------


def test_safetensor_error() -> None:
    assert issubclass(SafetensorError, Exception)
    assert ironsafe._ironsafe.SafetensorError is SafetensorError
    module = importlib.import_module(SafetensorError.__module__)
    assert getattr(module, SafetensorError.__qualname__) is SafetensorError
    for args in ((), ("boom",), ("a", 2)):
        copy = pickle.loads(pickle.dumps(SafetensorError(*args)))
        assert type(copy) is SafetensorError
        assert copy.args == args
    # Subclassable, like any exception.
    assert issubclass(type("Sub", (SafetensorError,), {}), SafetensorError)


def test_version() -> None:
    assert isinstance(ironsafe.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+([-.+]?\w+)*", ironsafe.__version__)
    assert ironsafe.__version__ == ironsafe._ironsafe.__version__
    assert ironsafe.__version__ == importlib.metadata.version("ironsafe")


def test_public_names() -> None:
    for name in ("SafetensorError", "TensorSpec", "__version__", "deserialize", "safe_open", "serialize",
                 "serialize_file"):
        assert hasattr(reference, name)
        assert name in ironsafe.__all__
        assert hasattr(ironsafe, name)


# --- bad files -------------------------------------------------------------------


def tensor(dtype: str, shape: List[Any], offsets: List[Any]) -> Dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


def file_bytes(header: Any, data: bytes = b"", length: Optional[int] = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def u8(offsets: List[int]) -> Dict[str, Any]:
    return tensor("U8", [offsets[1] - offsets[0]], offsets)


BAD_FILES: Dict[str, bytes] = {
    "empty": b"",
    "shorter-than-the-length": b"\x01\x02\x03",
    "length-zero": struct.pack("<Q", 0),
    "header-too-large": struct.pack("<Q", 100_000_001) + b"{}",
    "header-length-overflows": struct.pack("<Q", 2**64 - 1) + b"{}",
    "header-past-the-end": struct.pack("<Q", 100) + b"{}      ",
    "header-at-the-limit-past-the-end": struct.pack("<Q", 100_000_000) + b"{}",
    "not-utf8": file_bytes(b'{"a\xff":1}'),
    "bad-json": file_bytes(b'{"a":'),
    "json-array": file_bytes(b"[]"),
    "json-string": file_bytes(b'"{}"'),
    "trailing-characters": file_bytes(b"{}x"),
    "two-objects": file_bytes(b"{}{}"),
    "missing-dtype": file_bytes({"a": {"shape": [1], "data_offsets": [0, 1]}}, b"\0"),
    "missing-offsets": file_bytes({"a": {"dtype": "U8", "shape": [1]}}, b"\0"),
    "unknown-dtype": file_bytes({"a": tensor("F128", [1], [0, 4])}, b"\0" * 4),
    "lowercase-dtype": file_bytes({"a": tensor("f32", [1], [0, 4])}, b"\0" * 4),
    "negative-dim": file_bytes({"a": tensor("F32", [-1], [0, 4])}, b"\0" * 4),
    "float-dim": file_bytes({"a": tensor("U8", [1.0], [0, 1])}, b"\0"),
    "string-dim": file_bytes({"a": tensor("U8", ["1"], [0, 1])}, b"\0"),
    "shape-overflows": file_bytes({"a": tensor("U8", [2**40, 2**40], [0, 4])}, b"\0" * 4),
    "bytes-overflow": file_bytes({"a": tensor("F64", [2**62], [0, 8])}, b"\0" * 8),
    "negative-offset": file_bytes({"a": tensor("U8", [1], [-1, 0])}, b"\0"),
    "three-offsets": file_bytes({"a": tensor("U8", [1], [0, 1, 2])}, b"\0"),
    "size-mismatch": file_bytes({"a": tensor("F32", [2], [0, 4])}, b"\0" * 4),
    "offsets-reversed": file_bytes({"a": tensor("U8", [0], [4, 0])}, b"\0" * 4),
    "gap": file_bytes({"a": u8([0, 4]), "b": u8([8, 12])}, b"\0" * 12),
    "overlap": file_bytes({"a": u8([0, 4]), "b": u8([2, 6])}, b"\0" * 6),
    "not-from-zero": file_bytes({"a": u8([4, 8])}, b"\0" * 8),
    "truncated-data": file_bytes({"a": tensor("F32", [4], [0, 16])}, b"\0" * 8),
    "trailing-data": file_bytes({"a": tensor("F32", [1], [0, 4])}, b"\0" * 8),
    "no-tensors-trailing-data": file_bytes({}, b"\0"),
    "metadata-int-value": file_bytes({"__metadata__": {"a": 1}}),
    "metadata-null-value": file_bytes({"__metadata__": {"a": None}}),
    "metadata-array": file_bytes({"__metadata__": ["a"]}),
    "metadata-string": file_bytes({"__metadata__": "a"}),
    "entry-not-an-object": file_bytes({"a": 5}),
    "float4-half-byte": file_bytes({"a": tensor("F4", [3], [0, 2])}, b"\0" * 2),
    "duplicate-metadata": file_bytes(b'{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"}}'),
    "float6-partial-byte": file_bytes({"a": tensor("F6_E2M3", [3], [0, 3])}, b"\0" * 3),
}

# Files the reference accepts and ironsafe rejects on purpose (compat.md, README).
REJECTED_ON_PURPOSE: Dict[str, bytes] = {
    "duplicate-tensor-names": file_bytes(
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
        b"\0",
    ),
    "duplicate-metadata-keys": file_bytes(b'{"__metadata__":{"a":"1","a":"2"}}'),
    "unknown-entry-field": file_bytes({"a": {**tensor("U8", [1], [0, 1]), "extra": 1}}, b"\0"),
}

# Odd but valid: both libraries read these the same way.
ODD_GOOD_FILES: Dict[str, bytes] = {
    "empty-object": file_bytes(b"{}"),
    "whitespace-around": file_bytes(b' \n\t\r{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}\n  ', b"ab"),
    "metadata-only": file_bytes({"__metadata__": {"k": "v"}}),
    "empty-metadata": file_bytes({"__metadata__": {}}),
    "metadata-last": file_bytes(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"k":"v"}}', b"x"),
    "file-order-not-name-order": file_bytes(
        {"z": u8([0, 2]), "a": u8([2, 5]), "m": tensor("F32", [], [5, 9])}, b"\1" * 9
    ),
    "unsorted-dtypes": file_bytes({"a": u8([0, 1]), "b": tensor("F64", [1], [1, 9])}, b"\2" * 9),
    "zero-size-and-scalar": file_bytes(
        {"e": tensor("F32", [0, 3], [0, 0]), "s": tensor("I64", [], [0, 8])}, b"\3" * 8
    ),
    "sub-byte-dtypes": file_bytes(
        {"f4": tensor("F4", [2, 2], [0, 2]), "f6": tensor("F6_E3M2", [4], [2, 5])}, b"\4" * 5
    ),
}


def open_all(lib: Any, path: Path, framework: str) -> None:
    with lib.safe_open(path, framework) as f:
        f.metadata()
        for name in f.keys():
            f.get_tensor(name)


def readers(lib: Any, data: bytes, path: Path) -> Dict[str, Callable[[], Any]]:
    return {
        "deserialize": lambda: lib.deserialize(data),
        "np": lambda: open_all(lib, path, "np"),
        "pt": lambda: open_all(lib, path, "pt"),
    }


PREFIXES = {
    "deserialize": "Error while deserializing: ",
    "np": "Error while deserializing header: ",
    "pt": "Error while deserializing header: ",
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_like_the_reference(case: str, tmp_path: Path) -> None:
    data = BAD_FILES[case]
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(data)
    ours, theirs = readers(ironsafe, data, path), readers(reference, data, path)
    for way in ours:
        our_type, our_message = outcome(ours[way])
        their_type, their_message = outcome(theirs[way])
        assert their_type == "SafetensorError", (way, their_message)
        assert our_type == their_type, (way, our_message)
        assert our_message.startswith(PREFIXES[way]), our_message
        assert their_message.startswith(PREFIXES[way])
        with pytest.raises(SafetensorError):
            ours[way]()


@pytest.mark.parametrize("case", list(REJECTED_ON_PURPOSE))
def test_files_rejected_on_purpose(case: str, tmp_path: Path) -> None:
    data = REJECTED_ON_PURPOSE[case]
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(data)
    for way, call in readers(reference, data, path).items():
        assert outcome(call) == ("ok", ""), way
    for way, call in readers(ironsafe, data, path).items():
        our_type, our_message = outcome(call)
        assert our_type == "SafetensorError"
        assert our_message.startswith(PREFIXES[way])
        assert re.search("more than once|unknown field", our_message), our_message


@pytest.mark.parametrize("case", list(ODD_GOOD_FILES))
def test_odd_but_valid_files_read_like_the_reference(case: str, tmp_path: Path) -> None:
    data = ODD_GOOD_FILES[case]
    assert as_dict(ironsafe.deserialize(data)) == as_dict(reference.deserialize(data))
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(data)
    with ironsafe.safe_open(path, "np") as ours, reference.safe_open(path, "np") as theirs:
        assert ours.keys() == theirs.keys()
        assert ours.metadata() == theirs.metadata()
        assert set(ours.offset_keys()) == set(theirs.offset_keys())
        for name in ours.keys():
            ours_slice, theirs_slice = ours.get_slice(name), theirs.get_slice(name)
            assert ours_slice.get_shape() == theirs_slice.get_shape()
            assert ours_slice.get_dtype() == theirs_slice.get_dtype()
            if ours_slice.get_dtype() not in ("F4", "F6_E2M3", "F6_E3M2"):
                ours_tensor, theirs_tensor = ours.get_tensor(name), theirs.get_tensor(name)
                assert ours_tensor.dtype == theirs_tensor.dtype
                assert ours_tensor.tobytes() == theirs_tensor.tobytes()
    if case == "file-order-not-name-order":
        with ironsafe.safe_open(path, "np") as ours:
            assert ours.offset_keys() == ["z", "a", "m"]
            assert ours.keys() == ["a", "m", "z"]
