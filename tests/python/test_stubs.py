"""Type information: `_ironsafe.pyi` is true to the extension module
(`mypy.stubtest`), and code using the public API type-checks with
`mypy --strict` (the package ships `py.typed`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

import ironsafe

HERE = Path(__file__).parent
PACKAGE = Path(ironsafe.__file__).parent
ALLOWLIST = HERE / "stubtest-allowlist.txt"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")

# The framework each optional ironsafe module imports when it is imported.
FRAMEWORKS = {"flax": "jax", "tensorflow": "tensorflow", "paddle": "paddle", "mlx": "mlx", "torch": "torch"}

# mypy settings for both checks: the frameworks are not analysed (their types
# become Any: the checks are about ironsafe, and analysing torch, tensorflow
# and jax would take a minute), and may be missing.
MYPY_CONFIG = """\
[mypy]

[mypy-torch.*,tensorflow.*,jax.*,jaxlib.*,flax.*,paddle.*,mlx.*]
follow_imports = skip
ignore_missing_imports = True
"""


def run(args: List[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_stub_and_marker_files_exist() -> None:
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_ironsafe.pyi").is_file()
    assert ironsafe._ironsafe.__file__ is not None
    assert Path(ironsafe._ironsafe.__file__).parent == PACKAGE


def test_stubtest(tmp_path: Path) -> None:
    """`python -m mypy.stubtest ironsafe` finds no difference between the
    stubs (the .pyi and the typed .py modules) and the modules at runtime."""
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    args = ["-m", "mypy.stubtest", "ironsafe", "--mypy-config-file", str(config)]
    if ALLOWLIST.exists():
        args += ["--allowlist", str(ALLOWLIST)]
    # A framework module cannot be imported where its framework is missing
    # (the test requirements do not install them all): that is no stub error.
    missing = [
        f"ironsafe.{module}"
        for module, framework in FRAMEWORKS.items()
        if (PACKAGE / f"{module}.py").exists() and importlib.util.find_spec(framework) is None
    ]
    if missing:
        generated = tmp_path / "missing-frameworks.txt"
        generated.write_text("\n".join(missing) + "\n")
        args += ["--allowlist", str(generated)]
    done = run(args, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "Success: no issues found" in output


STRICT_SNIPPET = """\
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from typing_extensions import assert_type

import ironsafe
from ironsafe import SafetensorError, TensorSpec, deserialize, safe_open, serialize, serialize_file
from ironsafe._ironsafe import Reader


def write(path: str | os.PathLike[str], data_ptr: int) -> bytes:
    spec = TensorSpec(dtype="float32", shape=[2, 3], data_ptr=data_ptr, data_len=24)
    assert_type(spec.dtype, str)
    assert_type(spec.shape, list[int])
    assert_type(spec.data_ptr, int)
    assert_type(spec.data_len, int)
    serialize_file({"w": spec}, path, metadata={"format": "pt"})
    serialize_file({"w": spec}, Path("other.safetensors"))
    return serialize({"w": spec}, None)


def read(data: bytes) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for name, entry in deserialize(data):
        assert_type(name, str)
        shapes[name] = entry["shape"]
        assert_type(entry["dtype"], str)
        assert_type(entry["data"], bytearray)
    return shapes


def open_file(path: Path) -> list[str]:
    try:
        with safe_open(path, framework="pt", device="cpu", backend="pread") as f:
            assert_type(f.metadata(), dict[str, str] | None)
            assert_type(f.offset_keys(), list[str])
            part = f.get_slice("w")
            assert_type(part.get_shape(), list[int])
            assert_type(part.get_dtype(), str)
            tensor: Any = part[0, 1:3]
            del tensor
            tensors: dict[str, Any] = f.get_tensors()
            del tensors
            return f.keys()
    except SafetensorError as err:
        raise RuntimeError(str(err)) from err


def low_level(path: str) -> tuple[bytearray, list[int]]:
    reader = Reader(path)
    assert_type(reader.info("w"), tuple[str, list[int], int, int])
    assert_type(reader.file_len, int)

    def allocate(nbytes: int) -> tuple[bytearray, int]:
        return bytearray(nbytes), 0

    return reader.read_slice_into("w", [0, (0, 2, 1)], allocate)


def convert(src: Path) -> list[str]:
    report = ironsafe.convert_checkpoint(src, "model.safetensors", key="state_dict", strict=True)
    assert_type(report["removed"], dict[str, str])
    return report["tensors"] + report["skipped"]


version: str = ironsafe.__version__
ironsafe.install_as_safetensors()
"""

# The same calls, wrongly typed: strict mypy must see every one.
WRONG_SNIPPET = """\
import ironsafe

a: int = ironsafe.__version__
b: int = ironsafe.serialize({})
c: str = ironsafe.deserialize(b"")[0][1]["shape"]
ironsafe.serialize({"w": {"dtype": "float32"}})
ironsafe.TensorSpec("float32", [1], 0, 0)
ironsafe.deserialize(bytearray())
with ironsafe.safe_open("x", "np") as f:
    d: int = f.keys()
e: int = ironsafe.TensorSpec(dtype="float32", shape=[1], data_ptr=0, data_len=0).shape
"""


def mypy_strict(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    (tmp_path / "snippet.py").write_text(textwrap.dedent(source))
    return run(
        ["-m", "mypy", "--strict", "--config-file", "mypy.ini", "--cache-dir", str(tmp_path / "cache"),
         "snippet.py"],
        tmp_path,
    )


def test_public_api_passes_mypy_strict(tmp_path: Path) -> None:
    done = mypy_strict(STRICT_SNIPPET, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found in 1 source file" in done.stdout


def test_mypy_strict_sees_wrong_types(tmp_path: Path) -> None:
    done = mypy_strict(WRONG_SNIPPET, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {int(line.split(":")[1]) for line in done.stdout.splitlines() if line.startswith("snippet.py:")}
    assert lines >= {3, 4, 5, 6, 7, 8, 10, 11}, done.stdout
