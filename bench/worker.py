"""One benchmark step, in a process of its own.

``python bench/worker.py JOB`` with JOB a JSON object; prints one JSON object
on its last line of output. ``op`` says what to do:

- ``probe``: the versions and devices of this environment;
- ``make``: write an input file (see ``inputs.make``);
- ``measure``: set up ``action`` (untimed: imports, building the state dict
  to save), put the file in the page-cache state ``cache`` asks for
  (``warm`` or ``cold``), then time the step alone and report its seconds,
  the bytes it moved and the peak extra memory of this process.

Every load touches one byte of each 4 KiB page of what it returns, so that
a lazy map is not taken for a load (contiguous tensors in one batch: see
``touch_all``).
"""

from __future__ import annotations

import importlib
import inspect
import json
import mmap
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import inputs
import pagecache

CUDA_CHUNK = 1 << 30


@dataclass
class Action:
    """A set-up step: ``run`` is what is timed; ``nbytes`` the bytes it
    moves when its result does not tell (a save); ``cleanup`` runs after."""

    run: Callable[[], Any]
    nbytes: Optional[int] = None
    cleanup: Optional[Callable[[], None]] = None


# --- touching what was loaded ---------------------------------------------------


def touch_all(tensors: Dict[str, Any]) -> Dict[str, Any]:
    """Reads one byte in every page of every CPU tensor (torch or numpy) of
    ``tensors``; returns them.

    Contiguous tensors are touched together: their byte ranges are merged
    where they meet, and each merged range is read with one numpy operation.
    A file of 20,000 tiny tensors then costs the harness a few milliseconds
    instead of the 200-300 ms that a few torch operations per tensor took,
    which used to hide the loaders' own difference. Strided views (column
    slices) are touched one by one, row by row."""
    spans = []
    for tensor in tensors.values():
        if hasattr(tensor, "is_cuda"):
            if tensor.is_cuda or tensor.numel() == 0:
                continue
            contiguous, start = tensor.is_contiguous(), tensor.data_ptr()
        else:
            if tensor.size == 0:
                continue
            contiguous, start = tensor.flags.c_contiguous, tensor.ctypes.data
        if contiguous:
            spans.append((start, start + tensor.nbytes))
        else:
            _touch_rows(tensor)
    _touch_spans(spans)
    return tensors


def _touch_rows(tensor: Any) -> int:
    """Reads one byte in every page of a 2-D view with unit stride in its
    last dimension; returns their sum."""
    import numpy as np

    if isinstance(tensor, np.ndarray):
        raw = tensor.view(np.uint8)
    else:
        import torch

        raw = tensor.view(torch.uint8).numpy()
    step = max(1, pagecache.PAGE // raw.strides[0])
    return int(raw[::step, :: pagecache.PAGE].sum(dtype=np.int64)) + int(raw[::step, -1].sum(dtype=np.int64))


def _touch_spans(spans: list[tuple[int, int]]) -> int:
    """Reads one byte in every page of each merged run of ``spans`` (ranges
    that overlap or meet); returns their sum. Only memory inside the
    tensors is read: ranges with a gap between them stay apart."""
    import ctypes

    import numpy as np

    total = 0
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        flat = np.frombuffer((ctypes.c_ubyte * (end - start)).from_address(start), dtype=np.uint8)
        total += int(flat[:: pagecache.PAGE].sum(dtype=np.int64)) + int(flat[-1])
    return total


# --- saving -----------------------------------------------------------------------


def _plain_write(tensors: Dict[str, Any], path: str) -> None:
    """The baseline: each tensor's bytes written in turn with os.write."""
    import torch

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for tensor in tensors.values():
            view = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _saver(lib: str) -> Callable[..., None]:
    if lib == "plain":
        return _plain_write
    if lib == "torch":
        import torch

        return torch.save
    save: Callable[..., None] = importlib.import_module(f"{lib}.torch").save_file
    return save


def action_save(job: Dict[str, Any]) -> Action:
    """Saves the state dict of ``job["layout"]`` to ``job["out"]`` with
    ``job["lib"]`` (safetensors, ironsafe, torch or plain), then fsyncs the
    file if ``job["fsync"]``; ``job["durable"]`` passes ``durable=True``.
    Dirty pages are written back (os.sync) before the step, so that it does
    not pay for earlier writes; the file is deleted after it, so that its
    own dirty pages are dropped rather than written back later."""
    layout = inputs.layout(job["layout"])
    tensors = inputs.state_dict(layout)
    save, out = _saver(job["lib"]), job["out"]
    options = {"durable": True} if job.get("durable") else {}
    if os.path.exists(out):
        os.unlink(out)
    os.sync()

    def run() -> None:
        save(tensors, out, **options)
        if job.get("fsync"):
            _fsync(out)

    return Action(run, nbytes=inputs.nbytes(layout), cleanup=lambda: os.unlink(out))


# --- loading ----------------------------------------------------------------------


def _loader(job: Dict[str, Any]) -> Callable[[], Dict[str, Any]]:
    """``load_file`` of ``job["lib"]`` for ``job["framework"]`` (pt or np)
    and ``job["backend"]``; ``torch.load`` for lib "torch"."""
    path, lib = job["path"], job["lib"]
    if lib == "torch":
        import torch

        return lambda: torch.load(path, weights_only=True)
    module = importlib.import_module(f"{lib}.{'numpy' if job['framework'] == 'np' else 'torch'}")
    backend = job.get("backend", "mmap")
    if job.get("device"):
        return lambda: module.load_file(path, device=job["device"], backend=backend)
    return lambda: module.load_file(path, backend=backend)


def action_load(job: Dict[str, Any]) -> Action:
    """Loads a whole file and touches every page of it."""
    load = _loader(job)
    return Action(lambda: touch_all(load()))


def action_slice(job: Dict[str, Any]) -> Action:
    """Tensor-parallel rank 0 of 4: of every 2-D tensor, the first quarter
    of its rows (``axis`` 0) or of its columns (``axis`` 1), through
    ``safe_open(...).get_slice(name)[...]``; with ``copy``, each part is made
    an owned contiguous copy (``.clone()``: ``.contiguous()`` alone leaves a
    row slice a view of the map)."""
    safe_open = importlib.import_module(job["lib"]).safe_open
    path, framework, backend = job["path"], job["framework"], job.get("backend", "mmap")
    own = _owned_copy() if job.get("copy") else (lambda part: part)

    def run() -> Dict[str, Any]:
        parts = {}
        with safe_open(path, framework=framework, backend=backend) as file:
            for name in file.keys():
                part = file.get_slice(name)
                shape = part.get_shape()
                if len(shape) != 2:
                    continue
                if job["axis"] == 0:
                    part = part[: shape[0] // 4]
                else:
                    part = part[:, : shape[1] // 4]
                parts[name] = own(part)
        return touch_all(parts)

    return Action(run)


def _owned_copy() -> Callable[[Any], Any]:
    import torch

    return lambda part: part.clone(memory_format=torch.contiguous_format)


def action_header(job: Dict[str, Any]) -> Action:
    """Opens a file and reads its keys and metadata: the header alone."""
    safe_open = importlib.import_module(job["lib"]).safe_open

    def run() -> Dict[str, Any]:
        with safe_open(job["path"], framework="pt") as file:
            return {"keys": len(file.keys()), "metadata": file.metadata()}

    return Action(run, nbytes=_header_size(job["path"]))


def _header_size(path: str) -> int:
    with open(path, "rb") as file:
        return int.from_bytes(file.read(8), "little")


def action_read(job: Dict[str, Any]) -> Action:
    """The baseline of owned loads: the whole file read (readinto, one
    thread) into fresh memory, as owned loads fill theirs."""

    def run() -> mmap.mmap:
        buffer = mmap.mmap(-1, os.path.getsize(job["path"]))  # fresh anonymous memory
        with open(job["path"], "rb", buffering=0) as file:
            file.readinto(buffer)
        return buffer  # unmapped after the step, as a load's tensors are

    return Action(run, nbytes=os.path.getsize(job["path"]))


def action_direct(job: Dict[str, Any]) -> Action:
    """The baseline: the file read with O_DIRECT (the disk alone)."""
    return Action(lambda: pagecache.direct_read(job["path"]), nbytes=os.path.getsize(job["path"]))


# --- GPU ----------------------------------------------------------------------------


def action_gpu_load(job: Dict[str, Any]) -> Action:
    """Loads a whole file onto the GPU: ``load_file(path, device="cuda")``
    of safetensors or ironsafe, or fastsafetensors' loader (no GDS). The
    CUDA context is made before the step (untimed): every loader would pay
    it alike, and it is no part of reading a file."""
    import torch

    if job["lib"] == "fastsafetensors":
        load = _fastsafetensors_loader(job["path"])
    else:
        load = _loader({**job, "framework": "pt", "device": "cuda"})
    torch.empty(1, device="cuda")
    torch.cuda.synchronize()

    def run() -> Dict[str, Any]:
        tensors = load()
        torch.cuda.synchronize()
        return tensors

    return Action(run)


def _fastsafetensors_loader(path: str) -> Callable[[], Dict[str, Any]]:
    from fastsafetensors import SafeTensorsFileLoader, SingleGroup

    alive = []  # the loader owns the device memory: it must outlive the step

    def load() -> Dict[str, Any]:
        loader = SafeTensorsFileLoader(SingleGroup(), "cuda:0", nogds=True)
        loader.add_filenames({0: [path]})
        buffer = loader.copy_files_to_device()
        alive.append((loader, buffer))
        return {name: buffer.get_tensor(name) for name in loader.get_keys()}

    return load


def action_h2d(job: Dict[str, Any]) -> Action:
    """The baseline: ``job["nbytes"]`` copied from pinned host memory to
    the GPU, 1 GiB at a time (non_blocking, then synchronize)."""
    import torch

    chunk = min(CUDA_CHUNK, job["nbytes"])
    host = torch.empty(chunk, dtype=torch.uint8, pin_memory=True)
    device = torch.empty(chunk, dtype=torch.uint8, device="cuda")
    device.copy_(host, non_blocking=True)
    torch.cuda.synchronize()
    count = max(1, job["nbytes"] // chunk)

    def run() -> None:
        for _ in range(count):
            device.copy_(host, non_blocking=True)
        torch.cuda.synchronize()

    return Action(run, nbytes=count * chunk)


ACTIONS: Dict[str, Callable[[Dict[str, Any]], Action]] = {
    "save": action_save,
    "load": action_load,
    "slice": action_slice,
    "header": action_header,
    "read": action_read,
    "direct": action_direct,
    "gpu_load": action_gpu_load,
    "h2d": action_h2d,
}


# --- measuring ------------------------------------------------------------------------


def _rss() -> int:
    """This process's resident memory now, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * pagecache.PAGE


def _reset_peak() -> bool:
    """Resets this process's peak RSS to its current RSS (Linux:
    ``/proc/self/clear_refs``), so that ru_maxrss measures the step alone
    and not a larger transient of the set-up; whether that worked."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _prepare_cache(job: Dict[str, Any]) -> Optional[float]:
    """Evicts (``cold``) or reads in (``warm``) ``job["path"]``; returns its
    page-cache residency just before the step, or None for no such ask."""
    cache = job.get("cache")
    if cache is None:
        return None
    return pagecache.make_cold(job["path"]) if cache == "cold" else pagecache.make_warm(job["path"])


def _payload(result: Any, action: Action) -> int:
    if action.nbytes is not None:
        return action.nbytes
    return sum(tensor.nbytes for tensor in result.values())


def measure(job: Dict[str, Any]) -> Dict[str, Any]:
    """Sets up the job's action, then times its step alone. torch and numpy
    are imported first, whatever the action: the libraries import them
    lazily, and an import is no part of a load."""
    import numpy  # noqa: F401
    import torch  # noqa: F401

    action = ACTIONS[job["action"]](job)
    resident = _prepare_cache(job)
    _settle()
    peak_reset = _reset_peak()
    base = _rss()
    start = time.perf_counter()
    result = action.run()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report = {
        "seconds": seconds,
        "bytes": _payload(result, action),
        "peak_extra": max(0, peak - base),
        "peak_reset": peak_reset,
        "resident": resident,
        "tensors": len(result) if isinstance(result, dict) else None,
    }
    if action.cleanup is not None:
        action.cleanup()
    return report


def _settle(limit: float = 2.0) -> None:
    """Waits, at most ``limit`` seconds, until this process is idle. Threads
    that libraries start at import can keep a core busy for a while after
    (numpy's OpenBLAS workers spin about 50 ms here), and on a 2-core
    machine they would compete with the step's own threads: the step is
    timed alone."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        busy = time.process_time()  # every thread of the process
        time.sleep(0.05)
        if time.process_time() - busy < 0.002:
            return


# --- other jobs -------------------------------------------------------------------------


def probe(job: Dict[str, Any]) -> Dict[str, Any]:
    """Versions of Python and the libraries, and the GPU if any."""
    import numpy
    import safetensors
    import torch

    import ironsafe
    import ironsafe.torch

    cuda = torch.cuda.is_available()
    try:
        fastsafetensors = importlib.import_module("fastsafetensors")
        fast_version = getattr(fastsafetensors, "__version__", "installed")
    except Exception:  # noqa: BLE001 - any failure to import means "not available"
        fast_version = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
        "ironsafe": ironsafe.__version__,
        "ironsafe_path": os.path.dirname(ironsafe.__file__),
        "ironsafe_durable": "durable" in inspect.signature(ironsafe.torch.save_file).parameters,
        "fastsafetensors": fast_version,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "peak_reset": _reset_peak(),
    }


def make(job: Dict[str, Any]) -> Dict[str, Any]:
    """Writes an input file (and a torch.save twin, if asked)."""
    inputs.make(inputs.layout(job["layout"]), job["path"], job.get("torch_path"))
    return {}


OPS = {"probe": probe, "make": make, "measure": measure}


def main() -> None:
    job = json.loads(sys.argv[1])
    print(json.dumps(OPS[job["op"]](job)))


if __name__ == "__main__":
    main()
