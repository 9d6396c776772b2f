"""A test app that records every map call (pid, time, line) in a per-process log.

Used to show that map tasks run in parallel on different workers and that, with no
failures, every input line is mapped exactly once.
"""

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path


class Counting:
    def __init__(self, log_dir: str, delay: str = "0") -> None:
        self.log_dir = Path(log_dir)
        self.delay = float(delay)
        self.log = None

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        if self.log is None:
            self.log = (self.log_dir / f"{os.getpid()}.log").open("a", buffering=1)
        if self.delay:
            time.sleep(self.delay)
        self.log.write(f"{time.time():.6f}\t{line}\n")
        yield line.split(maxsplit=1)[0], 1

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)
