"""A test app slowed down on purpose, so that a scraper sees every phase of a running job:
``map`` sleeps ``map_delay`` seconds per line, ``reduce`` ``reduce_delay`` per key. It
counts first words, with a combiner."""

import time
from collections.abc import Iterable, Iterator


class Slow:
    def __init__(self, map_delay: str = "0", reduce_delay: str = "0") -> None:
        self.map_delay = float(map_delay)
        self.reduce_delay = float(reduce_delay)

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        time.sleep(self.map_delay)
        words = line.split()
        if words:
            yield words[0], 1

    def combine(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        time.sleep(self.reduce_delay)
        yield key, sum(values)
