"""Purpose-built apps for the app contract's features (tests/runtime/test_contract.py).

- ``CountedWords``: word count that increments counters from map, combine and reduce.
- ``Flaky``: ``CountedWords`` whose first attempt at each task in a worker process
  fails after counting (never in the sequential oracle), so only committed attempts may
  count.
- ``Poisoned``: map raises on lines containing ``POISON``, reduce on the key ``cursed``.
- ``InMapper``: in-mapper combining: counts in a dict across the split, emits them in
  ``map_teardown``; reduce hooks count the task's keys.
- ``Sessions``: secondary sort with tuple keys ``(user, time)``: reduce sees each user's
  events in time order and emits the user's sequence at the next user (and at teardown).
- ``JsonFields``: jsonl records; ``FileSizes``: whole-file records.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

WORD = re.compile(r"[A-Za-z]+")


class CountedWords:
    counters: Any

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        self.counters.increment("lines")
        for word in WORD.findall(line):
            self.counters.increment("words")
            if len(word) > 9:
                self.counters.increment("long.words")
            yield word.lower(), 1

    def combine(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        self.counters.increment("combined_keys")
        yield key, sum(values)

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        self.counters.increment("distinct_words")
        yield key, sum(values)


class Flaky(CountedWords):
    """Fails the first attempt of every task it meets in a worker process, half-way."""

    def __init__(self) -> None:
        self.in_worker = "worker" in sys.argv
        self.seen: set[str] = set()
        self.calls = 0
        self.task = ""

    def map_setup(self) -> None:
        self.calls = 0

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        self.calls += 1
        if self.in_worker and self.calls == 50 and f"m{key}" not in self.seen:
            self.seen.add(f"m{key}")
            raise RuntimeError(f"flaky: first attempt on {key} in pid {os.getpid()}")
        yield from super().map(key, line)

    def reduce_setup(self) -> None:
        self.calls = 0

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        self.calls += 1
        if self.in_worker and self.calls == 20 and f"r{key}" not in self.seen:
            self.seen.add(f"r{key}")
            raise RuntimeError("flaky: reduce")
        yield from super().reduce(key, values)


class Poisoned:
    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        for word in WORD.findall(line):
            yield word.lower(), 1
        if "POISON" in line:  # after yielding: the line's earlier pairs must be dropped
            raise ValueError(f"poisoned line {line[:20]!r}")

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        total = sum(values)
        yield key, total
        if key == "cursed":
            raise ValueError("cursed key")


class InMapper:
    counters: Any

    def map_setup(self) -> None:
        self.counts: dict[str, int] = {}

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        for word in WORD.findall(line):
            self.counts[word.lower()] = self.counts.get(word.lower(), 0) + 1
        return iter(())

    def map_teardown(self) -> Iterator[tuple[str, int]]:
        self.counters.increment("emitted_at_teardown", len(self.counts))
        yield from sorted(self.counts.items())

    def reduce_setup(self) -> None:
        self.keys = 0

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        self.keys += 1
        yield key, sum(values)

    def reduce_teardown(self) -> None:
        self.counters.increment("reduce_tasks_with_keys", 1 if self.keys else 0)


class Sessions:
    """Input lines ``user time page``; output ``user<TAB>[pages in time order]``."""

    def map(self, key: str, line: str) -> Iterator[tuple[tuple[str, int], str]]:
        user, time, page = line.split()
        yield (user, int(time)), page

    def reduce_setup(self) -> None:
        self.user: str | None = None
        self.pages: list[str] = []

    def _flush(self) -> Iterator[tuple[str, list[str]]]:
        if self.user is not None:
            yield self.user, self.pages

    def reduce(self, key: tuple[str, int], values: Iterable[str]) -> Iterator[Any]:
        user, _ = key
        if user != self.user:
            yield from self._flush()
            self.user, self.pages = user, []
        self.pages.extend(values)

    def reduce_teardown(self) -> Iterator[tuple[str, list[str]]]:
        yield from self._flush()


class JsonFields:
    def map(self, key: str, record: Any) -> Iterator[tuple[str, int]]:
        yield record["user"], int(record["n"])

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)


class FileSizes:
    def map(self, key: str, data: bytes) -> Iterator[tuple[str, list[int]]]:
        yield os.path.basename(key), [len(data), data.count(b"\n")]

    def reduce(self, key: str, values: Iterable[list[int]]) -> Iterator[tuple[str, Any]]:
        yield from ((key, v) for v in values)
