"""``kubemr ui``: the status page of a finished job, served from the report it kept.

A job keeps its final report with its output: in ``_summary.json`` when it succeeded, in
``_FAILED`` when it failed (the rest of its output is removed). This serves the same page
the master served while the job ran (:mod:`kubemr.statuspage`), from that file, until
Ctrl-C; ``kubemr run --ui`` uses it to keep the page up after the job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from kubemr import address as addresses
from kubemr import contract, monitoring, stores
from kubemr import report as reports
from kubemr.outputdir import FAILED, SUMMARY, OutputDir


def load_kept(path: str) -> reports.JobReport:
    """The report kept at ``path``: an output directory (or ``s3://`` prefix) holding
    ``_FAILED`` or ``_summary.json``, or one of those files. ReportError names what is
    missing or which field is bad."""
    try:
        store = stores.store_for(path, None)
        if store.exists(path):
            where = path
        else:
            output = OutputDir(path)
            candidates = [output.join(FAILED), output.join(SUMMARY)]
            found = [c for c in candidates if output.store.exists(c)]
            if not found:
                raise reports.ReportError(
                    f"{path}: no kept report (neither {FAILED} nor {SUMMARY} is there)"
                )
            where, store = found[0], output.store
        text = store.read_bytes(where)
    except (OSError, stores.StoreError) as exc:
        raise reports.ReportError(f"{path}: cannot read the report: {exc}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise reports.ReportError(f"{where}: not JSON: {exc}") from exc
    return reports.load(document, where)


def kept_status(report: reports.JobReport) -> contract.StatusReport:
    """A ``/status`` document for a kept report (the page's footer links to it)."""
    return contract.StatusReport(
        job=report.job,
        phase=report.phase,
        maps=contract.TaskCount(total=report.maps.total, done=report.maps.done),
        reduces=contract.TaskCount(total=report.reduces.total, done=report.reduces.done),
        message=report.failure.error if report.failure is not None else "",
        kept=True,
    )


def status_of(report: reports.JobReport) -> dict[str, Any]:
    """:func:`kept_status` as the JSON document served."""
    return kept_status(report).document()


async def serve(report: reports.JobReport, bind: str, port: int) -> None:
    """Serve the page of ``report`` on ``bind:port`` until cancelled (or SIGTERM)."""
    server = monitoring.MonitoringServer(
        bind, port, status=lambda: kept_status(report), report=lambda: report
    )
    bound = await server.start()
    print(
        f"status page: http://{addresses.join(bind, bound)}/ (job {report.job}, "
        f"{report.phase}, kept report; Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def serve_until_interrupted(report: reports.JobReport, bind: str, port: int) -> None:
    """:func:`serve` in a new event loop; Ctrl-C (or SIGTERM) ends it quietly."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(report, bind, port))
