"""A word count whose reduce waits for a file to exist before it reduces a key: a test
holds every reduce attempt mid-write (its part file open) until it creates the file."""

import time
from collections.abc import Iterable, Iterator
from pathlib import Path


class Gated:
    def __init__(self, gate: str) -> None:
        self.gate = Path(gate)

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        for word in line.split():
            yield word, 1

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        while not self.gate.exists():
            time.sleep(0.05)
        yield key, sum(values)
