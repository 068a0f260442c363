"""The scenarios of issue 4: what each one measures, how its measurements
pair up into rows, and the target of each row.

A scenario is a set of measurements (a job for ``worker.py`` each, run once
per sample round, so implementations alternate) and rows that
compare two of them: ``other`` (the reference, or torch, or fastsafetensors)
against ``ironsafe``. The ratio of a row is other's median time over
ironsafe's, so above 1 means ironsafe is faster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import inputs

REFERENCE = "safetensors"


@dataclass(frozen=True)
class Target:
    """Met when the ratio is at least ``ratio`` and, with a ``baseline``,
    ironsafe's throughput is at least ``fraction`` of that baseline's."""

    ratio: float
    baseline: Optional[str] = None
    fraction: float = 0.0

    def describe(self, baselines: Dict[str, str]) -> str:
        text = f"≥{self.ratio:g}x"
        if self.baseline is not None:
            text += f", ≥{self.fraction:.0%} of {baselines[self.baseline]}"
        return text


@dataclass(frozen=True)
class Row:
    """``other`` against ``ironsafe`` (measurement keys)."""

    label: str
    other: str
    ironsafe: str
    target: Optional[Target] = None
    note: str = ""


@dataclass(frozen=True)
class InputFile:
    """A file the harness makes before measuring, if it is missing."""

    layout: Dict[str, Any]
    path: str
    torch_path: Optional[str] = None


@dataclass
class Scenario:
    """Measurements (key -> worker job with a display ``name``), rows that
    pair them, and baselines (keys measured on their own)."""

    name: str
    jobs: Dict[str, Dict[str, Any]]
    rows: List[Row]
    baselines: List[str] = field(default_factory=list)
    files: List[InputFile] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Config:
    """Where the files go, their sizes, and what this machine has."""

    dir: str
    size: int
    gpu_size: int
    gpu: bool
    fastsafetensors: bool
    durable: bool


def _file(config: Config, kind: str, spec: Dict[str, Any], with_torch: bool = False) -> InputFile:
    layout = inputs.layout(spec)
    path = os.path.join(config.dir, inputs.file_name(kind, layout))
    torch_path = os.path.join(config.dir, inputs.file_name(kind, layout, ".pt")) if with_torch else None
    return InputFile(spec, path, torch_path)


def _llama(config: Config, dtype: str = "BF16", with_torch: bool = False) -> InputFile:
    kind = "llama" if dtype == "BF16" else f"llama-{dtype.lower()}"
    return _file(config, kind, {"kind": "llama", "size": config.size, "dtype": dtype}, with_torch)


def _load(lib: str, name: str, path: str, cache: str, framework: str = "pt", backend: str = "mmap") -> Dict[str, Any]:
    return {"action": "load", "lib": lib, "name": name, "path": path, "cache": cache,
            "framework": framework, "backend": backend}  # fmt: skip


def _save(config: Config, lib: str, name: str, layout: Dict[str, Any], key: str, **options: bool) -> Dict[str, Any]:
    out = os.path.join(config.dir, f"out-{key}.safetensors")
    return {"action": "save", "lib": lib, "name": name, "layout": layout, "out": out, **options}


def _durable(config: Config, layout: Dict[str, Any]) -> Tuple[Dict[str, Any], str]:
    """ironsafe's durable save, and the note for its row: save_file(durable=True)
    where the API has it, else save_file + fsync, marked TODO."""
    if config.durable:
        job = _save(config, "ironsafe", "ironsafe save_file(durable=True)", layout, "iron_sync", durable=True)
        return job, "the reference: save_file, then fsync of the file; ironsafe: save_file(durable=True)"
    job = _save(config, "ironsafe", "ironsafe save_file + fsync", layout, "iron_sync", fsync=True)
    return job, "TODO: this ironsafe has no durable option; both sides are save_file + fsync"


def save(config: Config) -> Scenario:
    """1. save_file of the LLM state dict, plain and durable, against a
    plain sequential write of the same bytes and torch.save."""
    layout = {"kind": "llama", "size": config.size, "dtype": "BF16"}
    jobs = {
        "ref": _save(config, REFERENCE, "safetensors save_file", layout, "ref"),
        "iron": _save(config, "ironsafe", "ironsafe save_file", layout, "iron"),
        "torch": _save(config, "torch", "torch.save", layout, "torch"),
        "plain": _save(config, "plain", "plain write (os.write per tensor)", layout, "plain"),
        "ref_sync": _save(config, REFERENCE, "safetensors save_file + fsync", layout, "ref_sync", fsync=True),
    }
    jobs["iron_sync"], durable_note = _durable(config, layout)
    rows = [
        Row("save_file", "ref", "iron", Target(1.0, "plain", 0.9)),
        Row("save_file vs torch.save", "torch", "iron"),
        Row("save_file, durable", "ref_sync", "iron_sync", Target(1.3), note=durable_note),
    ]
    return Scenario("save", jobs, rows, baselines=["plain"])


def warm(config: Config) -> Scenario:
    """2. load_file + touch, warm page cache, default backend; and torch.load."""
    llama = _llama(config, with_torch=True)
    jobs = {
        "ref": _load(REFERENCE, "safetensors load_file", llama.path, "warm"),
        "iron": _load("ironsafe", "ironsafe load_file", llama.path, "warm"),
        "torch": _load("torch", "torch.load(weights_only=True)", str(llama.torch_path), "warm"),
    }
    rows = [
        Row("load_file, warm (mmap)", "ref", "iron", Target(1.0)),
        Row("load_file vs torch.load, warm", "torch", "iron",
            note="torch.load reads the torch.save file of the same state dict into memory"),
    ]  # fmt: skip
    return Scenario("warm", jobs, rows, files=[llama])


def owned(config: Config) -> Scenario:
    """3. Owned loads, warm: torch with backend="pread", and numpy; and a
    plain read of the file into fresh memory."""
    llama, llama16 = _llama(config), _llama(config, "F16")
    jobs = {
        "ref_pread": _load(REFERENCE, "safetensors load_file(pread)", llama.path, "warm", backend="pread"),
        "iron_pread": _load("ironsafe", "ironsafe load_file(pread)", llama.path, "warm", backend="pread"),
        "ref_np": _load(REFERENCE, "safetensors.numpy load_file", llama16.path, "warm", framework="np"),
        "iron_np": _load("ironsafe", "ironsafe.numpy load_file", llama16.path, "warm", framework="np"),
        "read": {"action": "read", "name": "plain read into fresh memory (readinto, 1 thread)",
                 "path": llama.path, "cache": "warm"},
    }
    rows = [
        Row("load_file(backend=\"pread\"), warm", "ref_pread", "iron_pread", Target(3.0)),
        Row("numpy load_file, warm", "ref_np", "iron_np", Target(3.0),
            note="an F16 copy of the LLM file: the reference's numpy has no bfloat16"),
    ]  # fmt: skip
    return Scenario("owned", jobs, rows, baselines=["read"], files=[llama, llama16])


def cold(config: Config) -> Scenario:
    """4. load_file + touch after evicting the file from the page cache,
    mmap and pread, against the disk's O_DIRECT read bandwidth."""
    llama = _llama(config)
    jobs = {
        "ref_mmap": _load(REFERENCE, "safetensors load_file", llama.path, "cold"),
        "iron_mmap": _load("ironsafe", "ironsafe load_file", llama.path, "cold"),
        "ref_pread": _load(REFERENCE, "safetensors load_file(pread)", llama.path, "cold", backend="pread"),
        "iron_pread": _load("ironsafe", "ironsafe load_file(pread)", llama.path, "cold", backend="pread"),
        "direct": {"action": "direct", "name": "O_DIRECT read, 8 MiB chunks", "path": llama.path, "cache": "cold"},
    }
    target = Target(1.6, "direct", 0.85)
    rows = [
        Row("load_file, cold (mmap)", "ref_mmap", "iron_mmap", target),
        Row("load_file(backend=\"pread\"), cold", "ref_pread", "iron_pread", target),
    ]
    return Scenario("cold", jobs, rows, baselines=["direct"], files=[llama])


def tiny(config: Config) -> Scenario:
    """5. A LoRA-like file of 20,000 tiny tensors: load (+ touch) and save."""
    lora = _file(config, "lora", {"kind": "lora"})
    jobs = {
        "ref_load": _load(REFERENCE, "safetensors load_file", lora.path, "warm"),
        "iron_load": _load("ironsafe", "ironsafe load_file", lora.path, "warm"),
        "ref_save": _save(config, REFERENCE, "safetensors save_file", lora.layout, "tiny_ref"),
        "iron_save": _save(config, "ironsafe", "ironsafe save_file", lora.layout, "tiny_iron"),
    }
    rows = [
        Row("20k tiny tensors: load_file, warm", "ref_load", "iron_load", Target(2.0)),
        Row("20k tiny tensors: save_file", "ref_save", "iron_save", Target(2.0)),
    ]
    return Scenario("tiny", jobs, rows, files=[lora])


def _slice(lib: str, name: str, path: str, axis: int, framework: str = "pt", **options: Any) -> Dict[str, Any]:
    return {"action": "slice", "lib": lib, "name": name, "path": path, "cache": "warm",
            "framework": framework, "axis": axis, **options}  # fmt: skip


def tp(config: Config) -> Scenario:
    """6. Tensor-parallel rank 0 of 4: the first quarter of the rows, and
    separately of the columns, of every matrix, via get_slice: views, owned
    contiguous tensors, and numpy. Owned tensors are compared on the same
    path (both with backend="pread"), and against the reference's views
    copied by torch (``.clone()``)."""
    llama, llama16 = _llama(config), _llama(config, "F16")
    jobs: Dict[str, Dict[str, Any]] = {}
    rows: List[Row] = []
    for axis, part in ((0, "rows"), (1, "columns")):
        jobs[f"ref_view{axis}"] = _slice(REFERENCE, "safetensors get_slice", llama.path, axis)
        jobs[f"iron_view{axis}"] = _slice("ironsafe", "ironsafe get_slice", llama.path, axis)
        jobs[f"ref_own{axis}"] = _slice(REFERENCE, "safetensors get_slice(pread)", llama.path, axis, backend="pread")
        jobs[f"ref_clone{axis}"] = _slice(REFERENCE, "safetensors get_slice + .clone()", llama.path, axis, copy=True)
        jobs[f"iron_own{axis}"] = _slice("ironsafe", "ironsafe get_slice(pread)", llama.path, axis, backend="pread")
        jobs[f"ref_np{axis}"] = _slice(REFERENCE, "safetensors get_slice (np)", llama16.path, axis, framework="np")
        jobs[f"iron_np{axis}"] = _slice("ironsafe", "ironsafe get_slice (np)", llama16.path, axis, framework="np")
        rows += [
            Row(f"TP rank 0/4 {part}: views", f"ref_view{axis}", f"iron_view{axis}", Target(1.0)),
            Row(f"TP rank 0/4 {part}: owned (pread)", f"ref_own{axis}", f"iron_own{axis}", Target(2.0),
                note="both with backend=\"pread\": owned contiguous tensors"),
            Row(f"TP rank 0/4 {part}: owned vs views + .clone()", f"ref_clone{axis}", f"iron_own{axis}",
                note="reference: a view of its map, copied by torch (.clone(): .contiguous() leaves a row "
                     "slice a view); ironsafe: backend=\"pread\", which reads only the slice"),
            Row(f"TP rank 0/4 {part}: numpy", f"ref_np{axis}", f"iron_np{axis}", Target(2.0),
                note="the F16 copy of the LLM file: the reference's numpy has no bfloat16"),
        ]  # fmt: skip
    return Scenario("tp", jobs, rows, files=[llama, llama16])


def header(config: Config) -> Scenario:
    """7. Header only: safe_open + keys() + metadata() of 100,000 tensors."""
    file = _file(config, "header", {"kind": "header"})
    jobs = {
        key: {"action": "header", "lib": lib, "name": f"{lib} safe_open", "path": file.path, "cache": "warm"}
        for key, lib in (("ref", REFERENCE), ("iron", "ironsafe"))
    }
    rows = [Row("header only, 100k tensors", "ref", "iron", Target(2.0), note="GB/s: of the header's bytes")]
    return Scenario("header", jobs, rows, files=[file])


def gpu(config: Config) -> Scenario:
    """8. load_file(path, device="cuda") of the GPU-sized file, warm and cold,
    against the reference and fastsafetensors, and pinned host-to-device
    bandwidth."""
    llama = _file(config, "llama", {"kind": "llama", "size": config.gpu_size, "dtype": "BF16"})
    libs = [("ref", REFERENCE), ("iron", "ironsafe")]
    if config.fastsafetensors:
        libs.append(("fast", "fastsafetensors"))
    jobs: Dict[str, Dict[str, Any]] = {}
    rows: List[Row] = []
    for cache in ("warm", "cold"):
        for key, lib in libs:
            jobs[f"{key}_{cache}"] = {"action": "gpu_load", "lib": lib, "name": f"{lib} to cuda",
                                      "path": llama.path, "cache": cache}  # fmt: skip
        # The reference's other backend, which stages through pinned memory.
        jobs[f"refpread_{cache}"] = {"action": "gpu_load", "lib": REFERENCE, "name": f"{REFERENCE} pread to cuda",
                                     "path": llama.path, "cache": cache, "backend": "pread"}  # fmt: skip
        rows.append(Row(f"load_file to GPU, {cache}", f"ref_{cache}", f"iron_{cache}", Target(2.0, "h2d", 0.7)))
        rows.append(Row(f"load_file to GPU, {cache}, reference pread", f"refpread_{cache}", f"iron_{cache}"))
        if config.fastsafetensors:
            rows.append(Row(f"load to GPU vs fastsafetensors, {cache}", f"fast_{cache}", f"iron_{cache}", Target(1.0)))
    jobs["h2d"] = {"action": "h2d", "name": "pinned host-to-device copy, 1 GiB chunks", "nbytes": config.gpu_size}
    skipped = [] if config.fastsafetensors else ["fastsafetensors: skipped: not importable"]
    return Scenario("gpu", jobs, rows, baselines=["h2d"], files=[llama], skipped=skipped)


BUILDERS = {
    "save": save, "warm": warm, "owned": owned, "cold": cold, "tiny": tiny, "tp": tp, "header": header, "gpu": gpu,
}  # fmt: skip
NAMES = tuple(BUILDERS)


def skip_reason(name: str, config: Config) -> Optional[str]:
    """Why scenario ``name`` cannot run here, or None."""
    if name == "gpu" and not config.gpu:
        return "skipped: no GPU"
    return None
