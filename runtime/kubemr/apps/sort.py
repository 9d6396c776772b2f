"""sort: the input lines in sorted order.

Each line is a key (sorted by code point); duplicates are kept. With the sampled range
partitioner, part files read in order are globally sorted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class Sort:
    """Sorts lines."""

    partitioner = "range"

    def map(self, key: str, line: str) -> Iterator[tuple[str, None]]:
        yield line, None

    def reduce(self, key: str, values: Iterable[None]) -> Iterator[tuple[str, None]]:
        for _ in values:
            yield key, None
