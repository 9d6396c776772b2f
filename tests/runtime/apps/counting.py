"""A test app that records every map call (pid, time, line) in a per-process log.

Used to show that map tasks run in parallel on different workers and that, with no
failures, every input line is mapped exactly once. With ``together=N``, a process's first
map call waits until N processes have made theirs (their logs exist), so that N mappers
hold a task at once however slowly some of them start.
"""

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

TOGETHER_DEADLINE = 120.0
"""Seconds a first map call waits for the others before it goes on alone."""


class Counting:
    def __init__(self, log_dir: str, delay: str = "0", together: str = "0") -> None:
        self.log_dir = Path(log_dir)
        self.delay = float(delay)
        self.together = int(together)
        self.log = None

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        if self.log is None:
            self.log = (self.log_dir / f"{os.getpid()}.log").open("a", buffering=1)
            self._wait_for_the_others()
        if self.delay:
            time.sleep(self.delay)
        self.log.write(f"{time.time():.6f}\t{line}\n")
        yield line.split(maxsplit=1)[0], 1

    def _wait_for_the_others(self) -> None:
        deadline = time.monotonic() + TOGETHER_DEADLINE
        while len(list(self.log_dir.glob("*.log"))) < self.together:
            if time.monotonic() > deadline:
                return  # the test's own assertions say what went wrong
            time.sleep(0.01)

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)
