"""Reads a cold file in 64 MiB chunks into one aligned buffer, through the
page cache and with direct reads (``Reader.read_range_into``), alternating
(a tuning aid for the GPU loader's cold path, not part of the report):

    IRONSAFE_THREADS=16 python bench/direct_read.py FILE [ROUNDS]

Each read starts from a cold file (``POSIX_FADV_DONTNEED``). Prints each
sample, then the median and range of each way.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import statistics
import sys
import time

import pagecache

from ironsafe._ironsafe import DIRECT_ALIGN, Reader

CHUNK = 64 << 20


def main(path: str, rounds: int) -> None:
    size = os.path.getsize(path)
    buffer = mmap.mmap(-1, CHUNK + 2 * DIRECT_ALIGN)  # page-aligned
    buffer.write(b"\0" * len(buffer))  # faulted in before any timing
    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for number in range(rounds):
        for direct in (False, True) if number % 2 == 0 else (True, False):
            pagecache.evict(path)
            time.sleep(0.5)
            reader = Reader(path)
            first = reader.infos()[0][3]
            start = time.perf_counter()
            for at in range(first, size, CHUNK):
                reader.read_range_into(at, min(CHUNK, size - at), address, len(buffer), direct=direct)
            seconds[direct].append(time.perf_counter() - start)
            print("direct" if direct else "buffered", f"{seconds[direct][-1]:.3f} s", flush=True)
    for direct, times in seconds.items():
        median = statistics.median(times)
        way = "direct" if direct else "buffered"
        print(f"{way}: median {median:.3f} s ({size / median / 1e9:.2f} GB/s) [{min(times):.3f}..{max(times):.3f}]")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 6)
