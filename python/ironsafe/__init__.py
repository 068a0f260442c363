"""ironsafe: the safetensors format, in Rust, with the reference's Python API.

``import ironsafe`` offers what ``import safetensors`` does: ``safe_open``,
``serialize``, ``serialize_file``, ``deserialize``, ``TensorSpec``,
``SafetensorError``, ``convert_checkpoint`` (torch checkpoints to
safetensors without unpickling), and the framework modules ``ironsafe.torch``,
``ironsafe.numpy``, ``ironsafe.flax``, ``ironsafe.tensorflow``,
``ironsafe.paddle`` and ``ironsafe.mlx``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from ironsafe._ironsafe import (
    SafetensorError,
    TensorSpec,
    __version__,
    deserialize,
    serialize,
    serialize_file,
)
from ironsafe._convert_checkpoint import convert_checkpoint
from ironsafe._safe_open import safe_open

__all__ = [
    "SafetensorError",
    "TensorSpec",
    "__version__",
    "convert_checkpoint",
    "deserialize",
    "install_as_safetensors",
    "safe_open",
    "serialize",
    "serialize_file",
]

_SUBMODULES = ("torch", "numpy", "flax", "tensorflow", "paddle", "mlx")


class _SafetensorsAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``safetensors.<framework>`` as the already-importable
    ``ironsafe.<framework>`` (the same module object, imported on demand,
    since each one imports its framework)."""

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        package, _, name = fullname.partition(".")
        if package == "safetensors" and name in _SUBMODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return importlib.import_module(f"{__name__}.{spec.name.partition('.')[2]}")

    def exec_module(self, module):  # type: ignore[no-untyped-def]
        """Nothing to run: the module was imported by ``create_module``."""


def install_as_safetensors() -> None:
    """Make ``import safetensors`` (and ``safetensors.torch``, ``.numpy``, ...)
    resolve to ironsafe in this process, so that libraries written for
    safetensors (transformers, diffusers, ...) run on ironsafe unchanged.

    Call it before those libraries import safetensors.
    """
    sys.modules["safetensors"] = sys.modules[__name__]
    for name in _SUBMODULES:
        loaded = sys.modules.get(f"{__name__}.{name}")
        if loaded is not None:
            sys.modules[f"safetensors.{name}"] = loaded
    if not any(isinstance(finder, _SafetensorsAlias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SafetensorsAlias())
