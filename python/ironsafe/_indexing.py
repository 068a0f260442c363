"""Python indexing semantics for ``get_slice(name)[key]``.

A key (ints, slices, ``...``, ``None``, or a tuple of these) is normalized
against a shape into what the Rust reader takes: per dimension a position or
a ``(start, stop, step)`` with ``step >= 1``. Negative steps read the
mirrored positive range and flip the result; ``None`` inserts a dimension of
size 1. Bad keys raise errors that are both ``SafetensorError`` (as the
reference raises) and the ``IndexError``/``TypeError``/``ValueError`` Python
raises.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Union

from ironsafe._ironsafe import SafetensorError


class SliceIndexError(SafetensorError, IndexError):
    """An index out of range, or more indices than dimensions."""


class SliceTypeError(SafetensorError, TypeError):
    """An index of a type slicing does not support."""


class SliceValueError(SafetensorError, ValueError):
    """A slice with a step of zero."""


Index = Union[int, "tuple[int, int, int]"]


@dataclass
class Plan:
    """A normalized key: what to read, then how to reshape it."""

    # One entry per dimension of the tensor, at most.
    indices: list[Index] = field(default_factory=list)
    # Axes of the read result to reverse (negative steps).
    flips: list[int] = field(default_factory=list)
    # Positions in the final result where ``None`` inserts a dimension.
    new_axes: list[int] = field(default_factory=list)


def cannot_fail(key: Any, ndim: int) -> bool:
    """Whether ``key`` is slices alone (``start:stop`` with integer or no
    bounds, no step), at most ``ndim`` of them: a key no indexing refuses.
    A tensor-parallel rank slices every tensor with such keys; checking them
    takes less than normalizing them."""
    items = key if type(key) is tuple else (key,)
    if len(items) > ndim:
        return False
    for item in items:
        if type(item) is not slice or item.step is not None:
            return False
        if not (item.start is None or type(item.start) is int) or not (item.stop is None or type(item.stop) is int):
            return False
    return True


def normalize(key: Any, shape: list[int]) -> Plan:
    """Normalizes ``key`` against ``shape``; see the module docstring."""
    items = list(key) if isinstance(key, tuple) else [key]
    ellipses = sum(item is Ellipsis for item in items)
    if ellipses > 1:
        raise SliceIndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(item is not None and item is not Ellipsis for item in items)
    if consumed > len(shape):
        raise SliceIndexError(
            f"too many indices for tensor of dimension {len(shape)}: {consumed} were indexed"
        )

    plan = Plan()
    dim = 0  # the tensor dimension the next item applies to
    kept = 0  # the dimensions kept so far: the axes of what is read

    def keep(index: Index, flip: bool = False) -> None:
        nonlocal dim, kept
        plan.indices.append(index)
        if flip:
            plan.flips.append(kept)
        dim += 1
        kept += 1

    for position, item in enumerate(items):
        if item is Ellipsis:
            for _ in range(len(shape) - consumed):
                keep((0, shape[dim], 1))
        elif item is None:
            plan.new_axes.append(kept + len(plan.new_axes))
        elif isinstance(item, slice):
            try:
                start, stop, step = item.indices(shape[dim])
            except TypeError as err:  # bounds that are not integers
                raise SliceTypeError(f"slice at position {position}: {err}") from None
            except ValueError as err:  # a step of zero
                raise SliceValueError(f"slice at position {position}: {err}") from None
            # A step as long as the dimension or longer selects one position
            # at most: clamped, it fits the reader's integers whatever it was.
            longest = max(shape[dim], 1)
            step = max(-longest, min(step, longest))
            positions = range(start, stop, step)
            if step > 0:
                keep((start, max(start, stop), step))
            elif positions:
                keep((positions[-1], positions[0] + 1, -step), flip=True)
            else:
                keep((0, 0, 1))
        else:
            plan.indices.append(_position(item, position, shape[dim], dim))
            dim += 1
    return plan


def _position(item: Any, position: int, size: int, dim: int) -> int:
    if isinstance(item, bool):
        raise SliceTypeError(f"boolean index at position {position} is not supported")
    try:
        index = operator.index(item)
    except TypeError:
        raise SliceTypeError(
            f"unsupported index at position {position}: {type(item).__name__} "
            "(expected an int, a slice, '...' or None)"
        ) from None
    if not -size <= index < size:
        raise SliceIndexError(f"index {index} is out of bounds for dimension {dim} with size {size}")
    return index % size if size else index
