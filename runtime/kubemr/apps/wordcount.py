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
_TOKEN_BYTES = bytes(
    b if b >= 0x80 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A else 0x20 for b in range(256)
)
"""A ``bytes.translate`` table keeping ASCII letters and non-ASCII bytes and turning every
other byte into a space: ``block.translate(_TOKEN_BYTES).split()`` are the maximal runs
of ``[A-Za-z\x80-\xff]`` (what ``re.findall`` would find, about twice as fast)."""
_SLICE_BYTES = 1 << 20
"""Bytes tokenized at a time, which bounds the token list (about 10x the bytes)."""


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


def count_tokens(block: bytes, counts: Counter[bytes]) -> None:
    """Add the maximal runs of ASCII letters and non-ASCII bytes in ``block`` to
    ``counts``, at C speed, a slice of about ``_SLICE_BYTES`` at a time."""
    text = block.translate(_TOKEN_BYTES)
    end = len(text)
    start = 0
    while start < end:
        cut = text.find(b" ", start + _SLICE_BYTES) if end - start > _SLICE_BYTES else -1
        if cut == -1:
            cut = end
        counts.update(text[start:cut].split())
        start = cut


def words_of_tokens(tokens: Counter[bytes]) -> Counter[str]:
    """Turn token counts from :func:`count_tokens` into word counts: ASCII tokens are
    words; the few with non-ASCII bytes (letters such as é, curly quotes, undecodable
    bytes) are decoded and split by ``str.isalpha`` exactly. Multi-byte characters are
    never cut, because every byte of one is non-ASCII."""
    counts: Counter[str] = Counter()
    for token, n in tokens.items():
        if token.isascii():
            counts[token.decode("ascii")] += n
        else:
            for word in words(token.decode("utf-8", "surrogateescape")):
                counts[word] += n
    return counts


def count_block(block: bytes) -> Counter[str]:
    """Word counts of a block of UTF-8 text, equal to counting :func:`words` per line."""
    tokens: Counter[bytes] = Counter()
    count_tokens(block, tokens)
    return words_of_tokens(tokens)


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
            tokens: Counter[bytes] = Counter()
            for block in blocks:
                count_tokens(block, tokens)
            return words_of_tokens(tokens).items()
        return (
            (word, 1)
            for block in blocks
            for word, n in count_block(block).items()
            for _ in range(n)
        )
