"""The master process: a thin gRPC servicer over the scheduler, and the job's commit.

Every handler decodes its request, calls the pure :class:`~kubemr.scheduler.Scheduler`
on the event loop (one loop, so no locks), and encodes the answer. Long polls wait on a
condition that is notified whenever the state changes. When every reduce task is
committed, the master writes the summary and ``_SUCCESS``, tells every worker to exit,
and returns.

Progress is journaled (:mod:`kubemr.journal`) before a worker hears of it, so a master
that is restarted after a crash resumes the job. The process's exit code tells a crash
(anything else; restart it) from an end (:mod:`kubemr.contract`): 0 the job succeeded,
``EXIT_JOB_FAILED`` the job failed, ``EXIT_BAD_INPUT`` (from :mod:`kubemr.cli`) the job
cannot start (manifest, input, output path), ``EXIT_TERMINATED`` it was told to stop
(SIGTERM) mid-job.

Journal records are group-committed (:class:`kubemr.journal.Journal`): a handler records
what its request changed, then awaits their durability before it answers, so the records
of concurrent requests share one fsync. A reduce attempt's commit is journaled
(``committing``, durable) before its rename and (``committed``) after it, one attempt per
task at a time (:mod:`kubemr.commits`).

A master told to stop (SIGTERM: its pod is being deleted; the entry point sets
``terminate``) stops serving, closes its journal and returns at once; a stop that lands
inside a commit leaves a state the journal's reconciliation resolves (a durable
``committing`` whose part file is missing runs again; a part file in place is kept), and
a replacement master resumes from the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from kubemr import address as addresses
from kubemr import (
    apps,
    auth,
    badrecords,
    commits,
    contract,
    metriccatalog,
    monitoring,
    projections,
    rpcmetrics,
    steps,
    stores,
)
from kubemr import journal as journals
from kubemr import metrics as metrics_
from kubemr import report as reports
from kubemr import spec as specs
from kubemr.apps import APP_COUNTER_PREFIX
from kubemr.attempts import Kind, Phase, heartbeat_interval, parse_attempt_id
from kubemr.config import GRPC_OPTIONS, MasterConfig
from kubemr.outputdir import SUMMARY, OutputDir
from kubemr.partitionsizes import OutputSizes
from kubemr.plan import JobPlan, plan_job
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc
from kubemr.scheduler import Scheduler
from kubemr.speculation import STALE_AFTER

log = logging.getLogger("kubemr.master")

OTHER_COUNTERS = "_other"
"""The job keeps at most :data:`kubemr.apps.MAX_COUNTERS` app counter names; the totals
of any further names are added up under this one."""


class JournalError(RuntimeError):
    """The master cannot make its progress durable: it stops, to be restarted."""


def _kind_of(attempt_id: str) -> Kind:
    return Kind.MAP if attempt_id.startswith("m") else Kind.REDUCE


class JobState:
    """The scheduler plus what the master adds around it: counters, timings, commit."""

    def __init__(
        self,
        plan: JobPlan,
        output: OutputDir,
        journal: journals.Journal,
        replay: journals.Replay | None = None,
        logs: str = "",
        metrics: metrics_.RuntimeMetrics | None = None,
        step: tuple[int, int] | None = None,
    ) -> None:
        spec = plan.job.spec
        self.step = step
        """(index, count) of the step this state runs in a multi-step job."""
        self.final_summary: dict[str, Any] | None = None
        """The whole job's summary, once it is over (a multi-step job's is not a step's)."""
        self.plan = plan
        self.output = output
        self.journal = journal
        self.fatal: JournalError | journals.SupersededError | None = None
        self.scheduler = Scheduler(
            plan.splits,
            spec.reduce_tasks,
            barrier=spec.shuffle.mode == "barrier",
            max_attempts=spec.fault_tolerance.max_task_attempts,
            heartbeat_timeout=spec.fault_tolerance.heartbeat_timeout,
            speculative=spec.fault_tolerance.speculative,
        )
        self.commits = commits.Commits(self.scheduler, output, self.record, self.durable)
        """The job's commits (:mod:`kubemr.commits`)."""
        self.outcomes: dict[tuple[str, int], tuple[dict[str, int], list[str]]] = {}
        """Counters and skipped records of each task's accepted attempt, by (kind, index):
        the totals count each task once, however often it ran."""
        self.task_seconds: dict[str, float] = defaultdict(float)
        self.attempt_counters: dict[str, dict[str, int]] = {}
        """Counters of each accepted attempt (the status page's bytes out per task)."""
        self.logs = logs
        self.peak_rss: dict[str, int] = {}
        self.started = time.time()
        self.marks: dict[str, float] = {}
        self.changed = asyncio.Condition()
        self.done = asyncio.Event()
        self.released = asyncio.Event()  # output final: workers may exit
        self.final_read = asyncio.Event()  # the final /status was served once
        self.master_restarts = 0
        self.metrics = metrics or metrics_.RuntimeMetrics("master", plan.job.metadata.name)
        self.metrics.job_view = self.job_view
        self.progress_count = -1
        self.progress_time = time.time()
        if replay is not None:
            self.scheduler.restore(replay.recovery, time.monotonic())
            _, timings = replay.totals()
            self.outcomes.update(replay.task_outcomes())
            self.task_seconds.update(timings)
            self.master_restarts = replay.starts
            self.started = replay.first_start or self.started

    def record(self, event: dict[str, Any]) -> None:
        """Journal one event, after the others; it is durable once :meth:`durable`
        returns (the caller awaits that before anyone hears of the event)."""
        self.journal.add(event)

    async def durable(self) -> None:
        """Return once every event recorded so far is durable (group commit: the events
        of concurrent requests share a write and an fsync); a master that cannot make
        them durable stops (see :class:`JournalError`)."""
        try:
            await self.journal.durable()
        except OSError as exc:
            self.fatal = JournalError(f"cannot write the journal {self.journal.path}: {exc}")
            self.done.set()
            raise self.fatal from exc
        except journals.SupersededError as exc:
            self.fatal = exc
            self.done.set()
            raise

    def map_output(
        self,
        attempt_id: str,
        partitions: OutputSizes,
        counters: dict[str, int],
        timings: dict[str, float],
        skipped: list[str],
        now: float,
    ) -> bool:
        """A map attempt's output, with its sizes per partition: accepted and
        journaled (its totals; the partition sizes go into the running sums, journaled as
        a checkpoint when one is due), or discarded (False)."""
        scheduler = self.scheduler
        if not scheduler.map_succeeded(attempt_id, partitions, now):
            return False
        output = scheduler.maps[scheduler.attempts[attempt_id].index].output
        assert output is not None
        self.record(
            {
                "event": "map_done",
                "attempt": attempt_id,
                "worker": output.name,
                "address": output.address,
                "records": output.records,
                "bytes": output.bytes,
                "counters": counters,
                "timings": timings,
                "skipped": skipped,
            }
        )
        sizes = scheduler.sizes
        if sizes.checkpoint_due(self.journal.bytes, map_phase_over=scheduler.map_phase_over):
            before = self.journal.bytes
            self.record(sizes.checkpoint())
            sizes.checkpointed(before, self.journal.bytes)
        return True

    def accept(self, attempt_id: str, counters: dict[str, int], skipped: list[str]) -> None:
        """An attempt's report counts: it is its task's accepted (or committed) one."""
        kind, index, _ = parse_attempt_id(attempt_id)
        self.outcomes[(kind.value, index)] = (dict(counters), list(skipped))

    def _totals(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for counters, _ in self.outcomes.values():
            for name, value in counters.items():
                totals[name] += value
        return totals

    @property
    def counters(self) -> dict[str, int]:
        """The engine's counters over accepted maps and committed tasks."""
        totals = self._totals()
        return {k: v for k, v in sorted(totals.items()) if not k.startswith(APP_COUNTER_PREFIX)}

    @property
    def app_counters(self) -> dict[str, int]:
        """The app's counters over accepted maps and committed tasks (at most
        ``MAX_COUNTERS`` names, the rest added up as ``_other``)."""
        named = sorted(
            (k.removeprefix(APP_COUNTER_PREFIX), v)
            for k, v in self._totals().items()
            if k.startswith(APP_COUNTER_PREFIX)
        )
        kept = dict(named[: apps.MAX_COUNTERS])
        if len(named) > apps.MAX_COUNTERS:
            kept[OTHER_COUNTERS] = sum(v for _, v in named[apps.MAX_COUNTERS :])
        return kept

    def skipped(self, excluding: tuple[str, int] | None = None) -> tuple[int, list[str]]:
        """Bad records skipped by accepted attempts (but the task ``excluding``): the
        count and the first ``badrecords.LISTED`` locations, in task order."""
        count, listed = 0, []
        for key in sorted(self.outcomes):
            if key == excluding:
                continue
            counters, locations = self.outcomes[key]
            count += counters.get("skipped_records", 0)
            listed.extend(locations)
        return count, listed[: badrecords.LISTED]

    def too_many_skipped(self, attempt_id: str, counters: dict[str, int], last: str) -> bool:
        """Whether an attempt's skipped records take the job past its limit; if so the
        job fails (whatever the attempt: retrying cannot skip fewer)."""
        count = counters.get("skipped_records", 0)
        if not count:
            return False
        kind, index, _ = parse_attempt_id(attempt_id)
        total = self.skipped((kind.value, index))[0] + count
        limit = self.plan.job.spec.fault_tolerance.max_skipped_records
        if total <= limit:
            return False
        self.scheduler.fail(badrecords.over_limit(total, limit, last))
        return True

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.time())

    async def notify(self) -> None:
        progress = self.scheduler.maps_done + self.scheduler.reduces_done
        if progress != self.progress_count:
            self.progress_count, self.progress_time = progress, time.time()
        if self.scheduler.map_phase_over:
            self.mark("map_phase_end")
        if self.scheduler.finished:
            self.done.set()
        async with self.changed:
            self.changed.notify_all()

    async def wait_change(self, timeout: float) -> None:
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout)

    def _phase_seconds(self, now: float) -> dict[str, float]:
        marks = self.marks
        phases = {
            "map": marks.get("map_phase_end", now) - marks.get("first_map", self.started),
            "reduce": marks.get("reduce_end", now) - marks.get("map_phase_end", now),
        }
        return {k: round(max(v, 0.0), 3) for k, v in phases.items()}

    def job_report(self) -> reports.JobReport:
        """The status page's report of the job now (also kept with the output at the end)."""
        now = time.time()
        figures = reports.Figures(
            job=self.plan.job.metadata.name,
            app=self.plan.job.spec.app.ref
            if self.step is None
            else f"step {self.step[0] + 1}/{self.step[1]}: {self.plan.job.spec.app.ref}",
            started=self.started,
            counters=self.counters,
            attempt_counters=self.attempt_counters,
            phase_seconds=self._phase_seconds(now),
            master_restarts=self.master_restarts,
            logs=self.logs,
        )
        return reports.project(self.scheduler, figures, time.monotonic(), now)

    def figures(self) -> projections.Figures:
        """What the master knows of the job besides the scheduler, now."""
        spec = self.plan.job.spec
        return projections.Figures(
            job=self.plan.job.metadata.name,
            app=spec.app.ref,
            maps=len(self.plan.splits),
            reduce_tasks=spec.reduce_tasks,
            shuffle_mode=spec.shuffle.mode,
            combine=self.plan.combine,
            partitioner=self.plan.partitioner_kind,
            started=self.started,
            counters=self.counters,
            app_counters=self.app_counters,
            skipped=self.skipped(),
            master_restarts=self.master_restarts,
            journal={
                "records": self.journal.records,
                "syncs": self.journal.syncs,
                "seconds": round(self.journal.seconds, 4),
            },
            phase_seconds=self._phase_seconds(time.time()),
            task_seconds=dict(self.task_seconds),
            peak_rss=dict(self.peak_rss),
            step=self.step,
            last_progress=self.progress_time,
        )

    def summary(self) -> dict[str, Any]:
        """The job's summary (:func:`kubemr.projections.summary`), with its part files."""
        figures = dataclasses.replace(
            self.figures(), outputs=[stores.basename(p) for p in self.output.parts()]
        )
        return projections.summary(self.scheduler, figures, time.time())

    def job_view(self) -> metriccatalog.JobGauges:
        """The job's figures for the metrics (read at scrape time)."""
        return projections.gauges(self.scheduler, self.figures(), time.monotonic())

    def status_report(self) -> contract.StatusReport:
        """What ``/status`` serves (the operator's view of the job): progress while it
        runs, and the whole summary once it is over."""
        final = None
        if self.released.is_set():
            final = self.summary()
            self.final_read.set()
        return projections.status(self.scheduler, self.figures(), final)


class MasterService(pb_grpc.MasterServicer):
    """The Master gRPC service."""

    def __init__(self, state: JobState, config: MasterConfig) -> None:
        self.state = state
        self.config = config
        self.heartbeat_interval = heartbeat_interval(
            state.plan.job.spec.fault_tolerance.heartbeat_timeout
        )

    @property
    def job_json(self) -> str:
        """The job a worker registers into (the running step's, in a multi-step job), with
        the plan's decisions filled in (:meth:`JobPlan.decided_job`)."""
        return json.dumps(specs.dump_job(self.state.plan.decided_job()))

    async def next_step(self, state: JobState) -> None:
        """Serve ``state``, the next step: workers of the last one are told to register
        again (its scheduler knows none), and get the new step's job."""
        previous, self.state = self.state, state
        await previous.notify()  # long polls of the last step wake and see the new one

    @property
    def scheduler(self) -> Scheduler:
        return self.state.scheduler

    async def Register(
        self,
        request: pb.RegisterRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.RegisterReply:
        role = Kind.MAP if request.role == pb.MAPPER else Kind.REDUCE
        worker_id = self.scheduler.register(request.name, role, request.address, time.monotonic())
        held = self.scheduler.held(worker_id)
        log.info(
            "registered %s at %s%s",
            worker_id,
            request.address or "-",
            f", holding {held} map outputs of its earlier registration" if held else "",
        )
        await self.state.notify()
        return pb.RegisterReply(
            worker_id=worker_id,
            job_json=self.job_json,
            boundaries=self.state.plan.boundaries,
            heartbeat_interval=self.heartbeat_interval,
        )

    def _exit_if_over(self, worker_id: str) -> bool:
        if not self.state.released.is_set():
            return False
        worker = self.scheduler.workers.get(worker_id)
        if worker is not None:
            worker.told_to_exit = True
        return True

    async def Heartbeat(
        self,
        request: pb.HeartbeatRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.HeartbeatReply:
        if self._exit_if_over(request.worker_id):
            await self.state.notify()
            return pb.HeartbeatReply(command=pb.EXIT)
        worker, now = self.scheduler.workers.get(request.worker_id), time.monotonic()
        if worker is not None and worker.alive:
            self.state.metrics.observe(
                "kubemr_heartbeat_interval_seconds", now - worker.last_seen, worker.kind.value
            )
        if not self.scheduler.heartbeat(request.worker_id, now):
            return pb.HeartbeatReply(command=pb.REREGISTER)
        if len(request.running) == 1:  # a worker runs one attempt at a time
            self.scheduler.progress(request.running[0], request.progress, now)
        cancel = [a for a in request.running if not self.scheduler.attempt_wanted(a)]
        return pb.HeartbeatReply(command=pb.CONTINUE, cancel=cancel)

    async def RequestTask(
        self,
        request: pb.TaskRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.TaskAssignment:
        deadline = time.monotonic() + self.config.poll_timeout
        while True:
            if self._exit_if_over(request.worker_id):
                await self.state.notify()
                return pb.TaskAssignment(kind=pb.TaskAssignment.EXIT)
            if not self.scheduler.known(request.worker_id):
                return pb.TaskAssignment(kind=pb.TaskAssignment.REREGISTER)
            assignment = self.scheduler.assign(request.worker_id, time.monotonic())
            if assignment is not None:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return pb.TaskAssignment(kind=pb.TaskAssignment.WAIT)
            await self.state.wait_change(remaining)
        self.state.record({"event": "assigned", "attempt": assignment.attempt})
        await self.state.durable()  # attempt numbers never repeat across masters
        temp = self.state.output.temp_path(assignment.attempt, assignment.index)
        if assignment.kind is Kind.MAP:
            self.state.mark("first_map")
            split = assignment.split
            assert split is not None
            return pb.TaskAssignment(
                kind=pb.TaskAssignment.MAP,
                index=assignment.index,
                attempt_id=assignment.attempt,
                split=pb.Split(path=split.path, start=split.start, end=split.end),
                temp_path=temp if self.scheduler.map_only else "",
            )
        return pb.TaskAssignment(
            kind=pb.TaskAssignment.REDUCE,
            index=assignment.index,
            attempt_id=assignment.attempt,
            temp_path=temp,
        )

    async def ReportTask(
        self,
        request: pb.TaskReport,
        context: grpc.aio.ServicerContext,
    ) -> pb.ReportReply:
        state, scheduler, now = self.state, self.scheduler, time.monotonic()
        attempt_id = request.attempt_id
        counters = dict(request.counters)
        last_skipped = request.skipped[-1] if request.skipped else ""
        if request.peak_rss:
            state.peak_rss[request.worker_id] = request.peak_rss
        if not request.ok:
            log.warning(
                "attempt %s failed: %s", attempt_id, request.error.strip().splitlines()[-1:]
            )
            accepted = scheduler.attempt_failed(attempt_id, request.error, now)
            if accepted:
                state.record({"event": "failed", "attempt": attempt_id, "error": request.error})
                state.too_many_skipped(attempt_id, counters, last_skipped)
        elif scheduler.attempt_wanted(attempt_id) and state.too_many_skipped(
            attempt_id, counters, last_skipped
        ):
            accepted = False  # the job failed: nothing more is accepted or committed
        elif _kind_of(attempt_id) is Kind.MAP and not scheduler.map_only:
            accepted = state.map_output(
                attempt_id,
                # (a length other than R is not counted: PartitionSizes.add)
                OutputSizes(request.partition_records, request.partition_bytes),
                counters,
                dict(request.timings),
                list(request.skipped),
                now,
            )
        else:
            seconds = await state.commits.commit(
                attempt_id, counters, dict(request.timings), list(request.skipped), now
            )
            accepted = seconds is not None
            if seconds is not None:
                state.task_seconds["commit"] += seconds
                state.metrics.observe("kubemr_phase_duration_seconds", seconds, "commit")
        if accepted and request.ok:
            state.attempt_counters[attempt_id] = dict(request.counters)
            state.accept(attempt_id, counters, list(request.skipped))
            for name, spent in request.timings.items():
                state.task_seconds[name] += spent
        if scheduler.reduces_done == len(scheduler.reduces):
            state.mark("reduce_end")
        await state.durable()  # the worker hears of nothing that is not durable
        await state.notify()
        return pb.ReportReply(accepted=accepted)

    async def AwaitMapOutputs(
        self,
        request: pb.MapOutputsRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.MapOutputsReply:
        deadline = time.monotonic() + self.config.poll_timeout
        have = set(request.have)
        total = len(self.scheduler.maps)
        while True:
            # A failed job wants no reduce attempt: release the reducer at once.
            if self.scheduler.finished or not self.scheduler.attempt_wanted(request.attempt_id):
                return pb.MapOutputsReply(cancelled=True, total=total)
            lost = self.scheduler.stale(list(request.fetching))
            refs, complete = self.scheduler.map_outputs(have - set(lost))
            if refs or lost or complete or time.monotonic() >= deadline:
                outputs = [
                    pb.MapOutput(map_task=r.index, attempt_id=r.attempt, address=r.address)
                    for r in refs
                ]
                return pb.MapOutputsReply(
                    outputs=outputs, complete=complete, total=total, lost=lost
                )
            await self.state.wait_change(deadline - time.monotonic())

    async def ReportFetchFailure(
        self,
        request: pb.FetchFailure,
        context: grpc.aio.ServicerContext,
    ) -> pb.ReportReply:
        log.warning(
            "%s could not fetch map %d (%s): %s",
            request.attempt_id,
            request.map_task,
            request.map_attempt_id,
            request.error,
        )
        lost = self.scheduler.fetch_failed(
            request.attempt_id, request.map_task, request.map_attempt_id
        )
        if lost:
            log.warning(
                "map output of %s declared lost: map %d reruns",
                request.map_attempt_id,
                request.map_task,
            )
            await self.state.notify()
        return pb.ReportReply(accepted=lost)

    async def Leave(
        self,
        request: pb.LeaveRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.ReportReply:
        worker = self.scheduler.workers.get(request.worker_id)
        if worker is None or not worker.alive:
            return pb.ReportReply(accepted=False)
        log.warning(
            "%s leaves (%s): its running attempt and map outputs run again",
            request.worker_id,
            request.reason or "no reason given",
        )
        self.scheduler.worker_lost(request.worker_id, time.monotonic())
        self.state.metrics.inc("kubemr_workers_lost_total", 1, worker.kind.value)
        await self.state.notify()
        return pb.ReportReply(accepted=True)

    async def GetStatus(
        self,
        request: pb.StatusRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.JobStatus:
        state = self.state
        report = projections.status(state.scheduler, state.figures())
        return pb.JobStatus(
            phase=report.phase,
            maps_total=report.maps.total,
            maps_done=report.maps.done,
            reduces_total=report.reduces.total,
            reduces_done=report.reduces.done,
            workers=report.workers,
            message=report.message,
            summary_json=json.dumps(state.summary()) if state.done.is_set() else "",
            step=report.step or 0,
            steps=report.steps or 0,
        )


async def _expire_workers(state: JobState, interval: float) -> None:
    while not state.done.is_set():
        await asyncio.sleep(interval)
        dead = state.scheduler.expire(time.monotonic())
        for worker_id in dead:
            worker = state.scheduler.workers.get(worker_id)
            if worker is not None:
                state.metrics.inc("kubemr_workers_lost_total", 1, worker.kind.value)
        if dead:
            log.warning(
                "workers lost (no heartbeat, or not back after a master restart): %s",
                ", ".join(dead),
            )
            await state.notify()


async def _either(first: asyncio.Event, second: asyncio.Event, timeout: float | None) -> None:
    """Wait until either event is set, or ``timeout`` seconds (None: no limit) passed."""
    waits = [asyncio.create_task(first.wait()), asyncio.create_task(second.wait())]
    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()


def _open_state(
    plan: JobPlan,
    output: OutputDir,
    config: MasterConfig,
    metrics: metrics_.RuntimeMetrics | None,
    step: tuple[int, int] | None,
) -> JobState:
    """The job state of a job (or a step), resumed from its journal if it has one."""
    journal, replay = open_journal(output, plan)
    state = JobState(plan, output, journal, replay, config.logs, metrics, step)
    if replay is not None:
        recovered = state.scheduler.recovered()
        log.warning(
            "resuming job %s%s (master restart %d): %d of %d map outputs and %d of %d "
            "committed reduce tasks recovered from %s",
            plan.job.metadata.name,
            f" at step {step[0] + 1} of {step[1]}" if step else "",
            state.master_restarts,
            recovered["map"],
            len(plan.splits),
            recovered["reduce"],
            plan.reduce_tasks,
            journal.path,
        )
    return state


def open_journal(
    output: OutputDir, plan: JobPlan
) -> tuple[journals.Journal, journals.Replay | None]:
    """Resume the job's journal (with what it says), or start the job afresh: clear the
    output directory (refused if it holds a finished job and ``overwrite`` is off), then
    start a new journal."""
    resumed = journals.resume(output, plan)
    if resumed is not None:
        return resumed
    output.prepare(plan.job.spec.output.overwrite)
    return journals.start(output, plan), None


def _stages(plan: JobPlan, config: MasterConfig) -> Iterator[tuple[JobPlan, OutputDir, Any]]:
    """The job's steps still to run, each with its plan, output directory and step
    (index, count); a step already committed (by a master before a restart) is skipped,
    its summary yielded instead of a plan. A job of one step is its only stage."""
    if not plan.steps:
        yield plan, OutputDir.of(plan.job.spec), None
        return
    for index, job in enumerate(plan.steps):
        output = OutputDir.of(job.spec)
        step = (index, len(plan.steps))
        if output.committed():
            log.warning("step %d of %d was done before a master restart", index + 1, step[1])
            yield plan, output, json.loads(output.store.read_bytes(output.join(SUMMARY)))
            continue
        yield plan_job(job, config.search_path, check_output=False), output, step


async def serve(plan: JobPlan, config: MasterConfig, terminate: asyncio.Event | None = None) -> int:
    """Run the job (each of its steps in turn) to the end, or until ``terminate`` is set;
    return the process exit code (0 on success, :data:`~kubemr.contract.EXIT_TERMINATED`
    if told to stop mid-job, :data:`~kubemr.contract.EXIT_SUPERSEDED` if another master
    holds the job)."""
    terminate = terminate or asyncio.Event()
    spec = plan.job.spec
    final = OutputDir.of(spec)
    started = time.time()
    if plan.steps:
        steps.begin(final, spec.output.overwrite, journals.fingerprint(plan))
    metrics = metrics_.RuntimeMetrics("master", plan.job.metadata.name)
    state: JobState | None = None
    service: MasterService | None = None
    server: grpc.aio.Server | None = None
    monitor: Any = None
    summaries: list[dict[str, Any]] = []
    for stage_plan, output, step in _stages(plan, config):
        if isinstance(step, dict):
            summaries.append(step)
            continue
        state = _open_state(stage_plan, output, config, metrics if plan.steps else None, step)
        if service is None:
            service = MasterService(state, config)
            server, monitor = await _start(service, state, config)
        else:
            await service.next_step(state)
        try:
            stopped = await _run_stage(state, terminate)
        except JournalError:
            assert server is not None
            await server.stop(grace=None)
            raise
        if stopped is not None:  # the job goes on elsewhere: leave the output as it is
            assert server is not None
            await server.stop(grace=None)
            await monitoring.finish(monitor, state.metrics, config.metrics_snapshot)
            return stopped
        if state.scheduler.phase is not Phase.SUCCEEDED:
            break
        if plan.steps:  # the step is done: a restarted master skips it
            summaries.append(state.summary())
            output.finish(summaries[-1])
    if state is None:  # every step was done before a restart (which came mid-promotion)
        return _promoted(plan, summaries, started, config)
    assert service is not None and server is not None
    scheduler = state.scheduler
    summary = state.summary()
    if plan.steps:
        summary = steps.chain_summary(plan.job, summaries or [summary], started)
    state.final_summary = summary
    if scheduler.phase is Phase.SUCCEEDED and plan.steps:
        summary["outputs"] = [stores.basename(p) for p in steps.promote(state.output, final)]
    summary = {**summary, reports.REPORT_KEY: state.job_report().dump()}  # `kubemr ui` shows it
    if scheduler.phase is Phase.SUCCEEDED:
        final.finish(summary)
        log.info("job %s succeeded in %.2fs", plan.job.metadata.name, summary["wallSeconds"])
        code = 0
    else:
        final.abort()
        final.keep_failure(summary)
        log.error("job %s failed: %s", plan.job.metadata.name, scheduler.error)
        code = contract.EXIT_JOB_FAILED
    if config.summary_file is not None:
        config.summary_file.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    state.released.set()
    await state.notify()
    deadline = time.monotonic() + config.exit_grace
    # Live workers heartbeat every interval; one silent for longer (killed, stopped) is
    # not waited for: it could not be told anyway.
    interval = heartbeat_interval(spec.fault_tolerance.heartbeat_timeout)
    while (
        not terminate.is_set()
        and time.monotonic() < deadline
        and any(
            w.alive
            and not w.told_to_exit
            and time.monotonic() - w.last_seen <= STALE_AFTER * interval
            for w in scheduler.workers.values()
        )
    ):
        await state.wait_change(min(deadline - time.monotonic(), interval))
    await server.stop(grace=0 if terminate.is_set() else 1.0)
    if monitor is not None:
        await _either(state.final_read, terminate, config.status_linger)
    await monitoring.finish(monitor, state.metrics, config.metrics_snapshot)
    return code


def _promoted(
    plan: JobPlan, summaries: list[dict[str, Any]], started: float, config: MasterConfig
) -> int:
    """Commit a multi-step job whose steps were all done before this master started."""
    final = OutputDir.of(plan.job.spec)
    summary = steps.chain_summary(plan.job, summaries, started)
    last = OutputDir.of(plan.steps[-1].spec)
    summary["outputs"] = [stores.basename(p) for p in steps.promote(last, final)]
    final.finish(summary)
    if config.summary_file is not None:
        config.summary_file.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("job %s: every step was done; its output is committed", plan.job.metadata.name)
    return 0


async def _start(
    service: MasterService, state: JobState, config: MasterConfig
) -> tuple[grpc.aio.Server, Any]:
    """Start the gRPC server and the monitoring endpoints; announce the address."""
    plan = state.plan
    server = grpc.aio.server(
        options=GRPC_OPTIONS,
        interceptors=[
            *auth.server_interceptors(config.token, "master", state.metrics),
            rpcmetrics.server_interceptor(state.metrics),
        ],
    )
    pb_grpc.add_MasterServicer_to_server(service, server)
    port = server.add_insecure_port(addresses.join(config.bind, config.port))
    await server.start()
    address = addresses.join(config.advertise_host, port)
    log.info(
        "master for job %s serving on %s: %d map tasks, %d reduce tasks",
        plan.job.metadata.name,
        address,
        len(plan.splits),
        plan.reduce_tasks,
    )
    if config.address_file is not None:
        tmp = Path(f"{config.address_file}.tmp")
        tmp.write_text(address, encoding="utf-8")
        tmp.replace(config.address_file)
    monitor = await monitoring.start(
        config,
        state.metrics,
        lambda: service.state.status_report(),  # noqa: PLW0108 (the step serving now)
        lambda: service.state.job_report(),  # noqa: PLW0108
    )
    return server, monitor


async def _run_stage(state: JobState, terminate: asyncio.Event) -> int | None:
    """Serve one job (or step) until every task is committed or the job failed; None then.
    Told to stop first (SIGTERM), or superseded by another master, return the exit code
    with the journal closed and the output left as it is (a master resumes the job)."""
    if state.step is not None:
        log.info(
            "step %d of %d: %s, %d map tasks, %d reduce tasks",
            state.step[0] + 1,
            state.step[1],
            state.plan.job.spec.app.ref,
            len(state.plan.splits),
            state.plan.reduce_tasks,
        )
    timeout = state.plan.job.spec.fault_tolerance.heartbeat_timeout
    probe = asyncio.create_task(state.metrics.probe_loop())
    expiry = asyncio.create_task(_expire_workers(state, min(1.0, timeout / 4)))
    await state.notify()  # a job with nothing to do is done at once
    await _either(state.done, terminate, None)
    expiry.cancel()
    probe.cancel()
    if state.done.is_set() and state.fatal is None:
        with contextlib.suppress(JournalError, journals.SupersededError):  # (fatal is set)
            await state.durable()  # whatever was recorded last is in the journal
        try:
            state.journal.check_held()  # the output is this master's to finish (or abort)
        except journals.SupersededError as exc:
            state.fatal = exc
    stopped = None
    if not state.done.is_set():
        log.warning("stopping (SIGTERM) mid-job: closing the journal; a new master resumes")
        stopped = contract.EXIT_TERMINATED
    elif isinstance(state.fatal, journals.SupersededError):
        log.error("superseded: %s", state.fatal)
        stopped = contract.EXIT_SUPERSEDED
    elif state.fatal is not None:
        raise state.fatal
    state.journal.close()
    return stopped
