"""The master's projections of one job state: its summary, its ``/status`` report and
its metric gauges (the status page's report is :mod:`kubemr.report`'s).

Pure: no I/O and no clock (callers pass ``now``). Each takes the scheduler and the
:class:`Figures` the master keeps beside it (counters, timings, restarts, the journal's
figures, the committed part files' names), so the master's servicer and its ``/status``
endpoint only encode what these return, and each projection is tested directly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kubemr import contract, metriccatalog
from kubemr.attempts import Phase
from kubemr.scheduler import Scheduler


@dataclass(frozen=True)
class Figures:
    """What the master knows of the job besides the scheduler, at one moment."""

    job: str
    app: str
    """The app's reference (``builtin:wordcount``, ``module:path``)."""
    maps: int
    reduce_tasks: int
    shuffle_mode: str
    combine: bool
    partitioner: str
    started: float
    """Wall-clock start of the job (Unix seconds), across master restarts."""
    counters: dict[str, int] = field(default_factory=dict)
    """The engine's counters over accepted maps and committed tasks."""
    app_counters: dict[str, int] = field(default_factory=dict)
    skipped: tuple[int, list[str]] = (0, [])
    """Bad records skipped: the count and the first locations."""
    master_restarts: int = 0
    journal: dict[str, float] = field(default_factory=dict)
    """The journal's records, batches (``syncs``) and seconds."""
    phase_seconds: dict[str, float] = field(default_factory=dict)
    task_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    """Peak resident memory each worker reported, bytes."""
    outputs: list[str] = field(default_factory=list)
    """Names of the part files in the output directory."""
    step: tuple[int, int] | None = None
    """(index, count) of the step of a multi-step job."""
    last_progress: float = 0.0
    """Wall-clock time a task last finished (for the gauges)."""


def summary(scheduler: Scheduler, figures: Figures, now: float) -> dict[str, Any]:
    """The job's summary (``_summary.json``, ``kubemr run``'s output); ``now`` is the
    wall clock."""
    return {
        "job": figures.job,
        "app": figures.app,
        "phase": scheduler.phase.value,
        "error": scheduler.error,
        "mapTasks": figures.maps,
        "reduceTasks": figures.reduce_tasks,
        "shuffleMode": figures.shuffle_mode,
        "combine": figures.combine,
        "partitioner": figures.partitioner,
        "counters": figures.counters,
        "appCounters": figures.app_counters,
        "skippedRecords": dict(zip(("count", "records"), figures.skipped, strict=True)),
        "attempts": scheduler.attempts_by_outcome(),
        "masterRestarts": figures.master_restarts,
        "recovered": {f"{k}s": n for k, n in scheduler.recovered().items()},
        "journal": figures.journal,
        "backupAttempts": scheduler.backup_attempts(),
        "speculation": scheduler.speculation(),
        "blacklistedWorkers": scheduler.blacklisted(),
        "phaseSeconds": figures.phase_seconds,
        "taskSeconds": {k: round(v, 3) for k, v in sorted(figures.task_seconds.items())},
        "peakRssBytes": dict(sorted(figures.peak_rss.items())),
        "workers": len(scheduler.workers),
        "workerNames": sorted({w.name for w in scheduler.workers.values()}),
        "wallSeconds": round(now - figures.started, 3),
        "outputs": figures.outputs,
    }


def status(
    scheduler: Scheduler, figures: Figures, final: dict[str, Any] | None = None
) -> contract.StatusReport:
    """What ``/status`` serves (the operator's view of the job): progress while it runs,
    and the whole summary (``final``) once it is over."""
    step = figures.step
    return contract.StatusReport(
        job=figures.job,
        phase=scheduler.phase.value,
        maps=contract.TaskCount(total=len(scheduler.maps), done=scheduler.maps_done),
        reduces=contract.TaskCount(total=len(scheduler.reduces), done=scheduler.reduces_done),
        workers=sum(w.alive for w in scheduler.workers.values()),
        message=scheduler.error or "",
        attempts=scheduler.attempts_by_outcome(),
        backup_attempts=scheduler.backup_attempts(),
        blacklisted_workers=scheduler.blacklisted(),
        counters=figures.counters,
        app_counters=figures.app_counters,
        skipped_records=figures.skipped[0],
        step=step[0] + 1 if step is not None else None,
        steps=step[1] if step is not None else None,
        summary=None if final is None else contract.FinalSummary.model_validate(final),
    )


def gauges(scheduler: Scheduler, figures: Figures, now: float) -> metriccatalog.JobGauges:
    """The job's figures for the metrics (read at scrape time); ``now`` is the
    scheduler's (monotonic) clock."""
    workers = {"map": 0, "reduce": 0}
    lag = {"map": 0.0, "reduce": 0.0}
    for worker in scheduler.workers.values():
        if worker.alive:
            workers[worker.kind.value] += 1
            lag[worker.kind.value] = max(lag[worker.kind.value], now - worker.last_seen)
    zeros = {(k, o): 0 for k in ("map", "reduce") for o in metriccatalog.OUTCOMES}
    attempts: dict[tuple[str, str], int] = defaultdict(int, zeros)
    backups: dict[tuple[str, str], int] = defaultdict(int, zeros)
    launched = {(k, r): 0 for k in ("map", "reduce") for r in metriccatalog.BACKUP_RULES}
    for attempt in scheduler.attempts.values():
        attempts[attempt.kind.value, attempt.outcome] += 1
        if attempt.backup:
            backups[attempt.kind.value, attempt.outcome] += 1
            key = (attempt.kind.value, attempt.rule or "")
            launched[key] = launched.get(key, 0) + 1
    return metriccatalog.JobGauges(
        tasks={"map": len(scheduler.maps), "reduce": len(scheduler.reduces)},
        completed={"map": scheduler.maps_done, "reduce": scheduler.reduces_done},
        running=not scheduler.finished,
        failed=scheduler.phase is Phase.FAILED,
        last_progress=figures.last_progress,
        workers=workers,
        attempts=dict(attempts),
        backups_launched=launched,
        backups=dict(backups),
        max_lag=lag,
        heartbeat_timeout=scheduler.heartbeat_timeout,
        master_restarts=figures.master_restarts,
        app_counters=figures.app_counters,
        skipped_records=figures.skipped[0],
    )
