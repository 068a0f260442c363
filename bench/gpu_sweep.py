"""Where ironsafe's load to a CUDA device spends its time, in one process
(a tuning aid for ``ironsafe._cuda``, not part of the report):

    python bench/gpu_sweep.py FILE

Prints the cost of pinning fresh host memory, the pinned host-to-device
bandwidth, the speed of reading FILE into pinned memory alone, then
``load_file(FILE, device="cuda")`` for several ring shapes (warm), and with
the default ring, cold, with and without the whole file announced to the
kernel first, and the reference's warm load. Run it again with
``IRONSAFE_THREADS`` set to compare thread counts (the ring shapes only).
Each line: min and median of a few runs; the first run of a ring shape also
pins its buffers.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any, Callable, Optional

import pagecache
import torch

import ironsafe._cuda as staging
import ironsafe.torch as ours
from ironsafe._ironsafe import DIRECT_ALIGN, Reader

MIB = 1 << 20


def timed(size: int, step: Callable[[], Any], runs: int = 3, before: Optional[Callable[[], None]] = None) -> str:
    seconds = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        result = step()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        del result
    median = statistics.median(seconds)
    return f"min {min(seconds):.3f} med {median:.3f} s ({size / 1e9 / median:.1f} GB/s)"


def main(path: str) -> None:
    threads = os.environ.get("IRONSAFE_THREADS", "default")
    size = os.path.getsize(path)
    torch.empty(1, device="cuda")
    torch.cuda.synchronize()
    if threads == "default":
        for mib in (64, 256, 1024):
            start = time.perf_counter()
            pinned = torch.empty(mib * MIB, dtype=torch.uint8, pin_memory=True)
            print(f"pin {mib} MiB: {time.perf_counter() - start:.4f} s", flush=True)
            del pinned
        device = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
        host = torch.empty(1 << 30, dtype=torch.uint8, pin_memory=True)
        print("h2d 1GiB x8:", timed(8 << 30, lambda: [device.copy_(host, non_blocking=True) for _ in range(8)]))
        del device, host

    reader = Reader(path)
    buffer = torch.empty(64 * MIB, dtype=torch.uint8, pin_memory=True)
    first = reader.infos()[0][3]

    def read_only() -> None:
        for at in range(first, size, 64 * MIB):
            reader.read_range_into(at, min(64 * MIB, size - at), buffer.data_ptr(), 64 * MIB)

    print(f"[threads={threads}] read-only into pinned 64MiB chunks:", timed(size, read_only), flush=True)
    defaults = staging.SLOT, staging.SLOTS
    for mib in (32, 64, 128, 256):
        for slots in (2, 4):
            staging.SLOT, staging.SLOTS = mib * MIB, slots
            load = timed(size, lambda: ours.load_file(path, device="cuda"))
            print(f"[threads={threads}] slot {mib} MiB x{slots}:", load, flush=True)
    staging.SLOT, staging.SLOTS = defaults
    if threads != "default":
        return

    def evict() -> None:
        pagecache.evict(path)

    def announced() -> Any:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        os.close(fd)
        return ours.load_file(path, device="cuda")

    # Whether the cold path can read past the page cache here: the file must
    # look cold once evicted, and a direct read into pinned memory must be taken.
    evict()
    reader = Reader(path)
    cold_before = reader.is_cold()
    block = torch.empty(64 * MIB + 3 * DIRECT_ALIGN, dtype=torch.uint8, pin_memory=True)
    skip = -block.data_ptr() % DIRECT_ALIGN
    shift = reader.read_range_into(first, 64 * MIB, block.data_ptr() + skip, 64 * MIB + 2 * DIRECT_ALIGN, direct=True)
    print(f"cold check: is_cold {cold_before}; direct read into pinned memory {'taken' if shift is not None else 'refused'}")
    del block

    cold = timed(size, lambda: ours.load_file(path, device="cuda"), runs=2, before=evict)
    print(f"[threads={threads}] cold, default:", cold, flush=True)
    print(f"[threads={threads}] cold, whole-file WILLNEED first:", timed(size, announced, runs=2, before=evict))
    import safetensors.torch as ref

    print(f"[threads={threads}] ref warm:", timed(size, lambda: ref.load_file(path, device="cuda"), runs=2))


if __name__ == "__main__":
    main(sys.argv[1])
