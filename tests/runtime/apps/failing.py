"""A test app whose reduce fails on one key, every time: the job fails in its reduce
phase, after every map task is done (the status page then names the failing reduce task).

``key``: the key whose reduce raises; ``map_delay``: seconds ``map`` sleeps per line (so a
browser sees the job run).
"""

import time
from collections.abc import Iterable, Iterator


class Failing:
    def __init__(self, key: str = "w000", map_delay: str = "0") -> None:
        self.key = key
        self.map_delay = float(map_delay)

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        time.sleep(self.map_delay)
        for word in line.split():
            yield word, 1

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        if key == self.key:
            raise RuntimeError(f"reduce refuses key {key!r} (tests/runtime/apps/failing.py)")
        yield key, sum(values)
