"""Cutting the input into map tasks: line-aligned byte ranges.

Pure: it takes file sizes and returns splits. A split is a byte range of one file and
owns every line that *starts* inside it, so every line belongs to exactly one split
whatever the split size (see :func:`kubemr.inputs.read_blocks` for the reading side).
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass

DEFAULT_SPLIT_SIZE = 64 * 2**20
"""Bytes per split when ``spec.input.splitSize`` is not set and the input is large."""
MIN_DEFAULT_SPLIT_SIZE = 2**20
"""The smallest split the default rule makes (bytes): below it a map task's start-up
costs more than a second mapper saves."""


@dataclass(frozen=True, slots=True)
class Split:
    """Bytes ``[start, end)`` of ``path``: the input of one map task."""

    path: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.path}[{self.start}:{self.end}]"


def plan_splits(
    files: Iterable[tuple[str, int]], split_size: int, whole: Container[str] = ()
) -> list[Split]:
    """Cut each (path, size) into splits of at most ``split_size`` bytes, in input order;
    a path in ``whole`` (a compressed file, or any file under the whole-file format) is
    one split however large.

    Empty files get no split; they contribute no lines.
    """
    if split_size <= 0:
        raise ValueError(f"split size must be positive, got {split_size}")
    return [
        Split(path, start, min(start + step, size))
        for path, size in files
        for step in [size if path in whole else split_size]
        for start in range(0, size, max(step, 1))
    ]


def default_split_size(total_bytes: int, mappers: int) -> int:
    """The split size when none is set: :data:`DEFAULT_SPLIT_SIZE`, unless the input is
    smaller than that many bytes per mapper; then ``ceil(total / mappers)`` (at least
    :data:`MIN_DEFAULT_SPLIT_SIZE`), so that every mapper gets a split of one file."""
    if mappers < 1:
        raise ValueError(f"mappers must be positive, got {mappers}")
    per_mapper = -(-total_bytes // mappers)
    return max(MIN_DEFAULT_SPLIT_SIZE, min(DEFAULT_SPLIT_SIZE, per_mapper))
