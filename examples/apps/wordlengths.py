"""An example user app: how many words of each length, and the longest word of each length.

Run it with:  kubemr run examples/wordlengths-job.yaml

It shows the whole app contract (see docs/apps.md):
- the class is built once per worker with ``spec.app.args`` as keyword arguments;
- ``map`` gets the input file's path and one line, and yields (key, value) pairs;
- ``combine`` (optional) pre-aggregates map output; it may run any number of times, so it
  must take and give values of the shape ``map`` yields;
- ``reduce`` gets each key once with all its values and yields output pairs, written as
  ``key<TAB>value`` lines (lists and dicts as JSON).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from kubemr.apps.wordcount import words


class WordLengths:
    """Counts the words of each length and names the alphabetically first of them."""

    def __init__(self, min_length: str = "1") -> None:
        self.min_length = int(min_length)

    def map(self, key: str, line: str) -> Iterator[tuple[int, list[object]]]:
        for word in words(line):
            if len(word) >= self.min_length:
                yield len(word), [1, word.lower()]

    def combine(
        self, key: int, values: Iterable[list[object]]
    ) -> Iterator[tuple[int, list[object]]]:
        yield key, self._merge(values)

    def reduce(
        self, key: int, values: Iterable[list[object]]
    ) -> Iterator[tuple[int, dict[str, object]]]:
        count, example = self._merge(values)
        yield key, {"words": count, "first": example}

    @staticmethod
    def _merge(values: Iterable[list[object]]) -> list[object]:
        total, first = 0, None
        for count, word in values:
            assert isinstance(count, int) and isinstance(word, str)
            total += count
            first = word if first is None or word < first else first
        return [total, first]
