"""Loading tensors straight onto a CUDA device.

The reference makes each tensor on the CPU (a view of a map of the file)
and moves it with ``tensor.to(device)``: a copy from pageable memory, which
CUDA stages through a buffer of its own, one tensor at a time, waiting for
each before the next is read.

Here the file is read (in parallel, with the GIL released) into a ring of
pinned staging buffers, and each buffer, once filled, is copied to the
device asynchronously while the next ones are read: the disk or the page
cache and the host-to-device link work at the same time. Pinned memory is
bounded by the ring (``SLOTS`` buffers of ``SLOT`` bytes), whatever the
model's size. A cold file is read with direct I/O, straight into the ring.
Each tensor still gets device memory of its own, as with the reference, so
that freeing one frees its memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Tuple

from ironsafe import _convert
from ironsafe._ironsafe import DIRECT_ALIGN, Reader

# The ring: two buffers of 64 MiB, one being read while the other is copied.
# Measured on an H100 machine (16 cores, PCIe 5 x16) loading an 8 GB file
# from the page cache, in one process: 0.258 s with 2 x 64 MiB, 0.280 s with
# 4 x 64 MiB, 0.319 s with 2 x 32 MiB, 0.227 s with 2 x 256 MiB. But pinning
# fresh memory costs about 0.5 ms per MiB there (132 ms for 256 MiB), paid
# by every first load of a process, so 2 x 64 MiB is the quickest first load.
SLOT = 64 << 20
SLOTS = 2

# A piece of a chunk: (target index, offset in the target, offset in the
# chunk, length).
Piece = Tuple[int, int, int, int]


@dataclass
class Chunk:
    """A contiguous range of the file, read into one staging buffer."""

    offset: int
    length: int = 0
    pieces: List[Piece] = field(default_factory=list)


def is_cuda(device: Any) -> bool:
    """Whether ``device`` (as ``safe_open`` normalizes it) is a CUDA device
    that torch can use here; an int means a CUDA index, as in the reference."""
    kind = "cuda" if isinstance(device, int) else str(device).partition(":")[0]
    if kind != "cuda":
        return False
    import torch

    return bool(torch.cuda.is_available())


def load(reader: Reader, infos: list[_convert.Info], device: Any) -> dict[str, Any]:
    """The tensors of ``infos`` as torch tensors on CUDA device ``device``,
    complete when this returns."""
    import torch

    for _, code, _, _, _ in infos:
        _convert.torch_dtype(code)  # unsupported dtypes fail before any allocation
    device = torch.device(device)
    with torch.cuda.device(device):
        targets = [torch.empty(end - begin, dtype=torch.uint8, device=device) for *_, begin, end in infos]
        order = sorted(range(len(infos)), key=lambda index: infos[index][3])
        chunks = plan([(infos[index][3], infos[index][4]) for index in order], SLOT)
        _copy_through_ring(reader, chunks, [targets[index] for index in order])
    return {name: _convert.torch_typed(raw, code, shape) for (name, code, shape, _, _), raw in zip(infos, targets)}


def plan(ranges: list[tuple[int, int]], slot: int) -> list[Chunk]:
    """Cuts the file ranges ``(begin, end)``, sorted by ``begin``, into
    chunks of at most ``slot`` bytes of contiguous file. Ranges that follow
    each other share chunks (many small tensors take one read); a gap
    between ranges starts a new chunk (its bytes are not read)."""
    chunks: list[Chunk] = []
    for index, (begin, end) in enumerate(ranges):
        at = begin
        while at < end:
            if not chunks or chunks[-1].offset + chunks[-1].length != at or chunks[-1].length == slot:
                chunks.append(Chunk(at))
            chunk = chunks[-1]
            length = min(end - at, slot - chunk.length)
            chunk.pieces.append((index, at - begin, chunk.length, length))
            chunk.length += length
            at += length
    return chunks


def _copy_through_ring(reader: Reader, chunks: list[Chunk], targets: list[Any]) -> None:
    """Reads each chunk into a pinned buffer of the ring and copies its
    pieces to their targets on the current stream, reusing a buffer once
    the copies out of it are done; waits for the last copy.

    A cold file is read past the page cache, straight into the ring (see
    ``ironsafe``'s direct reads): the page cache would only add a copy."""
    import torch

    if not chunks:
        return
    direct = reader.is_cold()
    size = max(chunk.length for chunk in chunks)
    if direct:  # whole aligned blocks around each chunk
        size = -(-size // DIRECT_ALIGN) * DIRECT_ALIGN + 2 * DIRECT_ALIGN
    count = min(SLOTS, len(chunks))
    # Pinned memory starts on a page; were it not aligned for direct reads,
    # the reader would read the usual way.
    ring = torch.empty(count * size, dtype=torch.uint8, pin_memory=True)
    buffers = [ring[slot * size : (slot + 1) * size] for slot in range(count)]
    emptied: list[Any] = [None] * count
    stream = torch.cuda.current_stream()
    try:
        for number, chunk in enumerate(chunks):
            slot = number % count
            if emptied[slot] is not None:
                emptied[slot].synchronize()
            buffer = buffers[slot]
            shift = reader.read_range_into(chunk.offset, chunk.length, buffer.data_ptr(), size, direct=direct)
            if shift is None:  # through the page cache; if direct reads were refused, for the rest too
                direct, shift = False, 0
            for target, start, at, length in chunk.pieces:
                part = buffer[shift + at : shift + at + length]
                targets[target][start : start + length].copy_(part, non_blocking=True)
            emptied[slot] = torch.cuda.Event()
            emptied[slot].record(stream)
    finally:
        # Also after a failed read: no copy may still be reading the ring
        # when it is freed.
        stream.synchronize()
