"""A word count whose map and reduce kill or stall their own worker at random.

In the spirit of MIT 6.824's ``crash.go``. Faults happen only when ``KUBEMR_CRASH_SEED``
is set and only inside a ``kubemr worker`` process, so the sequential oracle (the same
app run without the variable) is crash-free.

Each worker process draws its fate once, from ``Random(f"{seed}:{name}")`` where
``name`` is its worker name (``mapper-0``; a replacement is ``mapper-0-r1``, so it does
not repeat its predecessor's fate, and a run is repeatable): with probability ``crash``
it ``os._exit(1)``s after a random number of calls, with probability ``stall`` it stops
itself (SIGSTOP) for ``stall_seconds`` (a detached ``sleep`` sends SIGCONT), long
enough to be declared dead, and otherwise it behaves. Each fault is first appended to
the file ``KUBEMR_CRASH_LOG`` names (when set), one line per fault, so that a test can
check that faults did happen.

``delay`` and ``reduce_delay`` (seconds per map or reduce call, in workers only) slow a
phase down so the chaos tests can hit a worker while it works. ``announce`` (a
directory) makes a worker create ``<announce>/<name>`` at its first map call: a test
then knows that this worker holds a map task in progress.
"""

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

SEED_ENV = "KUBEMR_CRASH_SEED"
LOG_ENV = "KUBEMR_CRASH_LOG"
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
        announce: str = "",
    ) -> None:
        in_worker = "worker" in sys.argv
        self.name = worker_name()
        self.announce = Path(announce) / self.name if announce and in_worker else None
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
            rng = random.Random(f"{seed}:{self.name}")
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
        if log := os.environ.get(LOG_ENV):
            with open(log, "a", encoding="utf-8") as faults:
                faults.write(f"{self.name} {what} at {kind} call {after}\n")
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
        if self.announce is not None and not self.announce.exists():
            self.announce.touch()
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


def worker_name() -> str:
    """This worker's name (``--name``), or the pid outside a named worker."""
    if "--name" in sys.argv[:-1]:
        return sys.argv[sys.argv.index("--name") + 1]
    return str(os.getpid())
