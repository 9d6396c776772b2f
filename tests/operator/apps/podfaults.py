"""A word count whose worker pods fail or crawl on purpose (operator tests).

``crash_pods`` is a regular expression: a worker whose pod name (``POD_NAME``) matches
exits with code 3 as soon as it loads the app, as a crashing container would. ``delay`` and
``reduce_delay`` are seconds per map or reduce call, so that a test can act on a job
while it maps or reduces. ``hold`` is a file path: every reduce call waits until that
file exists, so a test knows the job cannot finish before it creates the file; with
``hold_when`` (a glob pattern) only once something matches it (``out/part-*``: once a
reduce task is committed). ``hog_pods``: a matching worker touches ``hog_mib`` MiB of
memory at once (past its limit: OOMKilled). ``fill_pods``: a matching worker writes
``fill_mib`` MiB under ``$TMPDIR`` and waits (past its ephemeral-storage limit: Evicted).
All act
only in ``kubemr worker`` processes, so the sequential oracle (the same app run locally)
is fault-free.
"""

import glob
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path


class PodFaults:
    def __init__(
        self,
        crash_pods: str = "",
        delay: str = "0",
        reduce_delay: str = "0",
        hold: str = "",
        hold_when: str = "",
        hog_pods: str = "",
        hog_mib: str = "512",
        fill_pods: str = "",
        fill_mib: str = "64",
    ) -> None:
        in_worker = "worker" in sys.argv
        pod = os.environ.get("POD_NAME", "")
        if crash_pods and in_worker and re.search(crash_pods, pod):
            print(f"podfaults: pod {pod} crashes on purpose", flush=True)
            os._exit(3)
        if hog_pods and in_worker and re.search(hog_pods, pod):
            print(f"podfaults: pod {pod} takes {hog_mib} MiB on purpose", flush=True)
            self.hog = bytearray(int(hog_mib) * 2**20)
            for offset in range(0, len(self.hog), 4096):
                self.hog[offset] = 1  # touch every page
        if fill_pods and in_worker and re.search(fill_pods, pod):
            print(f"podfaults: pod {pod} writes {fill_mib} MiB on purpose", flush=True)
            block = os.urandom(2**20)
            with open(Path(os.environ.get("TMPDIR", "/tmp")) / "podfaults.fill", "wb") as out:
                for _ in range(int(fill_mib)):
                    out.write(block)
            while True:  # until the kubelet evicts the pod
                time.sleep(1)
        self.delay = float(delay) if in_worker else 0.0
        self.reduce_delay = float(reduce_delay) if in_worker else 0.0
        self.hold = Path(hold) if hold and in_worker else None
        self.hold_when = hold_when

    def _held(self) -> bool:
        if self.hold is None or self.hold.exists():
            return False
        return not self.hold_when or bool(glob.glob(self.hold_when))

    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        if self.delay:
            time.sleep(self.delay)
        for word in line.split():
            yield word, 1

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        while self._held():
            time.sleep(0.05)
        if self.reduce_delay:
            time.sleep(self.reduce_delay)
        yield key, sum(values)
