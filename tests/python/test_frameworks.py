"""``ironsafe.flax``, ``.tensorflow``, ``.mlx`` and ``.paddle`` against the
reference's modules as oracle: signatures, round trips, bytes, and files
read both ways. Each framework's tests skip when it is not installed."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter

ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes gives numpy bfloat16 and float8")
pytest.importorskip("safetensors", reason="the reference safetensors is the oracle")

import ironsafe  # noqa: E402
import ironsafe.numpy  # noqa: E402

BACKENDS = ["mmap", "pread"]

# Importing paddle (3.3) after tensorflow (2.21) kills the process with a
# segmentation fault; the other way round both work. So paddle is imported
# first, unless some other test module already imported tensorflow.
PADDLE_AFTER_TENSORFLOW = "tensorflow" in sys.modules and "paddle" not in sys.modules
if not PADDLE_AFTER_TENSORFLOW:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # paddle warns on import when ccache is missing
        try:
            import paddle  # noqa: F401
        except ImportError:
            pass

INSTALL = "see tests/requirements.txt"


def np_dtype(name: str) -> np.dtype:
    return np.dtype(getattr(ml_dtypes, name)) if name.startswith(("bfloat", "float8")) else np.dtype(name)


def expected(name: str, shape: Any = (2, 3)) -> np.ndarray:
    """Small values every dtype holds exactly."""
    count = int(np.prod(shape, dtype=np.int64))
    return (np.arange(count) % 6).astype(np_dtype(name)).reshape(shape)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@dataclass
class Framework:
    """How the tests reach one framework."""

    name: str  # the module name under ironsafe / safetensors
    # Every dtype it round-trips, and those the reference can also save.
    dtypes: List[str]
    ref_save_dtypes: List[str]
    # Where the reference fails: scalars on save, dtypes its load(bytes) lacks.
    ref_saves_scalars: bool = True
    ref_load_lacks: List[str] = field(default_factory=list)
    ref_load_file_empty: bool = True  # whether its load_file reads zero-size tensors
    make: Callable[[np.ndarray], Any] = field(repr=False, default=lambda a: a)
    to_numpy: Callable[[Any], np.ndarray] = field(repr=False, default=np.asarray)
    is_tensor: Callable[[Any], bool] = field(repr=False, default=lambda t: True)


NATIVE_32 = ["bool", "uint8", "int8", "int16", "uint16", "float16", "int32", "uint32", "float32", "complex64"]
FLOAT8 = ["float8_e4m3fn", "float8_e5m2"]


def _jax() -> Framework:
    import jax
    import jax.numpy as jnp

    # JAX keeps 64-bit values only with jax_enable_x64: round trips use 32-bit and smaller.
    dtypes = [*NATIVE_32, "bfloat16", *FLOAT8, "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"]
    return Framework(
        "flax",
        dtypes,
        dtypes,
        make=jnp.array,
        to_numpy=np.asarray,
        is_tensor=lambda t: isinstance(t, jax.Array),
    )


def _tensorflow() -> Framework:
    import tensorflow as tf

    dtypes = [*NATIVE_32, "float64", "int64", "uint64", "bfloat16", *FLOAT8, "float8_e4m3fnuz", "float8_e5m2fnuz"]
    return Framework(
        "tensorflow",
        dtypes,
        dtypes,
        ref_saves_scalars=False,  # a scalar's .numpy() is a numpy scalar: the reference fails on it
        make=tf.convert_to_tensor,
        to_numpy=lambda t: t.numpy(),
        is_tensor=lambda t: isinstance(t, tf.Tensor),
    )


def _mlx() -> Framework:
    import mlx.core as mx

    def to_numpy(t: Any) -> np.ndarray:
        if t.dtype == mx.bfloat16:
            return np.asarray(t.view(mx.uint16)).view(ml_dtypes.bfloat16)
        return np.asarray(t)

    # MLX has no float8, and makes float64 arrays float32.
    native = [*NATIVE_32, "int64", "uint64"]
    return Framework(
        "mlx",
        [*native, "bfloat16"],
        native,  # the reference's mlx.save fails on bfloat16 (no buffer numpy reads)
        make=mx.array,
        to_numpy=to_numpy,
        is_tensor=lambda t: isinstance(t, mx.array),
    )


# paddle dtype -> how the tests make such a tensor from numpy, independently
# of ironsafe: paddle.to_tensor takes only some numpy dtypes.
PADDLE_VIEWS = {"uint16": "int16", "uint32": "int32", "uint64": "int64"}


def _paddle() -> Framework:
    import paddle

    def make(array: np.ndarray) -> Any:
        name = array.dtype.name
        if name in PADDLE_VIEWS:
            return paddle.to_tensor(array.view(PADDLE_VIEWS[name])).view(getattr(paddle, name))
        if name.startswith(("bfloat", "float8")):
            return paddle.to_tensor(array.astype(np.float32)).astype(name)
        return paddle.to_tensor(array)

    def to_numpy(t: Any) -> np.ndarray:
        # paddle gives bfloat16 as uint16 and float8 as int8: same bits.
        return t.numpy()

    native = ["bool", "uint8", "int8", "int16", "float16", "int32", "float32", "complex64", "float64", "int64"]
    return Framework(
        "paddle",
        [*native, "uint16", "uint32", "uint64", "bfloat16", *FLOAT8],
        [*native, "bfloat16", *FLOAT8],  # the reference cannot save unsigned 16/32/64
        ref_load_lacks=["complex64"],
        ref_load_file_empty=False,  # mmap: "input.strides[0] must be 1 to view uint8 as int32"
        make=make,
        to_numpy=to_numpy,
        is_tensor=lambda t: isinstance(t, paddle.Tensor),
    )


FRAMEWORKS: Dict[str, Callable[[], Framework]] = {
    "flax": _jax,
    "tensorflow": _tensorflow,
    "mlx": _mlx,
    "paddle": _paddle,
}
# ironsafe.flax (like safetensors.flax) needs jax only, not flax itself.
REQUIRES = {"flax": ["jax"], "tensorflow": ["tensorflow"], "mlx": ["mlx.core"], "paddle": ["paddle"]}


@pytest.fixture(scope="module", params=list(FRAMEWORKS))
def fw(request: pytest.FixtureRequest) -> Framework:
    name = request.param
    if name == "paddle" and PADDLE_AFTER_TENSORFLOW:
        pytest.skip("paddle cannot be imported after tensorflow in one process (segmentation fault)")
    for module in REQUIRES[name]:
        pytest.importorskip(module, reason=f"{module} is not installed ({INSTALL})")
    return FRAMEWORKS[name]()


@pytest.fixture(scope="module")
def ours(fw: Framework) -> Any:
    return importlib.import_module(f"ironsafe.{fw.name}")


@pytest.fixture(scope="module")
def ref(fw: Framework) -> Any:
    module = importlib.import_module(f"safetensors.{fw.name}")
    assert module.save is not importlib.import_module(f"ironsafe.{fw.name}").save  # a real oracle
    return module


def tensors_for(fw: Framework, dtypes: List[str], scalars: bool = True) -> Dict[str, np.ndarray]:
    arrays = {f"t_{name}": expected(name) for name in dtypes}
    if scalars:
        arrays["scalar"] = expected("float32", ())
    arrays["empty"] = expected("int32", (0, 3))
    return arrays


def assert_loaded(fw: Framework, loaded: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> None:
    assert set(loaded) == set(arrays)
    for name, tensor in loaded.items():
        assert fw.is_tensor(tensor), name
        got = fw.to_numpy(tensor)
        assert same(got, arrays[name]), (name, got, arrays[name])


def test_signatures_match_reference(ours: Any, ref: Any) -> None:
    for function in ("save", "save_file", "load", "load_file"):
        ours_params = inspect.signature(getattr(ours, function)).parameters.values()
        ref_params = inspect.signature(getattr(ref, function)).parameters.values()
        assert [(p.name, p.kind, p.default) for p in ours_params] == [
            (p.name, p.kind, p.default) for p in ref_params
        ], function
        assert getattr(ours, function).__doc__


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip(fw: Framework, ours: Any, tmp_path: Path, backend: str) -> None:
    arrays = tensors_for(fw, fw.dtypes)
    tensors = {name: fw.make(array) for name, array in arrays.items()}
    given = dict(tensors)
    data = ours.save(tensors, metadata={"framework": fw.name})
    assert tensors.keys() == given.keys() and all(tensors[k] is given[k] for k in given)  # not modified
    assert_loaded(fw, ours.load(data), arrays)
    path = tmp_path / "round.safetensors"
    ours.save_file(tensors, path, metadata={"framework": fw.name})
    assert path.read_bytes() == data
    assert_loaded(fw, ours.load_file(path, backend=backend), arrays)
    with ironsafe.safe_open(path, fw.name) as file:
        assert file.metadata() == {"framework": fw.name}


def test_bytes_match_reference(fw: Framework, ours: Any, ref: Any) -> None:
    arrays = tensors_for(fw, fw.ref_save_dtypes, fw.ref_saves_scalars)
    tensors = {name: fw.make(array) for name, array in arrays.items()}
    data = ours.save(tensors, metadata={"k": "v"})
    assert data == ref.save(dict(tensors), metadata={"k": "v"})  # dict(): the reference modifies its argument
    # ... and the same bytes as the numpy arrays give.
    assert data == ironsafe.numpy.save(arrays, metadata={"k": "v"})


@pytest.mark.parametrize("backend", BACKENDS)
def test_reference_reads_ironsafe_files(fw: Framework, ours: Any, ref: Any, tmp_path: Path, backend: str) -> None:
    # The reference's loaders know the dtypes numpy has natively.
    native = [d for d in fw.ref_save_dtypes if not d.startswith(("bfloat", "float8"))]
    arrays = tensors_for(fw, native)
    tensors = {name: fw.make(array) for name, array in arrays.items()}
    path = tmp_path / "ours.safetensors"
    if not fw.ref_load_file_empty:
        arrays = {k: v for k, v in arrays.items() if v.size}
        tensors = {name: tensors[name] for name in arrays}
    ours.save_file(tensors, path)
    assert_loaded(fw, ref.load_file(path, backend=backend), arrays)
    arrays = {k: v for k, v in arrays.items() if v.dtype.name not in fw.ref_load_lacks}
    ours.save_file({name: tensors[name] for name in arrays}, path)
    assert_loaded(fw, ref.load(path.read_bytes()), arrays)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ironsafe_reads_reference_files(fw: Framework, ours: Any, ref: Any, tmp_path: Path, backend: str) -> None:
    arrays = tensors_for(fw, fw.ref_save_dtypes, fw.ref_saves_scalars)
    tensors = {name: fw.make(array) for name, array in arrays.items()}
    path = tmp_path / "ref.safetensors"
    ref.save_file(dict(tensors), path)
    assert_loaded(fw, ours.load_file(path, backend=backend), arrays)
    assert_loaded(fw, ours.load(path.read_bytes()), arrays)
    assert list(ours.load_file(path, backend=backend)) == ironsafe.safe_open(path, "np").offset_keys()


def test_save_errors(fw: Framework, ours: Any) -> None:
    with pytest.raises((AttributeError, ValueError)):
        ours.save([fw.make(expected("float32"))])
    with pytest.raises(ironsafe.SafetensorError, match="Error while deserializing"):
        ours.load(b"\x00" * 4)
    with pytest.raises(FileNotFoundError):
        ours.load_file("/nonexistent/dir/x.safetensors")


# --- framework specifics ----------------------------------------------------


@pytest.mark.parametrize("fw", ["flax"], indirect=True)
def test_flax_save_leaves_the_dict_alone(fw: Framework, ours: Any) -> None:
    import jax

    tensors = {"a": fw.make(expected("float32"))}
    ours.save(tensors)
    assert isinstance(tensors["a"], jax.Array)  # the reference puts numpy arrays there


@pytest.mark.parametrize("fw", ["tensorflow"], indirect=True)
def test_tensorflow_variables(fw: Framework, ours: Any, ref: Any) -> None:
    import tensorflow as tf

    variable = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert ours.save({"v": variable}) == ref.save({"v": variable})
    with pytest.raises(AttributeError, match="'int' object has no attribute 'numpy'"):
        ours.save({"a": 1})


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - any exception is an outcome
        return type(exc).__name__, str(exc)
    return "no error"


@pytest.mark.parametrize("fw", ["paddle"], indirect=True)
def test_paddle_errors_match_reference(fw: Framework, ours: Any, ref: Any, tmp_path: Path) -> None:
    import paddle

    matrix = paddle.arange(6, dtype="float32").reshape([2, 3])
    path = tmp_path / "p.safetensors"
    ours.save_file({"a": matrix}, path)
    cases: List[Callable[[Any], Any]] = [
        lambda m: m.save([matrix]),
        lambda m: m.save({"a": 1}),
        lambda m: m.save({"a": np.zeros(2)}),
        lambda m: m.save({"a": matrix, "b": "x"}),
        lambda m: m.save({"a": matrix.transpose([1, 0])}),
        lambda m: m.save({"a": paddle.zeros([2], dtype="complex128")}),
        lambda m: m.load_file(path, device="bogus"),
        lambda m: m.load_file(path, device="mps:1"),
        lambda m: m.load_file(path, backend="x"),
    ]
    for case in cases:
        want, got = _outcome(lambda: case(ref)), _outcome(lambda: case(ours))
        assert want != "no error"
        if case is cases[5]:  # the reference: KeyError(<DataType.COMPLEX128>)
            assert got[0] == "SafetensorError" and 'Unknown dtype "complex128"' in got[1]
            continue
        assert got == want


@pytest.mark.parametrize("fw", ["paddle"], indirect=True)
def test_paddle_devices(fw: Framework, ours: Any, tmp_path: Path) -> None:
    import paddle

    data = ours.save({"a": paddle.ones([2])})
    path = tmp_path / "d.safetensors"
    path.write_bytes(data)
    for device in ("cpu", None):
        assert ours.load(data, device=device)["a"].place.is_cpu_place()
        assert ours.load_file(path, device=device)["a"].place.is_cpu_place()
    assert ours.load_file(path)["a"].stop_gradient
    if not paddle.is_compiled_with_cuda():
        with pytest.raises(ValueError):
            ours.load(data, device="cuda")


@pytest.mark.parametrize("fw", ["paddle"], indirect=True)
def test_paddle_uint16_is_not_bfloat16(fw: Framework, ours: Any) -> None:
    # paddle prints uint16 as "paddle.bfloat16": the dtype must come from the
    # tensor's dtype itself.
    import json
    import struct

    data = ours.save({"u": fw.make(expected("uint16"))})
    (n,) = struct.unpack("<Q", data[:8])
    assert json.loads(data[8 : 8 + n])["u"]["dtype"] == "U16"


@pytest.mark.parametrize("fw", ["paddle"], indirect=True)
def test_paddle_views_of_a_tensor(fw: Framework, ours: Any) -> None:
    import paddle

    base = paddle.arange(12, dtype="int32").reshape([3, 4])
    for part, numpy_part in ((base[1:], base.numpy()[1:]), (base[2], base.numpy()[2])):
        assert part.is_contiguous()
        assert same(ironsafe.numpy.load(ours.save({"p": part}))["p"], numpy_part)


@pytest.mark.parametrize("fw", ["mlx"], indirect=True)
def test_mlx_bfloat16(fw: Framework, ours: Any) -> None:
    import mlx.core as mx

    array = mx.array([1.5, -2.0, 3.0], dtype=mx.bfloat16)
    data = ours.save({"b": array})
    assert data == ironsafe.numpy.save({"b": np.array([1.5, -2.0, 3.0], ml_dtypes.bfloat16)})
    loaded = ours.load(data)["b"]
    assert loaded.dtype == mx.bfloat16 and loaded.tolist() == [1.5, -2.0, 3.0]
