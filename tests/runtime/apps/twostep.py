"""A two-step job whose second step depends on the first one's types: step 1 counts
words and emits ``(count, (word, length))`` keyed by a tuple, step 2 groups by word
length and keeps the most frequent words. A text round trip between the steps would
turn the tuple key and int values into strings and change the result."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any


class CountWords:
    """Step 1: word counts, keyed ``(word, length)``, valued by int counts."""

    def map(self, key: str, line: str) -> Iterator[tuple[Any, Any]]:
        for word in line.split():
            yield (word.lower(), len(word)), 1

    def combine(self, key: Any, values: Iterator[int]) -> Iterator[tuple[Any, Any]]:
        yield key, sum(values)

    def reduce(self, key: Any, values: Iterator[int]) -> Iterator[tuple[Any, Any]]:
        yield key, sum(values)


class TopByLength:
    """Step 2: per word length, the three most frequent words and their total count."""

    def map(self, key: Any, value: Any) -> Iterator[tuple[Any, Any]]:
        assert type(key) is tuple and type(value) is int, (key, value)  # types kept
        word, length = key
        yield length, [value, word]

    def reduce(self, key: int, values: Iterator[list[Any]]) -> Iterator[tuple[Any, Any]]:
        pairs = sorted(values, key=lambda p: (-p[0], p[1]))
        yield key, {"total": sum(p[0] for p in pairs), "top": [p[1] for p in pairs[:3]]}


class StallingTopByLength(TopByLength):
    """Step 2, slowed down: ``map`` sleeps ``map_delay`` seconds per record, so that a
    test can kill the master while step 2 runs."""

    def __init__(self, map_delay: str = "0") -> None:
        self.map_delay = float(map_delay)

    def map(self, key: Any, value: Any) -> Iterator[tuple[Any, Any]]:
        time.sleep(self.map_delay)
        yield from super().map(key, value)
