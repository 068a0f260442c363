"""``convert_checkpoint``: a torch checkpoint (``torch.save``, zip or legacy
format) to a safetensors file, read by a restricted pickle reader in Rust
that builds inert data and calls nothing, so a malicious checkpoint cannot
run code."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Optional, Union

from ironsafe import _ironsafe

if TYPE_CHECKING:
    from ironsafe._ironsafe import _ConversionReport


def convert_checkpoint(
    src: Union[str, "os.PathLike[str]"],
    dst: Union[str, "os.PathLike[str]"],
    *,
    key: Optional[str] = None,
    strict: bool = False,
    verify: bool = True,
) -> "_ConversionReport":
    """Convert the torch checkpoint ``src`` to the safetensors file ``dst``
    without unpickling it (``torch.load`` is never called).

    Nested dicts are flattened with ``.`` (``{"a": {"b": t}}`` becomes
    ``a.b``); ``key`` converts only one top-level sub-dict (``"state_dict"``,
    ``"model_state"``, ...). Entries that are not tensors (ints, floats,
    strings, optimizer scalars) are skipped with a ``UserWarning``, or raise
    with ``strict=True``. Tensors sharing memory are written once, as the
    reference's ``convert.py`` does: a name that is the same view as the
    kept one is dropped and recorded in the metadata as ``{removed: kept}``;
    the metadata also holds ``{"format": "pt"}``. Strided views are written
    contiguous. With ``verify`` (the default) the written file is read back
    and compared with the source, tensor by tensor.

    Returns ``{"tensors": [written names], "removed": {removed: kept},
    "skipped": [non-tensor names]}``. Raises ``SafetensorError`` for a
    checkpoint that is refused (a global or opcode outside the allowlist,
    malformed or compressed data, a view outside its storage) and
    ``OSError`` when ``src`` cannot be opened.
    """
    report = _ironsafe.convert_checkpoint(src, dst, key=key, strict=strict, verify=verify)
    if report["skipped"]:
        warnings.warn(
            f"skipped {len(report['skipped'])} entries that are not tensors: {', '.join(report['skipped'])}",
            UserWarning,
            stacklevel=2,
        )
    return report
