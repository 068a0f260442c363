"""What the benchmark reads and writes: tensor layouts, state dicts made
from them, and the files made once from those (named after a hash of their
layout, so a changed layout makes a new file).

A layout is a list of ``(name, shape, dtype)`` with dtype a safetensors
code ("BF16", "F16", "F32"). This module imports torch only when it builds
tensors, so the runner can use the layouts without it.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Dict, List, Tuple

Layout = List[Tuple[str, Tuple[int, ...], str]]

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
_ITEMSIZE = {"BF16": 2, "F16": 2, "F32": 4}
_TORCH_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
_VOCAB_SHARE = 0.15  # of an LLM file, for embed_tokens + lm_head
_BLOCK = 1 << 20  # the period of the pseudo-random bytes that fill tensors

LORA_TENSORS = 20_000
HEADER_TENSORS = 100_000
_LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_EXPERT_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def parse_size(text: str) -> int:
    """``"2GB"`` -> 2_000_000_000 (decimal units; KiB, MiB and GiB too)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).upper() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 200MB, 2GB, 1.5GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def nbytes(layout: Layout) -> int:
    """The bytes of tensor data in ``layout``."""
    total = 0
    for _, shape, dtype in layout:
        count = _ITEMSIZE[dtype]
        for dim in shape:
            count *= dim
        total += count
    return total


def llama_layout(size: int, dtype: str = "BF16") -> Layout:
    """A Llama-shaped state dict of about ``size`` bytes.

    Per layer: q/k/v/o projections [h, h], gate/up [i, h], down [h, i] and
    two norms [h]; the hidden size h is the largest of 4096..256 that fits
    at least eight layers; the vocabulary is sized so that embed_tokens and
    lm_head take the bytes the layers leave (about 15%).
    """
    item = _ITEMSIZE[dtype]
    for hidden in (4096, 2048, 1024, 512, 256):
        inter = -(-hidden * 8 // 3 // 256) * 256
        per_layer = item * (4 * hidden * hidden + 3 * hidden * inter + 2 * hidden)
        layers = int(size * (1 - _VOCAB_SHARE)) // per_layer
        if layers >= 8 or hidden == 256:
            break
    layers = max(layers, 1)
    vocab = max((size - layers * per_layer - item * hidden) // (2 * item * hidden), 1)
    layout: Layout = [("model.embed_tokens.weight", (vocab, hidden), dtype)]
    for n in range(layers):
        prefix = f"model.layers.{n}"
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            layout.append((f"{prefix}.self_attn.{name}.weight", (hidden, hidden), dtype))
        layout.append((f"{prefix}.mlp.gate_proj.weight", (inter, hidden), dtype))
        layout.append((f"{prefix}.mlp.up_proj.weight", (inter, hidden), dtype))
        layout.append((f"{prefix}.mlp.down_proj.weight", (hidden, inter), dtype))
        layout.append((f"{prefix}.input_layernorm.weight", (hidden,), dtype))
        layout.append((f"{prefix}.post_attention_layernorm.weight", (hidden,), dtype))
    layout.append(("model.norm.weight", (hidden,), dtype))
    layout.append(("lm_head.weight", (vocab, hidden), dtype))
    return layout


def lora_layout() -> Layout:
    """A LoRA adapter of 20,000 tiny F32 tensors: lora_A [16, 64] and
    lora_B [64, 16] (4 KiB each) for 10,000 modules."""
    layout: Layout = []
    for module in range(LORA_TENSORS // 2):
        layer, name = divmod(module, len(_LORA_MODULES))
        prefix = f"base_model.model.model.layers.{layer}.{_LORA_MODULES[name]}"
        layout.append((f"{prefix}.lora_A.weight", (16, 64), "F32"))
        layout.append((f"{prefix}.lora_B.weight", (64, 16), "F32"))
    return layout


def header_layout() -> Layout:
    """100,000 small BF16 tensors [4, 4] named like the experts of a large
    mixture-of-experts model: a header of about 12 MB."""
    layout: Layout = []
    for n in range(HEADER_TENSORS):
        layer, rest = divmod(n, 128 * len(_EXPERT_PROJECTIONS))
        expert, projection = divmod(rest, len(_EXPERT_PROJECTIONS))
        name = f"model.layers.{layer}.mlp.experts.{expert}.{_EXPERT_PROJECTIONS[projection]}.weight"
        layout.append((name, (4, 4), "BF16"))
    return layout


def layout(spec: Dict[str, Any]) -> Layout:
    """The layout a JSON spec names: ``{"kind": "llama", "size": N,
    "dtype": "BF16"}``, ``{"kind": "lora"}`` or ``{"kind": "header"}``."""
    if spec["kind"] == "llama":
        return llama_layout(spec["size"], spec.get("dtype", "BF16"))
    return {"lora": lora_layout, "header": header_layout}[spec["kind"]]()


def file_name(kind: str, layout: Layout, suffix: str = ".safetensors") -> str:
    """``kind-<MB>MB-<hash of the layout>`` + suffix."""
    digest = hashlib.sha256(repr(layout).encode()).hexdigest()[:10]
    return f"{kind}-{round(nbytes(layout) / 10**6)}MB-{digest}{suffix}"


def state_dict(layout: Layout) -> Dict[str, Any]:
    """Contiguous torch tensors for ``layout``, filled with pseudo-random
    bytes (the same for every call): the values never matter, only that
    every page is real memory."""
    import torch

    block = torch.randint(0, 256, (_BLOCK,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    tensors = {}
    for name, shape, dtype in layout:
        tensor = torch.empty(shape, dtype=getattr(torch, _TORCH_DTYPES[dtype]))
        _fill(tensor.reshape(-1).view(torch.uint8), block)
        tensors[name] = tensor
    return tensors


def _fill(flat: Any, block: Any) -> None:
    """Fills a 1-D uint8 tensor with ``block`` repeated, without temporaries."""
    whole = flat.numel() // block.numel()
    cut = whole * block.numel()
    if whole:
        flat[:cut].view(whole, block.numel()).copy_(block.expand(whole, block.numel()))
    flat[cut:] = block[: flat.numel() - cut]


def make(layout: Layout, path: str, torch_path: str | None = None) -> None:
    """Writes ``layout``'s state dict to ``path`` with the reference
    ``safetensors`` (and with ``torch.save`` to ``torch_path``), each through
    a temporary file renamed into place, so a file that exists is complete."""
    import torch
    from safetensors.torch import save_file

    tensors = state_dict(layout)
    save_file(tensors, path + ".tmp", metadata={"format": "pt"})
    os.replace(path + ".tmp", path)
    if torch_path is not None:
        torch.save(tensors, torch_path + ".tmp")
        os.replace(torch_path + ".tmp", torch_path)
