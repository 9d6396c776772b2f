"""Take docs/statuspage.png: the status page of examples/wordcount-job.yaml while it runs.

``make docs-screenshot`` runs it. Both mappers are slowed down 3 times (``--slow-worker``)
so that the job (seconds long) is caught mid-map; the picture is taken once some map tasks
are done and some are not. The window is kept small, and so is the PNG (about 100 KB).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from browser import chromium
from testjobs import ROOT

DEADLINE = 120.0
"""Seconds to wait for the page, then for the job to be half-way through its maps."""


def main(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "run.log"
        with log.open("wb") as sink:
            run = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kubemr",
                    "run",
                    "examples/wordcount-job.yaml",
                    "--ui",
                    "--quiet",
                    "--slow-worker",
                    "mapper-0=3",
                    "--slow-worker",
                    "mapper-1=3",
                ],
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + DEADLINE
            while not (found := re.search(r"status page: (\S+)", log.read_text())):
                if time.monotonic() > deadline or run.poll() is not None:
                    raise SystemExit(f"no status page:\n{log.read_text()}")
                time.sleep(0.1)
            with chromium() as driver:
                driver.set_window_size(1100, 900)
                driver.get(found.group(1))
                while True:
                    done = driver.execute_script(
                        "return +document.getElementById('maps-done').textContent"
                    )
                    total = driver.execute_script(
                        "return +document.getElementById('maps-total').textContent"
                    )
                    if total and total // 3 <= done < total:
                        break
                    if time.monotonic() > deadline or (total and done == total):
                        raise SystemExit(f"missed the map phase ({done}/{total} maps done)")
                    time.sleep(0.2)
                assert driver.save_screenshot(str(target)), f"no screenshot saved to {target}"
        finally:
            run.send_signal(signal.SIGINT)
            run.wait(60)
    print(f"{target}: {target.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "statuspage.png")
