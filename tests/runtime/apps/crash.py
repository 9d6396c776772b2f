"""A word count whose map and reduce kill or stall their own worker at random.

In the spirit of MIT 6.824's ``crash.go``. Faults happen only when ``KUBEMR_CRASH_SEED``
is set and only inside a ``kubemr worker`` process, so the sequential oracle (the same
app run without the variable) is crash-free.

Each worker process draws its fate once, from ``Random(f"{seed}:{pid}")`` (the pid
keeps a replacement from repeating its predecessor's fate): with probability
``crash`` it ``os._exit(1)``s after a random number of calls, with probability
``stall`` it stops itself (SIGSTOP) for ``stall_seconds`` (a detached ``sleep`` sends
SIGCONT), long enough to be declared dead, and otherwise it behaves.

``delay`` and ``reduce_delay`` (seconds per map or reduce call, in workers only) slow a
phase down so the chaos tests can hit a worker while it works.
"""

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator

SEED_ENV = "KUBEMR_CRASH_SEED"
SPENT_ENV = "KUBEMR_CRASH_SPENT"
"""Set (to the pid) once this process has stalled: it does not stall again, even if the
worker reloads the app when it re-registers."""


class Crash:
    def __init__(
        self,
        crash: str = "0.35",
        stall: str = "0.15",
        stall_seconds: str = "2.5",
        map_calls: str = "400",
        reduce_calls: str = "60",
        delay: str = "0",
        reduce_delay: str = "0",
    ) -> None:
        in_worker = "worker" in sys.argv
        self.delay = float(delay) if in_worker else 0.0
        self.reduce_delay = float(reduce_delay) if in_worker else 0.0
        self.crash = float(crash)
        self.stall = float(stall)
        self.stall_seconds = float(stall_seconds)
        self.limits = {"map": int(map_calls), "reduce": int(reduce_calls)}
        self.calls = 0
        self.fate: tuple[str, int] | None = None

    def _maybe_fault(self, kind: str) -> None:
        seed = os.environ.get(SEED_ENV)
        if seed is None or "worker" not in sys.argv:
            return
        if os.environ.get(SPENT_ENV) == str(os.getpid()):
            return
        if self.fate is None:
            rng = random.Random(f"{seed}:{os.getpid()}")
            draw = rng.random()
            after = rng.randint(1, self.limits[kind])
            if draw < self.crash:
                self.fate = ("crash", after)
            elif draw < self.crash + self.stall:
                self.fate = ("stall", after)
            else:
                self.fate = ("none", 0)
        self.calls += 1
        what, after = self.fate
        if what == "none" or self.calls != after:
            return
        if what == "crash":
            os._exit(1)
        os.environ[SPENT_ENV] = str(os.getpid())
        subprocess.Popen(
            ["sh", "-c", f"sleep {self.stall_seconds}; kill -CONT {os.getpid()}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.kill(os.getpid(), signal.SIGSTOP)

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        self._maybe_fault("map")
        if self.delay:
            time.sleep(self.delay)
        for word in line.split():
            yield word, 1

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        self._maybe_fault("reduce")
        if self.reduce_delay:
            time.sleep(self.reduce_delay)
        yield key, sum(values)
