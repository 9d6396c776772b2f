"""indexer: an inverted index, as MIT 6.824's indexer.

Output: ``word<TAB>path1,path2,...``: the sorted input files in which the word occurs
(words as in wordcount).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from kubemr.apps.wordcount import count_block, words


class Indexer:
    """Maps each word to the files that contain it."""

    def map(self, key: str, line: str) -> Iterator[tuple[str, str]]:
        for word in set(words(line)):
            yield word, key

    def combine(self, key: str, values: Iterable[str]) -> Iterator[tuple[str, str]]:
        for path in sorted(set(values)):
            yield key, path

    def reduce(self, key: str, values: Iterable[str]) -> Iterator[tuple[str, str]]:
        yield key, ",".join(sorted(set(values)))

    def map_split(
        self, key: str, blocks: Iterable[bytes], combine: bool
    ) -> Iterable[tuple[Any, Any]]:
        """Fast path: each distinct word of the split once (the combiner's result)."""
        if not combine:
            return (
                pair
                for block in blocks
                for line in block.split(b"\n")
                for pair in self.map(key, line.decode("utf-8", "surrogateescape"))
            )
        seen: set[str] = set()
        for block in blocks:
            seen.update(count_block(block))
        return ((word, key) for word in seen)
