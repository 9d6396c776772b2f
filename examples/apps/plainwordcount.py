"""A user's wordcount, written the plain way: no fast path, one pair per word.

This is the app the performance work measures (bench/userapps.py): ``map`` yields
``(word, 1)`` for every regular-expression match in a line, and ``combine`` and
``reduce`` sum. A word is a run of ASCII letters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

WORD = re.compile(r"[A-Za-z]+")


class WordCount:
    """Counts words."""

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        for word in WORD.findall(line):
            yield word, 1

    def combine(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)
