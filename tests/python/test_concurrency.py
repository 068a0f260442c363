"""Many threads at once saving, loading and slicing: each to its own file,
and several to one shared path, where the last writer wins and a reader
always sees one complete version, never a mix or a partial file. Every
value read is checked."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
import torch

import ironsafe.numpy
import ironsafe.torch
from ironsafe import safe_open

THREADS = 8
ROUNDS = 25
WRITERS = range(0, THREADS, 2)  # the even threads write, the odd ones read


def version(k: int) -> Dict[str, np.ndarray]:
    """Version ``k`` of a file: every value of every tensor is ``k``, so a
    file that mixed two versions (or was cut short) cannot pass for one."""
    return {
        "a": np.full((64, 48), k, dtype=np.float32),
        "b": np.full((1000,), k, dtype=np.int64),
        "c": np.full((3, 5, 7), k, dtype=np.uint8),
    }


def save(path: Path, k: int) -> None:
    ironsafe.numpy.save_file(version(k), path, metadata={"version": str(k)})


def one_version(tensors: Dict[str, object]) -> int:
    """The version every tensor holds; fails unless they all hold the same."""
    assert sorted(tensors) == ["a", "b", "c"]
    values = {float(v) for tensor in tensors.values() for v in np.unique(np.asarray(tensor))}
    assert len(values) == 1, f"a mix of versions: {values}"
    shapes = {name: tuple(np.asarray(tensor).shape) for name, tensor in tensors.items()}
    assert shapes == {name: array.shape for name, array in version(0).items()}
    return int(values.pop())


def read_whole_file(path: Path, round_: int) -> int:
    """One of the ways of loading a whole file, by round; returns the version read."""
    loads: Dict[int, Callable[[], Dict[str, object]]] = {
        0: lambda: ironsafe.torch.load_file(path),
        1: lambda: ironsafe.torch.load_file(path, backend="pread"),
        2: lambda: ironsafe.numpy.load_file(path),
        3: lambda: ironsafe.numpy.load_file(path, backend="pread"),
    }
    return one_version(loads[round_ % 4]())


def read_slices(path: Path, backend: str) -> int:
    """Slices of every tensor, and the metadata, from one open handle: they
    must agree with each other."""
    with safe_open(path, "pt", backend=backend) as f:
        k = int(f.metadata()["version"])
        assert torch.equal(f.get_slice("a")[3:60:7, -5:], torch.full((9, 5), k, dtype=torch.float32))
        assert torch.equal(f.get_slice("b")[::333], torch.full((4,), k, dtype=torch.int64))
        assert torch.equal(f.get_slice("c")[1, ..., 2], torch.full((5,), k, dtype=torch.uint8))
    return k


def test_threads_save_load_and_slice_at_once(tmp_path: Path) -> None:
    shared = tmp_path / "shared.safetensors"
    save(shared, 0)
    # Versions are 1 + writer * ROUNDS + round: each one written once.
    written = {0} | {1 + writer * ROUNDS + r for writer in WRITERS for r in range(ROUNDS)}
    start = threading.Barrier(THREADS)

    def work(thread: int) -> int:
        own = tmp_path / f"own-{thread}.safetensors"
        save(own, thread)
        start.wait()
        reads = 0
        for r in range(ROUNDS):
            if thread in WRITERS:
                save(shared, 1 + thread * ROUNDS + r)
                # Its own file: rewritten, then read back exactly.
                save(own, 100 + r)
                assert read_whole_file(own, r) == 100 + r
            else:
                assert read_whole_file(shared, r) in written
                assert read_slices(shared, ("mmap", "pread")[r % 2]) in written
                # Another thread's file, which that thread may be rewriting.
                neighbour = (thread + 1) % THREADS
                other = tmp_path / f"own-{neighbour}.safetensors"
                assert read_whole_file(other, r + 1) in {neighbour} | {100 + i for i in range(ROUNDS)}
                reads += 3
        return reads

    with ThreadPoolExecutor(THREADS) as pool:
        reads = sum(pool.map(work, range(THREADS)))  # re-raises any thread's failure
    assert reads == 3 * ROUNDS * (THREADS - len(WRITERS))
    # The last writer won: the file is one complete version that was written.
    with safe_open(shared, "np") as f:
        k = int(f.metadata()["version"])
    assert k in written and k != 0
    assert read_whole_file(shared, 0) == k


FORKED = """
import os, sys
import numpy as np
import ironsafe.numpy

path = sys.argv[1]
expected = ironsafe.numpy.load_file(path, backend="pread")  # starts the read threads
child = os.fork()
if child == 0:
    # The child has none of its parent's threads: its reads need threads of its own.
    loaded = ironsafe.numpy.load_file(path, backend="pread")
    os._exit(0 if all(np.array_equal(loaded[k], v) for k, v in expected.items()) else 3)
_, status = os.waitpid(child, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_process_forked_after_a_load_loads_too(tmp_path: Path) -> None:
    # A data-loader worker forked from a process that already loaded weights.
    path = tmp_path / "model.safetensors"
    tensors = {f"w{i}": np.arange(1 << 20, dtype=np.float32) + i for i in range(4)}  # 16 MiB
    ironsafe.numpy.save_file(tensors, path)
    env = {**os.environ, "IRONSAFE_THREADS": "4"}  # more than one thread, whatever the machine
    done = subprocess.run([sys.executable, "-c", FORKED, str(path)], env=env, timeout=120, check=False)
    assert done.returncode == 0
