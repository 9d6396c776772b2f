"""The master process: a thin gRPC servicer over the scheduler, and the job's commit.

Every handler decodes its request, calls the pure :class:`~kubemr.scheduler.Scheduler`
on the event loop (one loop, so no locks), and encodes the answer. Long polls wait on a
condition that is notified whenever the state changes. When every reduce task is
committed, the master writes the summary and ``_SUCCESS``, tells every worker to exit,
and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import grpc

from kubemr import spec as specs
from kubemr.config import MasterConfig
from kubemr.plan import JobPlan
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc
from kubemr.scheduler import STALE_AFTER, Kind, Phase, Scheduler, heartbeat_interval
from kubemr.storage import OutputDir

log = logging.getLogger("kubemr.master")

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 300 * 2**20),
    ("grpc.max_send_message_length", 300 * 2**20),
]


def _kind_of(attempt_id: str) -> Kind:
    return Kind.MAP if attempt_id.startswith("m") else Kind.REDUCE


class JobState:
    """The scheduler plus what the master adds around it: counters, timings, commit."""

    def __init__(self, plan: JobPlan, output: OutputDir) -> None:
        spec = plan.job.spec
        self.plan = plan
        self.output = output
        self.scheduler = Scheduler(
            plan.splits,
            spec.reduce_tasks,
            barrier=spec.shuffle.mode == "barrier",
            max_attempts=spec.fault_tolerance.max_task_attempts,
            heartbeat_timeout=spec.fault_tolerance.heartbeat_timeout,
            speculative=spec.fault_tolerance.speculative,
        )
        self.counters: dict[str, int] = defaultdict(int)
        self.task_seconds: dict[str, float] = defaultdict(float)
        self.peak_rss: dict[str, int] = {}
        self.started = time.time()
        self.marks: dict[str, float] = {}
        self.changed = asyncio.Condition()
        self.done = asyncio.Event()
        self.released = asyncio.Event()  # output final: workers may exit

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.time())

    async def notify(self) -> None:
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

    def summary(self) -> dict[str, Any]:
        spec = self.plan.job.spec
        now = time.time()
        marks = self.marks
        phases = {
            "map": marks.get("map_phase_end", now) - marks.get("first_map", self.started),
            "reduce": marks.get("reduce_end", now) - marks.get("map_phase_end", now),
        }
        return {
            "job": self.plan.job.metadata.name,
            "app": spec.app.ref,
            "phase": self.scheduler.phase.value,
            "error": self.scheduler.error,
            "mapTasks": len(self.plan.splits),
            "reduceTasks": spec.reduce_tasks,
            "shuffleMode": spec.shuffle.mode,
            "combine": self.plan.combine,
            "partitioner": self.plan.partitioner_kind,
            "counters": dict(sorted(self.counters.items())),
            "attempts": self.scheduler.attempts_by_outcome(),
            "backupAttempts": self.scheduler.backup_attempts(),
            "speculation": self.scheduler.speculation(),
            "blacklistedWorkers": self.scheduler.blacklisted(),
            "phaseSeconds": {k: round(max(v, 0.0), 3) for k, v in phases.items()},
            "taskSeconds": {k: round(v, 3) for k, v in sorted(self.task_seconds.items())},
            "peakRssBytes": dict(sorted(self.peak_rss.items())),
            "workers": len(self.scheduler.workers),
            "workerNames": sorted({w.name for w in self.scheduler.workers.values()}),
            "wallSeconds": round(now - self.started, 3),
            "outputs": [p.name for p in self.output.parts()],
        }


class MasterService(pb_grpc.MasterServicer):
    """The Master gRPC service."""

    def __init__(self, state: JobState, config: MasterConfig) -> None:
        self.state = state
        self.config = config
        plan = state.plan
        self.job_json = json.dumps(specs.dump_job(plan.job))
        self.heartbeat_interval = heartbeat_interval(
            plan.job.spec.fault_tolerance.heartbeat_timeout
        )

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
        log.info("registered %s at %s", worker_id, request.address or "-")
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
        now = time.monotonic()
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
        if assignment.kind is Kind.MAP:
            self.state.mark("first_map")
            split = assignment.split
            assert split is not None
            return pb.TaskAssignment(
                kind=pb.TaskAssignment.MAP,
                index=assignment.index,
                attempt_id=assignment.attempt,
                split=pb.Split(path=split.path, start=split.start, end=split.end),
            )
        temp = self.state.output.temp_path(assignment.attempt, assignment.index)
        return pb.TaskAssignment(
            kind=pb.TaskAssignment.REDUCE,
            index=assignment.index,
            attempt_id=assignment.attempt,
            temp_path=str(temp),
        )

    async def ReportTask(
        self,
        request: pb.TaskReport,
        context: grpc.aio.ServicerContext,
    ) -> pb.ReportReply:
        state, scheduler, now = self.state, self.scheduler, time.monotonic()
        attempt_id = request.attempt_id
        if request.peak_rss:
            state.peak_rss[request.worker_id] = request.peak_rss
        if not request.ok:
            log.warning(
                "attempt %s failed: %s", attempt_id, request.error.strip().splitlines()[-1:]
            )
            accepted = scheduler.attempt_failed(attempt_id, request.error, now)
        elif _kind_of(attempt_id) is Kind.MAP:
            partitions = [(p.records, p.bytes) for p in request.partitions]
            accepted = scheduler.map_succeeded(attempt_id, partitions, now)
        else:
            accepted = scheduler.may_commit(attempt_id)
            if accepted:
                attempt = scheduler.attempts[attempt_id]
                temp = state.output.temp_path(attempt_id, attempt.index)
                started = time.perf_counter()
                try:
                    state.output.commit(temp, attempt.index)
                except OSError as exc:
                    scheduler.attempt_failed(attempt_id, f"commit failed: {exc}", now)
                    accepted = False
                else:
                    scheduler.reduce_committed(attempt_id, now)
                    state.task_seconds["commit"] += time.perf_counter() - started
            else:
                state.output.discard(attempt_id)
        if accepted and request.ok:
            for name, value in request.counters.items():
                state.counters[name] += value
            for name, seconds in request.timings.items():
                state.task_seconds[name] += seconds
        if scheduler.reduces_done == len(scheduler.reduces):
            state.mark("reduce_end")
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
            partition = self.scheduler.attempts[request.attempt_id].index
            lost = self.scheduler.stale(list(request.fetching))
            refs, complete = self.scheduler.map_outputs(have - set(lost))
            if refs or lost or complete or time.monotonic() >= deadline:
                outputs = [
                    pb.MapOutput(
                        map_task=r.index,
                        attempt_id=r.attempt,
                        address=r.address,
                        records=r.partitions[partition][0],
                        bytes=r.partitions[partition][1],
                    )
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

    async def GetStatus(
        self,
        request: pb.StatusRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.JobStatus:
        scheduler = self.scheduler
        summary = json.dumps(self.state.summary()) if self.state.done.is_set() else ""
        return pb.JobStatus(
            phase=scheduler.phase.value,
            maps_total=len(scheduler.maps),
            maps_done=scheduler.maps_done,
            reduces_total=len(scheduler.reduces),
            reduces_done=scheduler.reduces_done,
            workers=sum(w.alive for w in scheduler.workers.values()),
            message=scheduler.error or "",
            summary_json=summary,
        )


async def _expire_workers(state: JobState, interval: float) -> None:
    while not state.done.is_set():
        await asyncio.sleep(interval)
        dead = state.scheduler.expire(time.monotonic())
        if dead:
            log.warning("workers lost (no heartbeat): %s", ", ".join(dead))
            await state.notify()


async def serve(plan: JobPlan, config: MasterConfig) -> int:
    """Run the job to the end; return the process exit code (0 on success)."""
    spec = plan.job.spec
    output = OutputDir(spec.output.path)
    output.prepare(spec.output.overwrite)
    state = JobState(plan, output)
    server = grpc.aio.server(options=GRPC_OPTIONS)
    pb_grpc.add_MasterServicer_to_server(MasterService(state, config), server)
    port = server.add_insecure_port(f"{config.bind}:{config.port}")
    await server.start()
    address = f"{config.advertise_host}:{port}"
    log.info(
        "master for job %s serving on %s: %d map tasks, %d reduce tasks",
        plan.job.metadata.name,
        address,
        len(plan.splits),
        spec.reduce_tasks,
    )
    if config.address_file is not None:
        tmp = Path(f"{config.address_file}.tmp")
        tmp.write_text(address, encoding="utf-8")
        tmp.replace(config.address_file)
    expiry = asyncio.create_task(
        _expire_workers(state, min(1.0, spec.fault_tolerance.heartbeat_timeout / 4))
    )
    await state.notify()  # a job with nothing to do is done at once
    await state.done.wait()
    expiry.cancel()
    scheduler = state.scheduler
    summary = state.summary()
    if scheduler.phase is Phase.SUCCEEDED:
        output.finish(summary)
        log.info("job %s succeeded in %.2fs", plan.job.metadata.name, summary["wallSeconds"])
        code = 0
    else:
        output.abort()
        log.error("job %s failed: %s", plan.job.metadata.name, scheduler.error)
        code = 1
    if config.summary_file is not None:
        config.summary_file.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    state.released.set()
    await state.notify()
    deadline = time.monotonic() + config.exit_grace
    # Live workers heartbeat every interval; one silent for longer (killed, stopped) is
    # not waited for: it could not be told anyway.
    interval = heartbeat_interval(spec.fault_tolerance.heartbeat_timeout)
    while time.monotonic() < deadline and any(
        w.alive and not w.told_to_exit and time.monotonic() - w.last_seen <= STALE_AFTER * interval
        for w in scheduler.workers.values()
    ):
        await state.wait_change(min(deadline - time.monotonic(), interval))
    await server.stop(grace=1.0)
    return code
