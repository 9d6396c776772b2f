"""A user's grep, written the plain way: the lines that match a regular expression.

``args.pattern`` is searched in every line; a match yields ``(line, path)`` and
``reduce`` writes each matching line once per occurrence with its file. No combiner.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator


class Grep:
    """Selects matching lines."""

    def __init__(self, pattern: str) -> None:
        self.regex = re.compile(pattern)

    def map(self, key: str, line: str) -> Iterator[tuple[str, str]]:
        if self.regex.search(line):
            yield line, key

    def reduce(self, key: str, values: Iterable[str]) -> Iterator[tuple[str, str]]:
        for path in values:
            yield key, path
