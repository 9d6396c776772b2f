"""A word count with wide output lines, for tests of output commit on object stores:
each key's line carries ``width`` bytes of padding, so a reduce task writes megabytes
(a multipart upload of several parts on S3), and ``reduce_delay`` seconds per key (in
workers only, never in the sequential oracle) keep an attempt mid-upload long enough
to be killed there."""

import sys
import time
from collections.abc import Iterable, Iterator


class Wide:
    def __init__(self, width: str = "4096", reduce_delay: str = "0") -> None:
        self.padding = "." * int(width)
        self.reduce_delay = float(reduce_delay) if "worker" in sys.argv else 0.0

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        for word in line.split():
            yield word, 1

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, str]]:
        if self.reduce_delay:
            time.sleep(self.reduce_delay)
        yield key, f"{sum(values)} {self.padding}"
