"""Saves killed with SIGKILL part way: the destination is always a complete
file (the old one or a new one), and the next save cleans up after the
killed writer. Real processes, real kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import ironsafe
import ironsafe.numpy

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

# The writer saves versions start + 1, start + 2, ... of the same dict over
# one path, and says which version it is about to save. Every tensor of version k is full
# of k, so a file mixing two versions, or cut short, cannot pass for one.
WRITER = """
import sys
import numpy as np
import ironsafe.numpy

path, durable, version = sys.argv[1], sys.argv[2] == "durable", int(sys.argv[3])
while True:
    version += 1
    tensors = {f"layer.{i}": np.full((1024, 1024), version, dtype=np.float32) for i in range(12)}
    print(version, flush=True)
    ironsafe.numpy.save_file(tensors, path, metadata={"version": str(version)}, durable=durable)
"""


def assert_complete(path: Path, newest: int) -> int:
    """Checks that ``path`` is one whole version, with both implementations,
    and none newer than the newest begun; returns which."""
    for load in (safetensors.numpy.load_file, ironsafe.numpy.load_file):
        tensors = load(str(path))
        assert sorted(tensors) == sorted(f"layer.{i}" for i in range(12))
        values = {float(value) for tensor in tensors.values() for value in np.unique(tensor)}
        assert len(values) == 1, f"a mix of versions: {values}"
        assert all(tensor.shape == (1024, 1024) for tensor in tensors.values())
    with ironsafe.safe_open(path, "np") as file:
        version = int(file.metadata()["version"])
    assert values == {float(version)}
    assert 0 <= version <= newest
    return version


@pytest.mark.parametrize("durable", ["fast", "durable"])
def test_a_killed_save_leaves_the_old_file_or_the_new_one(tmp_path: Path, durable: str) -> None:
    path = tmp_path / "model.safetensors"
    ironsafe.numpy.save_file(
        {f"layer.{i}": np.zeros((1024, 1024), dtype=np.float32) for i in range(12)},
        path,
        metadata={"version": "0"},
    )
    rng = np.random.default_rng(7)
    versions = []
    cut_short = 0  # kills that caught a save part way: they leave a temporary file
    while len(versions) < 6 or cut_short < 2:
        assert len(versions) < 40, "no kill landed inside a save"
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), durable, str(1000 * len(versions))],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        # Let it get going, then kill it at a random point of some save.
        newest = int(writer.stdout.readline())
        time.sleep(float(rng.uniform(0.0, 0.4)))
        writer.send_signal(signal.SIGKILL)
        newest = max([newest, *map(int, writer.stdout.read().split())])
        writer.wait()
        assert writer.returncode == -signal.SIGKILL
        versions.append(assert_complete(path, newest))
        # Its temporary file, if the kill came during a save (the next
        # writer removes it: its process is gone).
        temp = f".model.safetensors.ironsafe-tmp.{writer.pid}."
        cut_short += any(p.name.startswith(temp) for p in tmp_path.iterdir())

    assert versions == sorted(versions), "a kill brought back an older file"
    # The kills left temporary files; the next save into the directory
    # removes them, and nothing else.
    (tmp_path / "notes.txt").write_text("kept")
    ironsafe.numpy.save_file({"x": np.ones(3, dtype=np.int8)}, tmp_path / "other.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "notes.txt", "other.safetensors"]
    assert_complete(path, max(versions))


def test_leftovers_of_a_running_writer_are_kept(tmp_path: Path) -> None:
    # Our own process runs: its temporary names are not leftovers.
    mine = tmp_path / f".model.safetensors.ironsafe-tmp.{os.getpid()}.99"
    mine.write_bytes(b"in progress")
    ironsafe.numpy.save_file({"x": np.ones(3, dtype=np.int8)}, tmp_path / "model.safetensors")
    assert mine.read_bytes() == b"in progress"
