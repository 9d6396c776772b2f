"""What ``kubemr run`` (and ``kubemr submit``) shows: a progress bar while the job runs, a
report at the end."""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kubemr import stores
from kubemr.outputdir import OutputDir
from kubemr.proto import mapreduce_pb2 as pb


def step_label(status: pb.JobStatus, kind: str) -> str:
    """A bar's label: ``map``, or in a multi-step job ``step 2/3 map``."""
    return f"step {status.step}/{status.steps} {kind}" if status.steps else kind


class JobProgress:
    """Two bars, maps and reduces, fed from the master's status (in a multi-step job, the
    running step's, the bars labelled with the step)."""

    def __init__(self, name: str, enabled: bool = True) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn(f"{name} [bold]{{task.description}}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=not enabled or not self.console.is_terminal,
        )
        self.maps = self.progress.add_task("map", total=None)
        self.reduces = self.progress.add_task("reduce", total=None)

    @property
    def shown(self) -> bool:
        """Whether the bars are drawn (enabled, on a terminal): else nobody needs updates."""
        return not self.progress.disable

    def update(self, status: pb.JobStatus) -> None:
        self.counts(
            status.maps_done,
            status.maps_total,
            status.reduces_done,
            status.reduces_total,
            labels=(step_label(status, "map"), step_label(status, "reduce")),
        )

    def counts(
        self,
        maps_done: int,
        maps_total: int | None,
        reduces_done: int,
        reduces_total: int | None,
        labels: tuple[str, str] = ("map", "reduce"),
    ) -> None:
        """Move the bars (a total of None: not known yet) under ``labels``; ``kubemr
        submit`` feeds them from the MapReduceJob's status."""
        self.progress.update(
            self.maps, total=maps_total, completed=maps_done, description=labels[0]
        )
        self.progress.update(
            self.reduces, total=reduces_total, completed=reduces_done, description=labels[1]
        )

    def metrics_url(self, process: str, url: str) -> None:
        """Say where a process of the job serves its metrics (stderr, above the bars)."""
        self.console.print(f"metrics: {process} {url}", highlight=False, soft_wrap=True)

    def status_page(self, url: str) -> None:
        """Say where the job's status page is (``kubemr run --ui``)."""
        self.console.print(f"status page: {url}", highlight=False, soft_wrap=True)

    def __enter__(self) -> JobProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _numeric(line: str) -> float | None:
    _, _, value = line.rpartition("\t")
    try:
        return float(value)
    except ValueError:
        return None


def top_lines(output: OutputDir, count: int) -> list[str]:
    """The ``count`` output lines with the largest numeric values (ties by line)."""
    candidates: list[tuple[float, str]] = []
    for part in output.parts():
        text = output.read_part(part).decode("utf-8", "surrogateescape")
        for line in text.splitlines():
            value = _numeric(line)
            if value is not None:
                candidates.append((value, line))
    return [line for _, line in heapq.nlargest(count, candidates, key=lambda c: (c[0], c[1]))]


def report(output: OutputDir, summary: dict[str, Any], top: int = 0) -> None:
    """Print where the output is, a one-line summary, and optionally the top lines (plain
    text on stdout, never wrapped, so scripts can read it)."""
    parts = output.parts()
    where = output.path if stores.is_s3(output.path) else Path(output.path).resolve()
    print(f"output: {where} ({len(parts)} part files, _SUCCESS)")
    counters = summary.get("counters", {})
    written = counters.get("reduce_output_records", counters.get("map_output_records", "?"))
    print(
        f"{summary.get('mapTasks', '?')} map tasks, {summary.get('reduceTasks', '?')} reduce "
        f"tasks, {counters.get('map_input_records', '?')} input lines, "
        f"{written} output lines in "
        f"{summary.get('wallSeconds', '?')}s"
    )
    if summary.get("appCounters"):
        print("counters: " + ", ".join(f"{k}={v}" for k, v in summary["appCounters"].items()))
    skipped = summary.get("skippedRecords") or {}
    if skipped.get("count"):
        print(f"skipped {skipped['count']} bad records: " + "; ".join(skipped["records"][:3]))
    if top:
        print(f"top {top}:")
        for line in top_lines(output, top):
            print(f"  {line}")
