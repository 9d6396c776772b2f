"""The job report: what the status page shows and what a job leaves behind when it ends.

A typed projection of the master's state (:class:`~kubemr.scheduler.Scheduler` plus the
counters and per-attempt figures the master adds): progress per phase, one row per map
and reduce task, the workers, the slowest tasks and the largest partitions, the counters,
throughput over time, and, for a failed job, the failing task, its exception and where
its workers' logs are. Pure: no I/O and no clock (callers pass ``now``); the master
projects on request (:mod:`kubemr.monitoring` serves it) and once more at the end, when
the report is kept with the output (``_summary.json``, or ``_FAILED`` for a failed job).

Times in the report are seconds since the job started (the scheduler's monotonic clock,
shifted), so a kept report reads the same later; ``started`` is the wall-clock start.
The JSON form uses camelCase like the rest of the job's documents; :func:`load` reads it
back and names the bad field of a damaged file.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from kubemr.attempts import Attempt, Kind, Outcome, Phase, State, Task
from kubemr.scheduler import Scheduler

SLOWEST = 5
"""Tasks listed as the slowest (stragglers)."""
LARGEST = 5
"""Reduce partitions listed as the largest (skew)."""
THROUGHPUT_BUCKETS = 40
"""Points of the throughput chart over the job's run so far."""
REPORT_KEY = "report"
"""The key of the report in ``_summary.json`` and ``_FAILED``."""


class ReportError(ValueError):
    """A kept report that cannot be read (names the file and the field)."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class PhaseProgress(_Model):
    """The tasks of one kind, by state."""

    total: int
    """Tasks of this kind."""
    done: int
    """Tasks done (map output reported; reduce output committed)."""
    running: int
    """Tasks with at least one attempt running."""
    failed_attempts: int
    """Attempts of this kind that failed (a task is retried until ``maxTaskAttempts``)."""

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0


class TaskRow(_Model):
    """One map or reduce task, as its latest (or winning) attempt shows it."""

    kind: str
    """``map`` or ``reduce``."""
    index: int
    label: str
    """The map task's split (``path[start:end]``) or the reduce task's partition."""
    state: str
    """``idle``, ``running``, ``done`` or ``failed`` (used up its attempts)."""
    attempt: str
    """The attempt shown: the winning one when done, else the latest; empty if none yet."""
    attempts: int
    """Attempts started so far."""
    worker: str
    """Name of the worker that ran the attempt shown (a pod name on Kubernetes)."""
    seconds: float | None
    """How long the attempt shown took (ran so far, if running); None if none started."""
    progress: float
    """Share of the attempt shown done (0..1) as its worker last reported it."""
    bytes_in: int | None
    """Map: the split's bytes. Reduce: bytes fetched from map outputs so far reported."""
    bytes_out: int | None
    """Map: bytes of its sorted output runs. Reduce: bytes written; None until known."""
    records_out: int | None
    """Records written (map: to its partitions; reduce: to its output); None until known."""
    speculative: bool
    """A backup attempt of this task was launched (speculative execution)."""
    failures: int
    """Attempts of this task that failed."""


class WorkerRow(_Model):
    """One registration of a worker process (or pod) with the master."""

    id: str
    name: str
    role: str
    """``map`` or ``reduce``."""
    address: str
    """Its shuffle server (mappers); empty for reducers."""
    alive: bool
    """It heartbeats (False once declared dead, or replaced by a new registration)."""
    blacklisted: bool
    """Too many attempts failed on it: it gets no tasks while a healthier peer lives."""
    last_heartbeat: float
    """Seconds between its last heartbeat and the report."""
    attempt: str
    """The attempt it runs now; empty if idle."""
    succeeded: int
    """Its attempts that succeeded."""
    failed: int
    """Its attempts that failed."""


class Slow(_Model):
    """A task among the slowest: a straggler if far above the median of its kind."""

    kind: str
    index: int
    label: str
    worker: str
    seconds: float
    running: bool
    ratio: float | None
    """Its seconds over the median of its kind's finished tasks; None if none finished."""


class Partition(_Model):
    """A reduce partition's size over the map outputs reported so far (skew); each map
    task counts once (a rerun of a lost output is not added again), and after a master
    restart the outputs journaled since the last size checkpoint are missing
    (:attr:`JobReport.sized_maps` says how many are counted)."""

    index: int
    bytes: int
    records: int
    ratio: float
    """Its bytes over the mean partition's bytes."""


class Point(_Model):
    """Throughput over one interval of the job: bytes per second read by map tasks and
    fetched by reduce tasks (each attempt's bytes spread over its run)."""

    t: float
    """Middle of the interval, seconds since the job started."""
    map_bytes_per_second: float
    reduce_bytes_per_second: float


class Failure(_Model):
    """Why a job failed."""

    task: str
    """The task that used up its attempts (``map task 1 (split b.txt[0:27])``); empty if
    the job failed for another reason."""
    kind: str
    index: int | None
    attempts: int
    error: str
    """The last failed attempt's exception (with its traceback) or the job's error."""
    workers: list[str]
    """Workers that ran the failed attempts, oldest first."""
    logs: list[str]
    """Where those workers' logs are (a file, or a ``kubectl logs`` command)."""


class JobReport(_Model):
    """Everything the status page shows, live or kept."""

    job: str
    app: str
    phase: str
    """``Pending``, ``Mapping``, ``Reducing``, ``Succeeded`` or ``Failed``."""
    step: str
    """One line: what the job is doing now."""
    final: bool
    """The job is over: the report will not change."""
    started: float
    """Wall-clock start of the job (Unix seconds)."""
    elapsed: float
    """Seconds from the start to the report."""
    maps: PhaseProgress
    reduces: PhaseProgress
    tasks: list[TaskRow]
    """Map tasks then reduce tasks, by index."""
    workers: list[WorkerRow]
    slowest: list[Slow]
    partitions: list[Partition]
    """The largest reduce partitions, largest first."""
    sized_maps: int | None = None
    """Map tasks whose outputs the partition sizes count (None in reports kept before
    kubemr counted them)."""
    counters: dict[str, int]
    throughput: list[Point]
    failure: Failure | None = None
    phase_seconds: dict[str, float] = {}
    """Seconds spent in the map and reduce phases (to the report, if still running)."""
    master_restarts: int = 0

    def dump(self) -> dict[str, Any]:
        """The JSON form (camelCase)."""
        return self.model_dump(mode="json", by_alias=True)


def load(document: object, where: str) -> JobReport:
    """The report in a kept document (``_summary.json``, ``_FAILED``, or a bare report);
    ReportError naming ``where`` and the bad field otherwise."""
    if isinstance(document, dict) and isinstance(document.get(REPORT_KEY), dict):
        document = document[REPORT_KEY]
    elif isinstance(document, dict) and "phase" in document and "tasks" not in document:
        raise ReportError(
            f"{where}: a job summary without a report (`kubemr run --sequential` and kubemr "
            "before the status page keep none)"
        )
    try:
        return JobReport.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ReportError(f"{where}: not a kubemr job report ({problems})") from exc


# ---- the projection ---------------------------------------------------------------------


class Figures:
    """What the master knows besides the scheduler, for :func:`project`."""

    def __init__(
        self,
        *,
        job: str,
        app: str,
        started: float,
        counters: Mapping[str, int] | None = None,
        attempt_counters: Mapping[str, Mapping[str, int]] | None = None,
        phase_seconds: Mapping[str, float] | None = None,
        master_restarts: int = 0,
        logs: str = "",
    ) -> None:
        self.job = job
        self.app = app
        self.started = started
        """Wall-clock start of the job (Unix seconds)."""
        self.counters = dict(counters or {})
        self.attempt_counters = attempt_counters or {}
        """Counters each succeeded attempt reported, by attempt id."""
        self.phase_seconds = dict(phase_seconds or {})
        self.master_restarts = master_restarts
        self.logs = logs
        """Where a worker's log is: a template with ``{worker}`` (empty: just the name)."""


def project(scheduler: Scheduler, figures: Figures, now: float, now_wall: float) -> JobReport:
    """The report of the job now. ``now`` is on the scheduler's (monotonic) clock,
    ``now_wall`` the wall clock at the same moment."""
    zero = now - (now_wall - figures.started)  # the job's start on the scheduler's clock
    by_task: dict[tuple[Kind, int], list[Attempt]] = {}
    for attempt in scheduler.attempts.values():
        by_task.setdefault((attempt.kind, attempt.index), []).append(attempt)
    partitions = _partitions(scheduler)
    names = {w.id: w.name for w in scheduler.workers.values()}
    rows = [
        _task_row(
            scheduler,
            task,
            by_task.get((task.kind, task.index), []),
            partitions,
            names,
            figures,
            now,
        )
        for task in (*scheduler.maps, *scheduler.reduces)
    ]
    failure = _failure(scheduler, by_task, figures)
    phase = scheduler.phase
    maps, reduces = _progress(scheduler, Kind.MAP), _progress(scheduler, Kind.REDUCE)
    return JobReport(
        job=figures.job,
        app=figures.app,
        phase=phase.value,
        step=_step(phase, maps, reduces, len(scheduler.workers), failure),
        final=scheduler.finished,
        started=figures.started,
        elapsed=round(max(now - zero, 0.0), 3),
        maps=maps,
        reduces=reduces,
        tasks=rows,
        workers=_workers(scheduler, now),
        slowest=_slowest(rows, scheduler.map_phase_over),
        partitions=_largest(partitions),
        sized_maps=scheduler.sizes.counted,
        counters=dict(sorted(figures.counters.items())),
        throughput=throughput(scheduler, figures, zero, now, partitions),
        failure=failure,
        phase_seconds={k: round(v, 3) for k, v in figures.phase_seconds.items()},
        master_restarts=figures.master_restarts,
    )


def _progress(scheduler: Scheduler, kind: Kind) -> PhaseProgress:
    tasks = scheduler.maps if kind is Kind.MAP else scheduler.reduces
    return PhaseProgress(
        total=len(tasks),
        done=sum(t.state is State.DONE for t in tasks),
        running=sum(t.state is State.RUNNING for t in tasks),
        failed_attempts=sum(
            a.kind is kind and a.outcome is Outcome.FAILED for a in scheduler.attempts.values()
        ),
    )


def _step(
    phase: Phase,
    maps: PhaseProgress,
    reduces: PhaseProgress,
    workers: int,
    failure: Failure | None,
) -> str:
    if phase is Phase.FAILED:
        what = failure.task if failure is not None and failure.task else "the job"
        return f"failed: {what}"
    if phase is Phase.SUCCEEDED:
        return f"succeeded: {reduces.total} reduce tasks committed"
    if phase is Phase.PENDING:
        return "waiting for workers to register"
    if phase is Phase.MAPPING:
        return (
            f"map {maps.done}/{maps.total} done, {maps.running} running; "
            f"reduce {reduces.done}/{reduces.total} committed ({workers} workers)"
        )
    return f"reduce {reduces.done}/{reduces.total} committed, {reduces.running} running"


def _partitions(scheduler: Scheduler) -> list[tuple[int, int]]:
    """(records, bytes) of every reduce partition over the map outputs reported so far
    (the scheduler's running sums, :mod:`kubemr.partitionsizes`)."""
    return scheduler.sizes.sizes()


def _shown(task: Task, attempts: Sequence[Attempt]) -> Attempt | None:
    """The attempt a task's row shows: the winner, else a running one, else the latest."""
    order = {Outcome.SUCCEEDED: 0, Outcome.RECOVERED: 0, Outcome.RUNNING: 1}
    best = sorted(attempts, key=lambda a: (order.get(a.outcome, 2), -a.started))
    del task
    return best[0] if best else None


def _task_row(
    scheduler: Scheduler,
    task: Task,
    attempts: Sequence[Attempt],
    partitions: Sequence[tuple[int, int]],
    names: Mapping[str, str],
    figures: Figures,
    now: float,
) -> TaskRow:
    shown = _shown(task, attempts)
    counters: Mapping[str, int] = {}
    if shown is not None:
        counters = figures.attempt_counters.get(shown.id, {})
    seconds = None
    if shown is not None:
        end = shown.finished if shown.finished is not None else now
        seconds = round(max(end - shown.started, 0.0), 3)
    if task.kind is Kind.MAP:
        split = scheduler.splits[task.index]
        label = str(split)
        bytes_in: int | None = split.length
        out = task.output
        bytes_out = out.bytes if out is not None else None
        records_out = out.records if out is not None else None
    else:
        label = f"partition {task.index}"
        bytes_in = partitions[task.index][1] if partitions else 0
        bytes_out = counters.get("output_bytes")
        records_out = counters.get("reduce_output_records")
    failed_for_good = len(task.failures) >= scheduler.max_attempts and task.state is not State.DONE
    worker = ""
    if shown is not None:
        worker = names.get(shown.worker, shown.worker.removeprefix("pending:"))
    return TaskRow(
        kind=task.kind.value,
        index=task.index,
        label=label,
        state="failed" if failed_for_good else task.state.value,
        attempt=shown.id if shown is not None else "",
        attempts=task.attempts,
        worker=worker,
        seconds=seconds,
        progress=1.0 if task.state is State.DONE else (shown.progress if shown else 0.0),
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        records_out=records_out,
        speculative=any(a.backup for a in attempts),
        failures=len(task.failures),
    )


def _workers(scheduler: Scheduler, now: float) -> list[WorkerRow]:
    succeeded: dict[str, int] = {}
    failed: dict[str, int] = {}
    for attempt in scheduler.attempts.values():
        if attempt.outcome is Outcome.SUCCEEDED:
            succeeded[attempt.worker] = succeeded.get(attempt.worker, 0) + 1
        elif attempt.outcome is Outcome.FAILED:
            failed[attempt.worker] = failed.get(attempt.worker, 0) + 1
    blacklisted = set(scheduler.blacklisted())
    return [
        WorkerRow(
            id=w.id,
            name=w.name,
            role=w.kind.value,
            address=w.address,
            alive=w.alive,
            blacklisted=w.id in blacklisted,
            last_heartbeat=round(max(now - w.last_seen, 0.0), 3),
            attempt=w.attempt or "",
            succeeded=succeeded.get(w.id, 0),
            failed=failed.get(w.id, 0),
        )
        for w in scheduler.workers.values()
    ]


def _slowest(rows: Sequence[TaskRow], map_phase_over: bool) -> list[Slow]:
    """The longest-running tasks. Reduce tasks still running in the map phase are left
    out: they wait for map output (streaming mode starts them at once), not straggle."""
    medians: dict[str, float] = {}
    for kind in ("map", "reduce"):
        done = [r.seconds for r in rows if r.kind == kind and r.state == "done" and r.seconds]
        if done:
            medians[kind] = statistics.median(done)
    timed = [
        r
        for r in rows
        if r.seconds is not None
        and (r.state == "done" or (r.state == "running" and (r.kind == "map" or map_phase_over)))
    ]
    timed.sort(key=lambda r: (-(r.seconds or 0.0), r.kind, r.index))
    slow = []
    for row in timed[:SLOWEST]:
        median = medians.get(row.kind)
        seconds = row.seconds or 0.0
        slow.append(
            Slow(
                kind=row.kind,
                index=row.index,
                label=row.label,
                worker=row.worker,
                seconds=seconds,
                running=row.state == "running",
                ratio=round(seconds / median, 2) if median else None,
            )
        )
    return slow


def _largest(partitions: Sequence[tuple[int, int]]) -> list[Partition]:
    total = sum(b for _, b in partitions)
    if not partitions or total == 0:
        return []
    mean = total / len(partitions)
    order = sorted(range(len(partitions)), key=lambda i: (-partitions[i][1], i))
    return [
        Partition(
            index=i,
            bytes=partitions[i][1],
            records=partitions[i][0],
            ratio=round(partitions[i][1] / mean, 2),
        )
        for i in order[:LARGEST]
    ]


def _failure(
    scheduler: Scheduler, by_task: Mapping[tuple[Kind, int], list[Attempt]], figures: Figures
) -> Failure | None:
    if scheduler.error is None:
        return None
    names = {w.id: w.name for w in scheduler.workers.values()}
    for task in (*scheduler.maps, *scheduler.reduces):
        if len(task.failures) < scheduler.max_attempts or task.state is State.DONE:
            continue
        failed = sorted(
            (a for a in by_task.get((task.kind, task.index), []) if a.outcome == "failed"),
            key=lambda a: a.started,
        )
        workers = list(dict.fromkeys(names.get(a.worker, a.worker) for a in failed))
        what = (
            f"map task {task.index} (split {scheduler.splits[task.index]})"
            if task.kind is Kind.MAP
            else f"reduce task {task.index} (partition {task.index})"
        )
        return Failure(
            task=what,
            kind=task.kind.value,
            index=task.index,
            attempts=task.attempts,
            error=task.failures[-1],
            workers=workers,
            logs=[figures.logs.format(worker=w) if figures.logs else w for w in workers],
        )
    return Failure(
        task="", kind="", index=None, attempts=0, error=scheduler.error, workers=[], logs=[]
    )


def throughput(
    scheduler: Scheduler,
    figures: Figures,
    zero: float,
    now: float,
    partitions: Sequence[tuple[int, int]],
) -> list[Point]:
    """Bytes per second read by map attempts and fetched by reduce attempts, in
    :data:`THROUGHPUT_BUCKETS` intervals from the start to ``now``. Each succeeded
    attempt's bytes (and each running one's share done so far) are spread evenly over its
    run, so the chart shows rates, not the moments tasks ended."""
    span = now - zero
    if span <= 0:
        return []
    width = span / THROUGHPUT_BUCKETS
    rates = {Kind.MAP: [0.0] * THROUGHPUT_BUCKETS, Kind.REDUCE: [0.0] * THROUGHPUT_BUCKETS}
    for attempt in scheduler.attempts.values():
        if attempt.outcome is Outcome.SUCCEEDED and attempt.finished is not None:
            share, end = 1.0, attempt.finished
        elif attempt.outcome is Outcome.RUNNING and attempt.progress > 0:
            share, end = attempt.progress, now
        else:
            continue
        if attempt.kind is Kind.MAP:
            size = float(scheduler.splits[attempt.index].length)
        else:
            counted = figures.attempt_counters.get(attempt.id, {}).get("shuffle_bytes")
            size = float(counted if counted is not None else partitions[attempt.index][1])
        _spread(rates[attempt.kind], size * share, attempt.started - zero, end - zero, width)
    return [
        Point(
            t=round((i + 0.5) * width, 3),
            map_bytes_per_second=round(rates[Kind.MAP][i], 1),
            reduce_bytes_per_second=round(rates[Kind.REDUCE][i], 1),
        )
        for i in range(THROUGHPUT_BUCKETS)
    ]


def _spread(buckets: list[float], amount: float, start: float, end: float, width: float) -> None:
    """Add ``amount`` spread evenly over ``[start, end)`` to the buckets, as a rate."""
    end = max(end, start + 1e-6)
    rate = amount / (end - start)
    start, end = max(start, 0.0), min(end, width * len(buckets))
    if end <= start or amount <= 0:
        return
    first, last = int(start // width), min(int(end // width), len(buckets) - 1)
    for i in range(first, last + 1):
        overlap = min(end, (i + 1) * width) - max(start, i * width)
        if overlap > 0:
            buckets[i] += rate * overlap / width
