"""grep: the input lines that match a regular expression.

``args.pattern`` is a Python regular expression, searched (not anchored) in each line.
Output: ``path<TAB>line`` for every matching line, duplicates kept. The lines of one
file are sorted, so the output is deterministic whatever the task order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator


class Grep:
    """Selects matching lines."""

    def __init__(self, pattern: str) -> None:
        try:
            self.regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"spec.app.args.pattern: {pattern!r} is not a regex: {exc}") from None

    def map(self, key: str, line: str) -> Iterator[tuple[str, str]]:
        if self.regex.search(line):
            yield key, line

    def reduce(self, key: str, values: Iterable[str]) -> Iterator[tuple[str, str]]:
        for line in sorted(values):
            yield key, line
