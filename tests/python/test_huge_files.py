"""Files far larger than memory: sparse files, almost all holes, so they cost
no disk. Opening one reads only its header, and a slice reads only what it
selects, so the memory used is O(header), not O(the sizes in it): with the
pread backend under an address-space cap of 1 GiB over the interpreter's
own, and with the mmap backend through a map of the whole file (a map needs
address space as large as the file, so that run has no cap)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from capped import run_capped

GIB = 1 << 30
HEADROOM = 1 << 30
TIMEOUT = 120  # seconds; only a hang comes near it

# name -> (rows, columns) of a U8 tensor, per file.
FILES: Dict[str, Dict[str, Tuple[int, int]]] = {
    # One tensor of 1 TiB.
    "terabyte": {"big": (1, 1 << 40)},
    # 64 GiB in four tensors of 16 GiB, more than this machine's memory.
    "64gib": {f"w{i}": (16, GIB) for i in range(4)},
}

# (file, tensor, row, start, stop): get_slice(tensor)[row, start:stop].
CHECKS: List[Tuple[str, str, int, int, int]] = [
    ("terabyte", "big", 0, 0, 10),
    ("terabyte", "big", 0, (1 << 39) - 3, (1 << 39) + 5),
    ("terabyte", "big", 0, (1 << 40) - 4, 1 << 40),
    ("64gib", "w0", 0, 0, 16),
    ("64gib", "w1", 7, GIB - 8, GIB),
    ("64gib", "w3", 15, GIB // 2 - 2, GIB // 2 + 6),
]

# Checks every slice against the file's own bytes read with os.pread, for
# torch and numpy; under the cap, also that reading a whole huge tensor
# fails with an exception (it cannot fit), and prints its type.
READ_SLICES = """
import json, os, struct, sys
import numpy as np
import torch
import ironsafe

paths, backend, checks, headroom = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
if headroom:
    cap_address_space(headroom)
for file, name, row, start, stop in checks:
    path = paths[file]
    fd = os.open(path, os.O_RDONLY)
    (n,) = struct.unpack("<Q", os.pread(fd, 8, 0))
    entry = json.loads(os.pread(fd, n, 8))[name]
    rows, columns = entry["shape"]
    at = 8 + n + entry["data_offsets"][0] + row * columns + start
    expected = os.pread(fd, stop - start, at)
    os.close(fd)
    for framework in ("pt", "np"):
        with ironsafe.safe_open(path, framework, backend=backend) as f:
            assert name in f.keys()
            part = f.get_slice(name)[row, start:stop]
            got = part.numpy().tobytes() if framework == "pt" else part.tobytes()
            assert got == expected, (file, name, framework, got, expected)
if headroom:
    with ironsafe.safe_open(paths["terabyte"], "pt", backend=backend) as f:
        try:
            f.get_tensor("big")
        except Exception as err:
            print(type(err).__name__)
"""


def write_sparse(path: Path, file: str) -> None:
    """A valid file of U8 tensors: the header, a marked byte in the middle of
    each range a check reads (so that zeros are not all a slice could be
    right with), and holes everywhere else."""
    header: Dict[str, Dict[str, List[int]]] = {}
    offset = 0
    for name, (rows, columns) in FILES[file].items():
        header[name] = {"shape": [rows, columns], "data_offsets": [offset, offset + rows * columns]}
        offset += rows * columns
    text = json.dumps({name: {"dtype": "U8", **entry} for name, entry in header.items()}, separators=(",", ":"))
    data = text.encode() + b" " * (-len(text) % 8)
    start = 8 + len(data)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(data)) + data)
        for check_file, name, row, begin, end in CHECKS:
            if check_file == file:
                columns = header[name]["shape"][1]
                f.seek(start + header[name]["data_offsets"][0] + row * columns + (begin + end) // 2)
                f.write(bytes([row + 1]))
        f.truncate(start + offset)


@pytest.fixture(scope="module")
def sparse_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, str]]:
    directory = tmp_path_factory.mktemp("sparse")
    paths = {file: str(directory / f"{file}.safetensors") for file in FILES}
    try:
        for file, path in paths.items():
            write_sparse(Path(path), file)
            if os.stat(path).st_blocks * 512 > 16 << 20:
                pytest.skip("this file system does not keep files sparse")
        assert os.path.getsize(paths["terabyte"]) > 1 << 40
        assert os.path.getsize(paths["64gib"]) > 64 * GIB
        yield paths
    finally:
        for path in paths.values():
            if os.path.exists(path):
                os.unlink(path)


def test_pread_reads_slices_in_o_header_memory(sparse_files: Dict[str, str]) -> None:
    done = run_capped(
        READ_SLICES, [json.dumps(sparse_files), "pread", json.dumps(CHECKS), str(HEADROOM)], timeout=TIMEOUT
    )
    # A whole 1 TiB tensor cannot be read under the cap: a clean exception, not a crash.
    assert done.stdout.split() == ["RuntimeError"], done.stdout


def test_mmap_maps_files_larger_than_memory_and_slices_lazily(sparse_files: Dict[str, str]) -> None:
    run_capped(READ_SLICES, [json.dumps(sparse_files), "mmap", json.dumps(CHECKS), "0"], timeout=TIMEOUT)
