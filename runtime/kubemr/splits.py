"""Cutting the input into map tasks: line-aligned byte ranges.

Pure: it takes file sizes and returns splits. A split is a byte range of one file and
owns every line that *starts* inside it, so every line belongs to exactly one split
whatever the split size (see :func:`kubemr.inputs.read_blocks` for the reading side).
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass


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
