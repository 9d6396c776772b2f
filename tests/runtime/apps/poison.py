"""A test app whose map raises on any line containing POISON."""

from collections.abc import Iterable, Iterator


class Poison:
    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        if "POISON" in line:
            raise ValueError(f"cannot map poisoned line {line!r}")
        for word in line.split():
            yield word, 1

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)
