"""An example second step: the most frequent words, from the word counts of step 1.

Run it with:  kubemr run examples/topwords-job.yaml

Step 1 (the built-in wordcount) writes ``(word, count)`` records; this step's ``map``
gets each of them with its types (``count`` is an int, not text: see docs/steps.md),
sends them all to one key, and ``reduce`` keeps the ``top`` most frequent.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any


class TopWords:
    """The ``top`` most frequent words, most frequent first (ties alphabetically)."""

    def __init__(self, top: str = "20") -> None:
        self.top = int(top)

    def map(self, word: str, count: int) -> Iterator[tuple[None, list[Any]]]:
        yield None, [count, word]

    def reduce(self, key: None, values: Iterable[list[Any]]) -> Iterator[tuple[str, int]]:
        for count, word in heapq.nsmallest(self.top, values, key=lambda v: (-v[0], v[1])):
            yield word, count
