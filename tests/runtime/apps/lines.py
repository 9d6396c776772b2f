"""A test app with no combiner whose reduce depends on value order: the lines of each
first word, joined in the order reduce receives them (input order)."""

from collections.abc import Iterable, Iterator


class Lines:
    def map(self, key: str, line: str) -> Iterator[tuple[str, str]]:
        words = line.split()
        if words:
            yield words[0], line

    def reduce(self, key: str, values: Iterable[str]) -> Iterator[tuple[str, int]]:
        yield key, len("|".join(values))
