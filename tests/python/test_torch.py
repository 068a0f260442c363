"""``ironsafe.torch`` against the reference ``safetensors.torch`` 0.8 as oracle:
bytes, cross-loading, errors, shared tensors, zero-copy loads."""

from __future__ import annotations

import gc
import json
import math
import os
import struct
import warnings
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors.torch")  # the reference, as oracle

import safetensors.torch as ref  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import ironsafe  # noqa: E402
import ironsafe.torch as ours  # noqa: E402
from ironsafe import _cuda  # noqa: E402
from ironsafe import SafetensorError  # noqa: E402

# Every torch dtype of the contract, with its file code.
DTYPES = {
    "bool": "BOOL",
    "uint8": "U8",
    "int8": "I8",
    "int16": "I16",
    "uint16": "U16",
    "int32": "I32",
    "uint32": "U32",
    "int64": "I64",
    "uint64": "U64",
    "float16": "F16",
    "bfloat16": "BF16",
    "float32": "F32",
    "float64": "F64",
    "complex64": "C64",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2": "F8_E5M2",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "float8_e8m0fnu": "F8_E8M0",
    "float4_e2m1fn_x2": "F4",
}
# The reference's ``load(bytes)`` has no entry for these codes (KeyError).
REF_LOAD_LACKS = {"float8_e8m0fnu", "float4_e2m1fn_x2"}
BACKENDS = ["mmap", "pread"]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_the_oracle_is_the_reference() -> None:
    # If some test aliased ``safetensors`` to ironsafe, every comparison
    # below would compare ironsafe with itself.
    assert ref.save is not ours.save
    assert ref.__name__ == "safetensors.torch"
    assert Path(ref.__file__).parent.name == "safetensors"


# --- helpers ------------------------------------------------------------------


def sample(dtype_name: str, shape: tuple, seed: int = 0) -> Any:
    """A tensor of ``shape`` with random bytes (valid 0/1 for bool)."""
    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(seed)
    if dtype is torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    itemsize = torch.empty(0, dtype=dtype).element_size()
    raw = torch.randint(0, 256, (math.prod(shape) * itemsize,), dtype=torch.uint8, generator=generator)
    return raw.view(dtype).reshape(shape)


def shapes_for(dtype_name: str) -> Dict[str, tuple]:
    if dtype_name == "float4_e2m1fn_x2":  # no scalar: half a byte is not a byte
        return {"matrix": (2, 3), "vector": (5,), "empty": (0, 2), "empty_last": (3, 0)}
    return {"matrix": (2, 3), "cube": (2, 1, 3), "scalar": (), "empty": (0, 4), "empty_mid": (3, 0, 2)}


def dtype_dict(dtype_name: str, seed: int = 0) -> Dict[str, Any]:
    return {
        f"{name}_{dtype_name}": sample(dtype_name, shape, seed + i)
        for i, (name, shape) in enumerate(shapes_for(dtype_name).items())
    }


def all_dtypes_dict() -> Dict[str, Any]:
    tensors: Dict[str, Any] = {}
    for i, name in enumerate(DTYPES):
        tensors.update(dtype_dict(name, seed=10 * i))
    return tensors


def raw_bytes(tensor: Any) -> Any:
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def assert_same(actual: Any, expected: Any) -> None:
    """Same dtype, shape and bytes (bit-exact: NaNs and -0.0 included)."""
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert torch.equal(raw_bytes(actual), raw_bytes(expected))
    if not actual.dtype.is_floating_point and actual.dtype != torch.complex64:
        assert torch.equal(actual.cpu(), expected.cpu())


def assert_same_dict(actual: Dict[str, Any], expected: Dict[str, Any]) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert_same(actual[name], expected[name])


def outcome(call: Callable[[], Any]) -> Any:
    """What a call gives: its result, or its exception's type name and
    message (by name: each library has its own ``SafetensorError``)."""
    try:
        return ("ok", call())
    except Exception as err:  # noqa: BLE001 - any error is compared
        return (type(err).__name__, str(err))


# --- bytes --------------------------------------------------------------------


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_save_bytes_equal_reference(dtype_name: str) -> None:
    tensors = dtype_dict(dtype_name)
    assert ours.save(tensors) == ref.save(tensors)
    assert ours.save(tensors, metadata={"format": "pt"}) == ref.save(tensors, metadata={"format": "pt"})


def test_dtype_codes_in_header() -> None:
    data = ours.save({name: sample(name, (2, 4)) for name in DTYPES})
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    for name, code in DTYPES.items():
        assert header[name]["dtype"] == code
        assert header[name]["shape"] == ([2, 8] if code == "F4" else [2, 4])


@pytest.mark.parametrize(
    "metadata",
    [None, {}, {"format": "pt"}, {"ключ": "値 \"quoted\" \\ \n\t\x01 🤗"}],
    ids=["none", "empty", "one", "one_escaped"],
)
def test_save_all_dtypes_equal_reference(metadata: Any, tmp_path: Path) -> None:
    tensors = all_dtypes_dict()
    expected = ref.save(tensors, metadata=metadata)
    assert ours.save(tensors, metadata=metadata) == expected
    ours.save_file(tensors, tmp_path / "ours.safetensors", metadata=metadata)
    assert (tmp_path / "ours.safetensors").read_bytes() == expected
    ours.save_file(tensors, str(tmp_path / "str.safetensors"), metadata=metadata)
    assert (tmp_path / "str.safetensors").read_bytes() == expected


@pytest.mark.parametrize(
    "tensors",
    [
        {},
        {"test": torch.zeros((2, 2), dtype=torch.int32)},
        {"ü": torch.ones(3), "名前": torch.arange(4), "emoji 🤗": torch.zeros(()), "": torch.ones(1)},
        {'a"quote': torch.ones(2), "back\\slash": torch.ones(2), "new\nline": torch.ones(2), "\x01": torch.ones(1)},
        {"b": torch.ones(2), "a": torch.ones(2), "B": torch.ones(2), "a1": torch.ones(2, dtype=torch.float64)},
        {"param": nn.Parameter(torch.randn(3, 3))},
        {"slice_of_bigger": torch.arange(20.0)[5:9], "row": torch.arange(12).reshape(3, 4)[1]},
        {"big": torch.randn(256, 257), "small": torch.tensor([1, 2, 3], dtype=torch.int16)},
    ],
    ids=["empty", "contract_example", "non_ascii", "escapes", "name_order", "parameter", "views", "sizes"],
)
def test_save_cases_equal_reference(tensors: Dict[str, Any]) -> None:
    assert ours.save(tensors) == ref.save(tensors)
    assert ours.save(tensors, metadata={"k": "v"}) == ref.save(tensors, metadata={"k": "v"})


def test_contract_example_bytes() -> None:
    data = ours.save({"test": torch.zeros((2, 2), dtype=torch.int32)})
    header = b'{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}    '
    assert data == struct.pack("<Q", 64) + header + bytes(16)
    assert ours.save({}) == struct.pack("<Q", 8) + b"{}      "


def test_save_returns_bytes() -> None:
    assert type(ours.save({"a": torch.ones(2)})) is bytes


def test_save_resolves_lazy_conjugation() -> None:
    # ``conj()`` is a lazy view over the unconjugated values; what is saved is
    # the conjugate. (The reference writes the unconjugated memory.)
    values = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    loaded = ours.load(ours.save({"c": values.conj()}))
    assert torch.equal(loaded["c"], values.conj().resolve_conj())
    assert ours.save({"c": values.conj()}) == ref.save({"c": values.conj().resolve_conj()})


# --- loading ------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("writer", ["ours", "ref"])
@pytest.mark.parametrize("reader", ["ours", "ref"])
def test_files_cross_load(writer: str, reader: str, backend: str, tmp_path: Path) -> None:
    tensors = all_dtypes_dict()
    if reader == "ref" and backend == "pread":
        # The reference's pread path cannot read F4 (it keeps the file's
        # last dimension: "shape '[2, 6]' is invalid for input of size 6").
        tensors = {k: v for k, v in tensors.items() if v.dtype != torch.float4_e2m1fn_x2}
    path = tmp_path / "model.safetensors"
    (ours if writer == "ours" else ref).save_file(tensors, path, metadata={"format": "pt"})
    loaded = (ours if reader == "ours" else ref).load_file(path, backend=backend)
    assert_same_dict(loaded, tensors)
    # File order: dtype alignment descending, then name. (The reference
    # orders zero-size tensors at one offset arbitrarily.)
    with ironsafe.safe_open(path, "pt") as file:
        order = file.offset_keys()
    if reader == "ours":
        assert list(loaded) == order
    else:
        nonempty = [name for name in order if tensors[name].nelement()]
        assert [name for name in loaded if tensors[name].nelement()] == nonempty


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_file_accepts_str_and_pathlike(backend: str, tmp_path: Path) -> None:
    tensors = {"a": torch.arange(6.0).reshape(2, 3)}
    path = tmp_path / "a.safetensors"
    ours.save_file(tensors, path)
    assert_same_dict(ours.load_file(str(path), backend=backend), tensors)
    assert_same_dict(ours.load_file(path, device=None, backend=backend), tensors)  # type: ignore[arg-type]


def test_load_bytes_both_ways() -> None:
    tensors = all_dtypes_dict()
    data = ref.save(tensors)
    loaded = ours.load(data)
    assert_same_dict(loaded, tensors)
    # File order (the reference's ``load`` gives an arbitrary, hash order).
    assert list(loaded) == [name for name, _ in ironsafe.deserialize(data)]
    common = {name: tensor for name, tensor in tensors.items() if not name.endswith(tuple(REF_LOAD_LACKS))}
    assert_same_dict(ref.load(ours.save(common)), common)


@pytest.mark.parametrize("dtype_name", sorted(REF_LOAD_LACKS))
def test_load_bytes_dtypes_the_reference_lacks(dtype_name: str) -> None:
    # A difference: the reference's ``load(bytes)`` raises KeyError for these.
    tensors = dtype_dict(dtype_name)
    data = ours.save(tensors)
    with pytest.raises(KeyError):
        ref.load(data)
    assert_same_dict(ours.load(data), tensors)


def test_load_bytes_owns_its_data() -> None:
    data = ours.save({"a": torch.zeros(4)})
    loaded = ours.load(data)
    loaded["a"] += 1
    assert ours.load(data)["a"].sum() == 0


def test_load_bytes_errors() -> None:
    for data in (b"garbage", b"", struct.pack("<Q", 2) + b"{}" + b"x"):
        kind, message = outcome(lambda: ours.load(data))
        assert kind == "SafetensorError" and message.startswith("Error while deserializing")
        assert outcome(lambda: ref.load(data))[0] == kind
    not_bytes: Any = "not bytes"
    assert outcome(lambda: ours.load(not_bytes))[0] == outcome(lambda: ref.load(not_bytes))[0] == "TypeError"


def test_load_sub_byte_f6_has_no_torch_dtype() -> None:
    header = json.dumps({"x": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 3]}}).encode()
    data = struct.pack("<Q", len(header)) + header + bytes(3)
    with pytest.raises(SafetensorError, match="F6_E2M3"):
        ours.load(data)
    with pytest.raises(KeyError):  # the reference
        ref.load(data)


# --- save-time errors ---------------------------------------------------------


def _coo() -> Any:
    return torch.eye(3).to_sparse()


def _csr() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.eye(3).to_sparse_csr()


def _shared(make: Callable[[Any], Dict[str, Any]]) -> Callable[[], Dict[str, Any]]:
    return lambda: make(torch.arange(16.0).reshape(4, 4))


ERROR_CASES: Dict[str, Callable[[], Any]] = {
    "list": lambda: [torch.zeros(2)],
    "none": lambda: None,
    "tuple_of_pairs": lambda: (("a", torch.zeros(2)),),
    "non_tensor": lambda: {"a": torch.zeros(2), "b": 1.5},
    "non_tensor_string": lambda: {"a": "tensor"},
    "non_tensor_list": lambda: {"a": [1, 2]},
    "sparse_coo": lambda: {"a": torch.zeros(2), "s": _coo()},
    "sparse_csr": lambda: {"s": _csr()},
    "two_sparse": lambda: {"s1": _coo(), "ok": torch.ones(2), "s2": _csr()},
    "non_tensor_after_sparse": lambda: {"s": _coo(), "x": 3},
    "transposed": lambda: {"ok": torch.ones(2), "t": torch.zeros(2, 3).t()},
    "stepped": lambda: {"a": torch.arange(10.0)[::2]},
    "expanded": lambda: {"a": torch.zeros(3).expand(2, 3)},
    "channels_last": lambda: {"a": torch.zeros(1, 3, 4, 4).to(memory_format=torch.channels_last)},
    "same_tensor_twice": _shared(lambda x: {"a": x, "b": x}),
    "view": _shared(lambda x: {"a": x, "b": x.view(16)}),
    "overlapping_slices": _shared(lambda x: {"a": x.view(16)[0:6], "b": x.view(16)[4:10]}),
    "three_names": _shared(lambda x: {"c": x, "a": x[1:], "b": x[:1]}),
    "two_groups": lambda: (lambda x, y: {"a": x, "z": torch.ones(2), "b": x, "y1": y, "y0": y[1:]})(
        torch.zeros(3), torch.zeros(5)
    ),
    "sparse_before_shared": _shared(lambda x: {"s": _coo(), "a": x, "b": x}),
    "shared_before_non_contiguous": _shared(lambda x: {"t": torch.zeros(2, 3).t(), "a": x, "b": x}),
    "meta": lambda: {"a": torch.empty(2, device="meta")},
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_save_errors_equal_reference(case: str, tmp_path: Path) -> None:
    expected = outcome(lambda: ref.save(ERROR_CASES[case]()))
    assert expected[0] != "ok"
    assert outcome(lambda: ours.save(ERROR_CASES[case]())) == expected
    path = tmp_path / "out.safetensors"
    assert outcome(lambda: ours.save_file(ERROR_CASES[case](), path)) == expected
    assert outcome(lambda: ref.save_file(ERROR_CASES[case](), path)) == expected
    assert not path.exists()


def test_shared_memory_message() -> None:
    x = torch.zeros(3)
    with pytest.raises(RuntimeError) as info:
        ours.save({"a": x, "b": x})
    message = str(info.value)
    assert "Some tensors share memory, this will lead to duplicate memory on disk and potential differences" in message
    assert "A potential way to correctly save your model is to use `save_model`." in message
    assert "https://huggingface.co/docs/safetensors/torch_shared_tensors" in message


def test_non_contiguous_view_of_shared_storage() -> None:
    # A difference: the reference fails inside torch (``view`` of a
    # transposed tensor) while computing overlaps; ironsafe reports the
    # shared memory. Both raise RuntimeError.
    x = torch.zeros(4, 4)
    with pytest.raises(RuntimeError, match="Some tensors share memory"):
        ours.save({"a": x, "b": x.t()})
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        ref.save({"a": x, "b": x.t()})


def test_unsupported_dtypes_are_errors() -> None:
    # Differences: the reference raises KeyError (its size table).
    for tensor in (torch.zeros(2, dtype=torch.complex128), torch.zeros(2, dtype=getattr(torch, "uint1"))):
        with pytest.raises(SafetensorError, match="Unknown dtype"):
            ours.save({"a": tensor})
        with pytest.raises(KeyError):
            ref.save({"a": tensor})
    f4_scalar = torch.zeros((), dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    assert outcome(lambda: ours.save({"a": f4_scalar}))[0] == outcome(lambda: ref.save({"a": f4_scalar}))[0]


def test_bad_names_and_metadata_are_type_errors() -> None:
    for args in (({1: torch.zeros(2)},), ({"a": torch.zeros(2)}, {"k": 1}), ({"a": torch.zeros(2)}, ["k"])):
        assert outcome(lambda: ours.save(*args))[0] == outcome(lambda: ref.save(*args))[0] == "TypeError"


# --- shared tensors -----------------------------------------------------------


class TiedModel(nn.Module):
    def __init__(self, extra: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(4)
        self.lm_head = nn.Linear(4, 10, bias=False)
        self.lm_head.weight = self.embed.weight
        if extra:
            self.extra = nn.Linear(2, 2)


class Untied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(4)


def _model(seed: int, cls: type = TiedModel, **kwargs: Any) -> Any:
    torch.manual_seed(seed)
    return cls(**kwargs)


def assert_same_model(actual: Any, expected: Any) -> None:
    assert_same_dict(actual.state_dict(), expected.state_dict())


def _state_dicts() -> Dict[str, Dict[str, Any]]:
    x = torch.arange(24.0)
    y = torch.zeros(6, 4)
    return {
        "tied_model": TiedModel().state_dict(),
        "distinct": {"a": torch.ones(2), "b": torch.ones(2), "c": torch.zeros(())},
        "same_twice": {"b": x, "a": x, "c": torch.ones(1)},
        "complete_and_part": {"whole": x, "head": x[:4], "other": y, "row": y[2]},
        "disjoint_parts": {"p1": x[:12], "p2": x[12:], "y": y},
        "overlapping_parts": {"p1": x[:14], "p2": x[10:], "whole": x},
        "views": {"flat": y.view(24), "matrix": y, "rows": y.view(2, 3, 4), "single": torch.ones(3)},
        "empty_and_meta": {"e": torch.zeros(0), "m": torch.empty(3, device="meta"), "s": torch.zeros(())},
        "empty_view_of_shared": {"whole": x, "none": x[3:3]},
        "many_groups": {f"n{i}": t for i, t in enumerate([x, y, x, y.view(-1), torch.ones(1), x[:1]])},
    }


STATE_DICTS = list(_state_dicts())


@pytest.mark.parametrize("name", STATE_DICTS)
def test_find_shared_tensors_equal_reference(name: str) -> None:
    state_dict = _state_dicts()[name]
    assert ours._find_shared_tensors(state_dict) == ref._find_shared_tensors(state_dict)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"preferred_names": ["b"]},
        {"preferred_names": ["zzz"]},
        {"discard_names": ["a"]},
        {"discard_names": ["a", "b", "p1", "flat", "embed.weight"]},
        {"preferred_names": ["head", "rows", "n2", "lm_head.weight"], "discard_names": ["rows"]},
        {"preferred_names": {"whole": 0, "p1": 0, "n3": 0}.keys(), "discard_names": {"a", "n0"}},
    ],
    ids=["none", "preferred", "preferred_unknown", "discard", "discard_many", "both", "keys_and_set"],
)
@pytest.mark.parametrize("name", STATE_DICTS)
def test_remove_duplicate_names_equal_reference(name: str, options: Dict[str, Any]) -> None:
    state_dict = _state_dicts()[name]
    expected = outcome(lambda: dict(ref._remove_duplicate_names(state_dict, **options)))
    assert outcome(lambda: dict(ours._remove_duplicate_names(state_dict, **options))) == expected


def test_remove_duplicate_names_without_a_complete_name() -> None:
    x = torch.arange(10.0)
    for state_dict in ({"a": x[:5]}, {"a": x[:6], "b": x[4:]}):
        expected = outcome(lambda: ref._remove_duplicate_names(state_dict))
        assert expected[0] == "RuntimeError" and "no suitable name to keep" in expected[1]
        assert outcome(lambda: ours._remove_duplicate_names(state_dict)) == expected


def test_nested_overlaps_form_one_group() -> None:
    # A difference: a slice inside the whole tensor, after an earlier slice,
    # still overlaps the whole; the reference's sweep compares it with the
    # previous slice only and splits it off.
    whole = torch.zeros(100)
    state_dict = {"A": whole, "B": whole[10:20], "C": whole[30:40]}
    assert ours._find_shared_tensors(state_dict) == [{"A", "B", "C"}]
    assert ref._find_shared_tensors(state_dict) == [{"A", "B"}, {"C"}]
    assert dict(ours._remove_duplicate_names(state_dict)) == {"A": ["B", "C"]}


def test_pointer_helpers_equal_reference() -> None:
    x = torch.arange(24.0).reshape(4, 6)
    for tensor in (x, x[1], x[1:3], x.view(-1)[5:], torch.zeros(0), torch.zeros(()), x[2:2], torch.ones(3, dtype=torch.int8)):
        assert ours.storage_ptr(tensor) == ref.storage_ptr(tensor)
        assert ours.storage_size(tensor) == ref.storage_size(tensor)
        assert ours._end_ptr(tensor) == ref._end_ptr(tensor)
        assert ours._is_complete(tensor) == ref._is_complete(tensor)
    meta = torch.empty(3, device="meta")
    assert ours.storage_ptr(meta) == ref.storage_ptr(meta) == 0
    assert ours._end_ptr(x.t()) == x.data_ptr() + 24 * 4  # any strides


def test_dtype_tables() -> None:
    for name, code in DTYPES.items():
        dtype = getattr(torch, name)
        assert ours._getdtype(code) is dtype
        assert ours._SIZE[dtype] == torch.empty(0, dtype=dtype).element_size()
    for code, dtype in ref._TYPES.items():  # a superset of the reference's
        assert ours._TYPES[code] is dtype
    for dtype, size in ref._SIZE.items():
        if dtype is not None:
            assert ours._SIZE[dtype] == size
    with pytest.raises(KeyError):
        ours._getdtype("F6_E2M3")


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_model_load_model_tied(backend: str, tmp_path: Path) -> None:
    model = _model(0)
    ours_path, ref_path = tmp_path / "ours.safetensors", tmp_path / "ref.safetensors"
    ours.save_model(model, ours_path)
    ref.save_model(model, ref_path)
    assert ours_path.read_bytes() == ref_path.read_bytes()
    with ironsafe.safe_open(ours_path, "pt") as file:
        assert file.keys() == ["embed.weight", "norm.bias", "norm.weight"]
        assert file.metadata() == {"lm_head.weight": "embed.weight"}

    for path in (ours_path, ref_path):
        loaded = _model(1)
        result = ours.load_model(loaded, path, backend=backend)
        assert result == (set(), [])
        assert result == ref.load_model(_model(1), path, backend=backend)
        assert_same_model(loaded, model)
        assert loaded.lm_head.weight is loaded.embed.weight
        # The reference loads what ironsafe saved.
        by_ref = _model(2)
        ref.load_model(by_ref, ours_path)
        assert_same_model(by_ref, model)


def test_load_model_prefers_the_name_in_the_file(tmp_path: Path) -> None:
    model = _model(0)
    path = tmp_path / "other_name.safetensors"
    state_dict = model.state_dict()
    del state_dict["embed.weight"]
    ours.save_file(state_dict, path)
    loaded = _model(1)
    assert ours.load_model(loaded, path) == ref.load_model(_model(1), path) == (set(), [])
    assert_same_model(loaded, model)


def test_load_model_both_tied_names_in_file(tmp_path: Path) -> None:
    model = _model(0)
    path = tmp_path / "both.safetensors"
    ours.save_file({k: v.clone() for k, v in model.state_dict().items()}, path)
    expected = outcome(lambda: ref.load_model(_model(1), path))
    assert outcome(lambda: ours.load_model(_model(1), path)) == expected
    assert ours.load_model(_model(1), path, strict=False) == ref.load_model(_model(1), path, strict=False)


@pytest.mark.parametrize(
    "saved, loaded",
    [
        (lambda: _model(0), lambda: _model(1, extra=True)),  # missing
        (lambda: _model(0, extra=True), lambda: _model(1)),  # unexpected
        (lambda: _model(0, extra=True), lambda: _model(1, Untied)),  # unexpected, tied name in file
        (lambda: _model(0, Untied), lambda: _model(1, extra=True)),  # missing
        (lambda: _model(0, extra=True), lambda: nn.Sequential(nn.Linear(2, 2))),  # both
    ],
    ids=["missing", "unexpected", "untied_target", "missing_tied", "both"],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_load_model_mismatch_equal_reference(saved: Any, loaded: Any, backend: str, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    ours.save_model(saved(), path)
    expected = outcome(lambda: ref.load_model(loaded(), path, backend=backend))
    assert expected[0] == "RuntimeError"
    assert expected[1].startswith("Error(s) in loading state_dict for ")
    assert outcome(lambda: ours.load_model(loaded(), path, backend=backend)) == expected
    lenient = ours.load_model(loaded(), path, strict=False, backend=backend)
    assert lenient == ref.load_model(loaded(), path, strict=False, backend=backend)
    assert isinstance(lenient[0], set) and isinstance(lenient[1], list)


def test_save_model_metadata(tmp_path: Path) -> None:
    model = _model(0)
    user = {"lm_head.weight": "mine", "format": "pt"}
    path = tmp_path / "m.safetensors"
    ours.save_model(model, path, metadata=user)
    assert user == {"lm_head.weight": "mine", "format": "pt"}  # not modified (the reference modifies it)
    ref_path = tmp_path / "r.safetensors"
    ref.save_model(model, ref_path, metadata=dict(user))
    with ironsafe.safe_open(path, "pt") as file, ironsafe.safe_open(ref_path, "pt") as ref_file:
        assert file.metadata() == ref_file.metadata() == user
    one = {"format": "pt"}
    ours.save_model(model, path, metadata=one)
    assert one == {"format": "pt"}
    with ironsafe.safe_open(path, "pt") as file:
        assert file.metadata() == {"format": "pt", "lm_head.weight": "embed.weight"}
    ours.save_model(_model(0, Untied), path)
    ref.save_model(_model(0, Untied), ref_path)
    assert path.read_bytes() == ref_path.read_bytes()
    with ironsafe.safe_open(path, "pt") as file:
        assert file.metadata() is None


def _non_contiguous_model() -> Any:
    model = _model(0, Untied)
    model.proj = nn.Linear(3, 2)
    model.proj.weight = nn.Parameter(torch.randn(3, 2).t())
    return model


def test_save_model_force_contiguous(tmp_path: Path) -> None:
    model = _non_contiguous_model()
    path = tmp_path / "m.safetensors"
    ours.save_model(model, path)
    ref.save_model(model, tmp_path / "r.safetensors")
    assert path.read_bytes() == (tmp_path / "r.safetensors").read_bytes()
    loaded = _non_contiguous_model()
    with torch.no_grad():
        for parameter in loaded.parameters():
            parameter.zero_()
    assert ours.load_model(loaded, path) == (set(), [])
    assert_same_model(loaded, model)

    expected = outcome(lambda: ref.save_model(model, path, force_contiguous=False))
    assert expected[0] == "ValueError"
    assert expected[1].endswith(" Or use save_model(..., force_contiguous=True), read the docs for potential caveats.")
    assert outcome(lambda: ours.save_model(model, path, force_contiguous=False)) == expected


def test_save_model_without_a_complete_name(tmp_path: Path) -> None:
    model = _model(0, Untied)
    model.norm.weight = nn.Parameter(torch.randn(8)[:4])
    expected = outcome(lambda: ref.save_model(model, tmp_path / "r.safetensors"))
    assert outcome(lambda: ours.save_model(model, tmp_path / "m.safetensors")) == expected
    assert expected[0] == "RuntimeError"


# --- zero copy ------------------------------------------------------------------


def _mappings() -> list:
    """(start, end, path) of this process's memory mappings."""
    regions = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = (int(value, 16) for value in fields[0].split("-"))
            regions.append((start, end, fields[5].strip() if len(fields) > 5 else ""))
    return regions


def _region_of(address: int) -> Any:
    return next((region for region in _mappings() if region[0] <= address < region[1]), None)


linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")


@linux_only
def test_default_load_views_one_private_mapping(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    tensors = {"a": torch.arange(1000.0), "b": torch.ones(30, 30, dtype=torch.float64), "c": torch.arange(7)}
    ours.save_file(tensors, path)
    before = path.read_bytes()
    loaded = ours.load_file(path)
    gc.collect()  # the map outlives the closed file: the tensors hold it
    regions = {_region_of(tensor.untyped_storage().data_ptr()) for tensor in loaded.values()}
    assert len(regions) == 1
    (region,) = regions
    assert region is not None and region[2] == str(path.resolve())
    assert_same_dict(loaded, tensors)
    # Copy-on-write: writing to a loaded tensor changes neither the file nor
    # a later load.
    loaded["a"][0] = 123.0
    loaded["b"].zero_()
    assert path.read_bytes() == before
    assert_same_dict(ours.load_file(path), tensors)


@linux_only
def test_pread_load_gives_owned_tensors(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    tensors = {"a": torch.arange(1000.0), "b": torch.ones(30, 30, dtype=torch.float64)}
    ours.save_file(tensors, path)
    loaded = ours.load_file(path, backend="pread")
    for tensor in loaded.values():
        region = _region_of(tensor.untyped_storage().data_ptr())
        assert region is None or region[2] != str(path.resolve())
        assert tensor.untyped_storage().nbytes() == tensor.nelement() * tensor.element_size()
    assert loaded["a"].untyped_storage().data_ptr() != loaded["b"].untyped_storage().data_ptr()
    loaded["a"][0] = 5.0
    assert_same_dict(ours.load_file(path, backend="pread"), tensors)


def test_loaded_tensors_do_not_share_storage(tmp_path: Path) -> None:
    # Tensors viewing one map must not look shared to save_file.
    path = tmp_path / "m.safetensors"
    ours.save_file({"a": torch.ones(4), "b": torch.zeros(4)}, path)
    for backend in BACKENDS:
        loaded = ours.load_file(path, backend=backend)
        assert ours._find_shared_tensors(loaded) == [{"a"}, {"b"}]
        ours.save_file(loaded, tmp_path / f"again_{backend}.safetensors")
        assert (tmp_path / f"again_{backend}.safetensors").read_bytes() == path.read_bytes()


# --- byte order ---------------------------------------------------------------


def test_byteswap_helper() -> None:
    value = torch.tensor([1.0], dtype=torch.float32)
    swapped = ours._byteswapped(value)
    assert bytes(raw_bytes(swapped).tolist()) == bytes(reversed(bytes(raw_bytes(value).tolist())))
    complex_value = torch.tensor([1 + 2j], dtype=torch.complex64)
    halves = bytes(raw_bytes(ours._byteswapped(complex_value)).tolist())
    original = bytes(raw_bytes(complex_value).tolist())
    assert halves == original[3::-1] + original[7:3:-1]  # each component on its own
    for name in DTYPES:
        tensor = sample(name, (2, 3))
        assert_same(ours._byteswapped(ours._byteswapped(tensor)), tensor)
    assert ours._byteswapped(torch.ones(0)).shape == (0,)


# --- devices ------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", 0])
@pytest.mark.parametrize("backend", BACKENDS)
def test_load_file_to_cuda(device: Any, backend: str, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    tensors = all_dtypes_dict()
    ours.save_file(tensors, path)
    loaded = ours.load_file(path, device=device, backend=backend)
    for name, tensor in loaded.items():
        assert tensor.device.type == "cuda"
        assert_same(tensor, tensors[name])


@needs_cuda
def test_save_cuda_tensors() -> None:
    tensors = all_dtypes_dict()
    on_gpu = {name: tensor.to("cuda") for name, tensor in tensors.items()}
    assert ours.save(on_gpu) == ours.save(tensors) == ref.save(on_gpu)


@needs_cuda
def test_cuda_models(tmp_path: Path) -> None:
    model = _model(0).to("cuda")
    path = tmp_path / "m.safetensors"
    ours.save_model(model, path)
    ref.save_model(model, tmp_path / "r.safetensors")
    assert path.read_bytes() == (tmp_path / "r.safetensors").read_bytes()
    loaded = _model(1).to("cuda")
    assert ours.load_model(loaded, path, device="cuda") == (set(), [])
    assert_same_model(loaded, model)
    assert loaded.lm_head.weight is loaded.embed.weight


def test_cuda_staging_plan_covers_every_range_once() -> None:
    # The plan that loads to a GPU cuts file ranges into staging chunks: each
    # byte of each range lands once, in order; chunks are contiguous file,
    # at most one slot long, and never span a gap between ranges.
    generator = torch.Generator().manual_seed(3)
    ranges, at = [], 100
    for _ in range(300):
        at += int(torch.randint(0, 2, (1,), generator=generator)) * int(torch.randint(1, 50, (1,), generator=generator))
        length = int(torch.randint(0, 90, (1,), generator=generator))
        ranges.append((at, at + length))
        at += length
    for slot in (1, 7, 64, 10_000):
        chunks = _cuda.plan(ranges, slot)
        covered = [[] for _ in ranges]
        for chunk in chunks:
            assert 0 < chunk.length <= slot
            inside = 0
            for target, start, offset, length in chunk.pieces:
                assert offset == inside  # the pieces fill the chunk in order, no gap
                assert ranges[target][0] + start == chunk.offset + offset
                covered[target].append((start, length))
                inside += length
            assert inside == chunk.length
        for (begin, end), parts in zip(ranges, covered):
            assert sum(length for _, length in parts) == end - begin
            assert [start for start, _ in parts] == [sum(n for _, n in parts[:i]) for i in range(len(parts))]
    # Adjacent ranges share a chunk; a gap starts a new one.
    assert [(c.offset, c.length) for c in _cuda.plan([(0, 3), (3, 5), (9, 10)], 100)] == [(0, 5), (9, 1)]


@needs_cuda
@pytest.mark.parametrize("slot", [4096, 1 << 20])
def test_cuda_loads_through_a_bounded_ring(slot: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tensors smaller than, equal to and larger than a staging buffer, and
    # more buffers' worth than the ring holds: every byte arrives, each
    # tensor has memory of its own, and no more pinned memory is taken than
    # the ring's.
    monkeypatch.setattr(_cuda, "SLOT", slot)
    monkeypatch.setattr(_cuda, "SLOTS", 3)
    tensors = {**all_dtypes_dict(), "big": sample("float32", (slot // 4 * 5 + 3,)), "exact": sample("uint8", (slot,))}
    tensors.update({f"small{i}": sample("bfloat16", (i % 7, 33), seed=i) for i in range(50)})
    path = tmp_path / "m.safetensors"
    ours.save_file(tensors, path)
    pinned = []
    real_empty = torch.empty

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real_empty(*args, **kwargs)
        if kwargs.get("pin_memory"):
            pinned.append(result.nbytes)
        return result

    monkeypatch.setattr(torch, "empty", spy)
    loaded = ours.load_file(path, device="cuda")
    assert pinned and sum(pinned) <= 3 * slot < path.stat().st_size
    for name, tensor in loaded.items():
        assert tensor.device.type == "cuda"
        assert_same(tensor, tensors[name])
    assert ours.load(ours.save(loaded)).keys() == tensors.keys()  # no tensor shares memory
    with ironsafe.safe_open(path, "pt", device="cuda:0") as file:
        assert_same(file.get_tensor("big"), tensors["big"])
        assert file.get_tensor("exact").device == torch.device("cuda:0")


@needs_cuda
def test_cuda_load_of_a_cold_file_reads_past_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evict: Callable[[Path], None]
) -> None:
    # A cold file is read with direct I/O into the ring, in whole aligned
    # blocks around each chunk: every byte still lands where it belongs, and
    # the file stays out of the page cache. Large enough (32 MB) that the
    # readahead of reading its header cannot warm most of it.
    monkeypatch.setattr(_cuda, "SLOT", 1_000_003)  # not a multiple of the alignment
    tensors = {
        "big": sample("float32", (8_000_001,)),
        **{f"t{i}": sample("int8", (i * 97,), seed=i) for i in range(40)},
    }
    path = tmp_path / "m.safetensors"
    ours.save_file(tensors, path)
    evict(path)
    assert ironsafe._ironsafe.Reader(path).is_cold(), "the file must start cold"
    loaded = ours.load_file(path, device="cuda")
    assert_same_dict(loaded, tensors)
    assert ironsafe._ironsafe.Reader(path).is_cold(), "read past the page cache"


@needs_cuda
def test_cuda_load_matches_the_reference(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    ours.save_file({**all_dtypes_dict(), "w": sample("bfloat16", (1024, 1000))}, path)
    expected = {name: tensor for name, tensor in ref.load_file(path, device="cuda").items() if "e8m0" not in name}
    loaded = ours.load_file(path, device="cuda:0")
    for name, tensor in expected.items():
        assert loaded[name].device == tensor.device
        assert_same(loaded[name], tensor)


@needs_cuda
def test_cuda_load_of_a_file_cut_short_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    ours.save_file({"a": sample("float32", (1000,)), "b": sample("float32", (1000,))}, path)
    with ironsafe.safe_open(path, "pt", device="cuda") as file:
        os.truncate(path, path.stat().st_size - 100)
        with pytest.raises(SafetensorError, match="m.safetensors"):
            file.get_tensors()


def test_batches_of_many_tensors_set_off_no_garbage_collections(tmp_path: Path) -> None:
    # An adapter's 20,000 tensors (or their descriptions for a save) would
    # set off collections that scan the whole heap. The collector is paused
    # while a batch is made, and left as the caller had it.
    tensors = {f"lora.{i}": torch.full((2, 2), float(i)) for i in range(5000)}
    path = tmp_path / "many.safetensors"
    collections = []

    def count(phase: str, info: Dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        ours.save_file(tensors, path)
        saved = len(collections)
        with ours.safe_open(path, framework="pt") as f:
            gc.collect()
            collections.clear()
            loaded = f.get_tensors()
    finally:
        gc.callbacks.remove(count)
    # At most one: the objects made meanwhile still count towards the next.
    assert saved <= 1 and len(collections) <= 1
    assert gc.isenabled()
    assert torch.equal(loaded["lora.4999"], tensors["lora.4999"])
    gc.disable()
    try:
        ours.save_file(tensors, path)
        assert not gc.isenabled()
    finally:
        gc.enable()
