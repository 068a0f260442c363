"""The page cache of one file: residency (mincore), eviction (fadvise) and
the disk's direct-read bandwidth (O_DIRECT), through libc and ctypes."""

from __future__ import annotations

import ctypes
import mmap
import os
import time

PAGE = mmap.PAGESIZE
DIRECT_CHUNK = 8 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_MAP_FAILED = ctypes.c_void_p(-1).value


def _check(result: int) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def residency(path: str) -> float:
    """The fraction (0..1) of ``path``'s pages that are in the page cache,
    counted by mincore(2) over a shared read-only map (which faults nothing in)."""
    size = os.path.getsize(path)
    if size == 0:
        return 1.0
    fd = os.open(path, os.O_RDONLY)
    try:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    finally:
        os.close(fd)
    if address in (None, _MAP_FAILED):
        _check(-1)
    try:
        pages = (size + PAGE - 1) // PAGE
        vector = (ctypes.c_ubyte * pages)()
        _check(_libc.mincore(address, size, vector))
        return sum(byte & 1 for byte in bytes(vector)) / pages
    finally:
        _libc.munmap(address, size)


def evict(path: str) -> None:
    """Writes back ``path``'s dirty pages, then asks the kernel to drop all
    of its pages from the page cache (POSIX_FADV_DONTNEED)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def make_cold(path: str, tries: int = 10) -> float:
    """Evicts ``path`` until at most 1% of it is cached (readahead still in
    flight from an earlier reader can bring pages back), at most ``tries``
    times, 0.1 s apart; returns the residency left."""
    for _ in range(tries):
        evict(path)
        resident = residency(path)
        if resident <= 0.01:
            break
        time.sleep(0.1)
    return resident


def make_warm(path: str, tries: int = 5) -> float:
    """Reads ``path`` in until at least 99% of it is cached (proactive
    reclaim can take pages back meanwhile), at most ``tries`` times;
    returns the residency reached."""
    resident = residency(path)
    for _ in range(tries):
        if resident >= 0.99:
            break
        warm(path)
        resident = residency(path)
    return resident


def warm(path: str) -> None:
    """Reads ``path`` whole so that every page is in the page cache."""
    with open(path, "rb", buffering=0) as file:
        buffer = bytearray(DIRECT_CHUNK)
        while file.readinto(buffer):
            pass


def direct_read(path: str) -> int:
    """Reads ``path`` with O_DIRECT, 8 MiB at a time, into one page-aligned
    buffer (an anonymous map); returns the bytes read. Bypasses the page
    cache, so it measures the device itself."""
    buffer = mmap.mmap(-1, DIRECT_CHUNK)
    view = memoryview(buffer)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    total = 0
    try:
        while True:
            count = os.readv(fd, [view])
            total += count
            if count < DIRECT_CHUNK:
                return total
    finally:
        os.close(fd)
        view.release()
        buffer.close()
