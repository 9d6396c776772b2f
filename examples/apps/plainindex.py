"""A user's inverted index, written the plain way: which input files hold each word.

``map`` yields ``(word, path)`` once per distinct lower-cased word of a line; ``combine``
keeps each path once; ``reduce`` writes the sorted paths, comma-separated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

WORD = re.compile(r"[a-z]+")


class InvertedIndex:
    """Maps each word to the files that contain it."""

    def map(self, key: str, line: str) -> Iterator[tuple[str, str]]:
        for word in set(WORD.findall(line.lower())):
            yield word, key

    def combine(self, key: str, values: Iterable[str]) -> Iterator[tuple[str, str]]:
        for path in set(values):
            yield key, path

    def reduce(self, key: str, values: Iterable[str]) -> Iterator[tuple[str, str]]:
        yield key, ",".join(sorted(set(values)))
