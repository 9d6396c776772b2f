"""wordcount: how often each word occurs.

A word is a maximal run of letters by ``str.isalpha`` (case-sensitive), as the MIT
6.824 lab defines it. Output: ``word<TAB>count``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

_CANDIDATE = re.compile(r"[^\W\d_]+")  # a superset of letter runs; split exactly below
_BYTES_TOKEN = re.compile(rb"[A-Za-z\x80-\xff]+")  # ASCII letters, or anything non-ASCII


def words(text: str) -> list[str]:
    """The maximal runs of ``str.isalpha`` characters in ``text``."""
    out: list[str] = []
    for token in _CANDIDATE.findall(text):
        if token.isalpha():
            out.append(token)
        else:
            out.extend(_split_alpha(token))
    return out


def _split_alpha(token: str) -> list[str]:
    runs: list[str] = []
    start = -1
    for i, char in enumerate(token):
        if char.isalpha():
            if start < 0:
                start = i
        elif start >= 0:
            runs.append(token[start:i])
            start = -1
    if start >= 0:
        runs.append(token[start:])
    return runs


def count_block(block: bytes) -> Counter[str]:
    """Word counts of a block of UTF-8 text, equal to counting :func:`words` per line.

    ASCII letter runs are counted as bytes at C speed; the few tokens with non-ASCII
    bytes (letters such as é, curly quotes, undecodable bytes) are decoded and split by
    ``str.isalpha`` exactly. Multi-byte characters are never cut, because every byte of
    one is non-ASCII.
    """
    raw = Counter(_BYTES_TOKEN.findall(block))
    counts: Counter[str] = Counter()
    for token, n in raw.items():
        if token.isascii():
            counts[token.decode("ascii")] += n
        else:
            for word in words(token.decode("utf-8", "surrogateescape")):
                counts[word] += n
    return counts


class WordCount:
    """Counts words."""

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        for word in words(line):
            yield word, 1

    def combine(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)

    def map_split(
        self, key: str, blocks: Iterable[bytes], combine: bool
    ) -> Iterable[tuple[Any, Any]]:
        """Fast path: count whole blocks. Without a combiner, one pair per occurrence."""
        if combine:
            total: Counter[str] = Counter()
            for block in blocks:
                total.update(count_block(block))
            return total.items()
        return (
            (word, 1)
            for block in blocks
            for word, n in count_block(block).items()
            for _ in range(n)
        )
