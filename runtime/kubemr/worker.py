"""The worker process: register, pull tasks, run them, report; mappers also serve shuffle.

One event loop runs the gRPC client, the heartbeat and (mappers) the shuffle server.
User code runs in a worker thread, off the loop, so heartbeats and shuffle fetches go on
while a task computes. A worker runs one task at a time and exits when the master says
so, which happens only after the job's output is final.

A worker outlives its master: when the master cannot be reached (its process died) or
no longer knows the worker (it was restarted, or declared the worker dead), the worker
abandons the attempt it is running and registers again under the same name and shuffle
address, for up to ``connect_timeout`` seconds. Its shuffle server and the map outputs
on its disk stay, and the master gives them back to it (:meth:`Scheduler.register`).

In a multi-step job the master serves each step with a fresh scheduler, which knows no
worker: the workers register again the same way and get the next step's job; a worker
whose job changed drops the previous step's map outputs (attempt ids start over).

Every heartbeat carries the running attempt's progress, 0..1, which the master's
speculation compares with its peers'. A map's progress is the share of its split's
bytes consumed. A reduce's is half fetching, half reducing:
``0.5 * map outputs fetched / map tasks + 0.5 * records reduced / records fetched``
(it stays at 0.5 while merge passes, if any, run before reducing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from kubemr import apps, auth, monitoring, plan, runs, shuffle
from kubemr import metrics as metrics_
from kubemr import spec as specs
from kubemr.badrecords import TooManyBadRecordsError
from kubemr.config import WorkerConfig
from kubemr.maptask import MapCancelledError, run_map
from kubemr.master import APP_COUNTER_PREFIX, GRPC_OPTIONS
from kubemr.partitioning import make_partitioner
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc
from kubemr.reducetask import run_reduce
from kubemr.splits import Split

log = logging.getLogger("kubemr.worker")
Assignment = pb.TaskAssignment

MASTER_CHANNEL_OPTIONS = [
    *GRPC_OPTIONS,
    # Reach a restarted master soon after it serves: gRPC's default reconnect back-off
    # grows to two minutes, far past the window in which the master waits for workers.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 250),
    # A replacement master pod has a new IP behind the same Service name: re-resolve it
    # at once (gRPC's default waits 30 s between two resolutions of a name).
    ("grpc.dns_min_time_between_resolutions_ms", 500),
]


class WorkerError(RuntimeError):
    """The worker cannot go on (master unreachable, job spec unusable)."""


def peak_rss() -> int:
    """This process's peak resident memory, bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _error_text(exc: BaseException) -> str:
    summary = traceback.format_exception(exc)
    return "".join(summary[-6:]).strip()


@dataclass
class Context:
    """What a worker knows once registered."""

    config: WorkerConfig
    stub: pb_grpc.MasterStub
    worker_id: str
    job: specs.MapReduceJob
    app: apps.App
    boundaries: list[bytes]
    heartbeat_interval: float
    metrics: metrics_.RuntimeMetrics
    running: set[str] = field(default_factory=set)
    cancel: dict[str, threading.Event] = field(default_factory=dict)
    progress: dict[str, float] = field(default_factory=dict)
    """Progress of each running attempt, 0..1 (written by task threads, read by the loop)."""
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when this registration is over: the master is unreachable or forgot us."""

    def channel(self, address: str) -> grpc.aio.Channel:
        if address not in self.channels:
            self.channels[address] = grpc.aio.insecure_channel(
                address,
                options=GRPC_OPTIONS,
                interceptors=[
                    *auth.client_interceptors(self.config.token),
                    *self.metrics.client_interceptors(),
                ],
            )
        return self.channels[address]


async def _register(
    stub: pb_grpc.MasterStub, config: WorkerConfig, address: str
) -> pb.RegisterReply:
    role = pb.MAPPER if config.role == "mapper" else pb.REDUCER
    request = pb.RegisterRequest(role=role, address=address, name=config.name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.connect_timeout
    while True:
        try:
            return await stub.Register(request, timeout=5, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise WorkerError(
                    f"the master at {config.master} refused this worker's job token "
                    f"($KUBEMR_TOKEN): {exc.details()}"
                ) from None
            if loop.time() >= deadline:
                raise WorkerError(
                    f"cannot reach the master at {config.master}: "
                    f"{exc.code().name}: {exc.details()}"
                ) from None
            await asyncio.sleep(0.2)


async def _context(
    stub: pb_grpc.MasterStub,
    config: WorkerConfig,
    address: str,
    metrics: metrics_.RuntimeMetrics,
) -> Context:
    reply = await _register(stub, config, address)
    job = specs.parse_job(json.loads(reply.job_json), "job from master")
    app = apps.load_app(job.spec.app, config.search_path)
    metrics.job = job.metadata.name
    return Context(
        config,
        stub,
        reply.worker_id,
        job,
        app,
        list(reply.boundaries),
        reply.heartbeat_interval,
        metrics,
    )


async def _heartbeats(ctx: Context, stop: asyncio.Event) -> None:
    """Heartbeat until the job is over (``stop``) or this registration is (``ctx.lost``)."""
    while not stop.is_set():
        running = sorted(ctx.running)
        progress = ctx.progress.get(running[0], 0.0) if len(running) == 1 else 0.0
        try:
            reply = await ctx.stub.Heartbeat(
                pb.HeartbeatRequest(worker_id=ctx.worker_id, running=running, progress=progress),
                timeout=max(ctx.heartbeat_interval * 2, 1.0),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                log.warning("the master is unreachable: %s", exc.details())
                ctx.lost.set()
                return
            log.debug("heartbeat failed: %s", exc.code().name)
        else:
            if reply.command == pb.EXIT:
                stop.set()
            elif reply.command == pb.REREGISTER:
                log.warning("the master no longer knows %s", ctx.worker_id)
                ctx.lost.set()
                return
            for attempt_id in reply.cancel:  # another attempt of the task won
                if attempt_id in ctx.cancel:
                    ctx.cancel[attempt_id].set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ctx.heartbeat_interval)


async def _run_map(ctx: Context, task: Assignment) -> pb.TaskReport:
    spec = ctx.job.spec
    combine = plan.decide_combine(spec, ctx.app)
    combiner = getattr(ctx.app, "combine", None) if combine else None
    root = ctx.config.work_dir
    result = await asyncio.to_thread(
        run_map,
        ctx.app,
        Split(task.split.path, task.split.start, task.split.end),
        reduce_tasks=spec.reduce_tasks,
        partitioner=make_partitioner(spec.reduce_tasks, ctx.boundaries),
        combiner=combiner,
        buffer_size=spec.shuffle.buffer_size,
        out_dir=shuffle.map_output_dir(root, task.attempt_id),
        scratch_dir=root / "spill" / task.attempt_id,
        cancel=ctx.cancel.get(task.attempt_id),
        storage=spec.storage,
        progress=lambda share: ctx.progress.__setitem__(task.attempt_id, share),
        metrics=ctx.metrics,
        record_format=spec.input.format,
        max_skipped=spec.fault_tolerance.max_skipped_records,
        output_path=task.temp_path if spec.reduce_tasks == 0 else None,
        codec=spec.output.compression,
        output_format=spec.output.format,
    )
    return pb.TaskReport(
        ok=True,
        partitions=[pb.PartitionInfo(records=r, bytes=b) for r, b in result.partitions],
        counters=with_app_counters(result.counters, result.app_counters),
        timings=result.timings,
        skipped=result.skipped,
    )


def with_app_counters(counters: dict[str, int], app: dict[str, int]) -> dict[str, int]:
    """A report's counters: the engine's, and the app's named ``app:<name>``."""
    return {**counters, **{APP_COUNTER_PREFIX + k: v for k, v in app.items()}}


FETCH_SHARE = 0.5
"""The share of a reduce attempt's progress that fetching stands for; reducing is the rest."""
FETCH_RETRY_DELAY = 0.2
"""Seconds a reducer waits before fetching a map task's output again after a failure
(times the number of failures so far for that task)."""


async def _fetch_all(
    ctx: Context, task: Assignment, scratch: Path, buffer: shuffle.FetchBuffer
) -> tuple[list[shuffle.FetchedRun], dict[str, float]]:
    """Fetch this reduce task's partition of every map output, as they are reported.

    A fetch that fails (the mapper is gone, or no longer has the output) is reported to
    the master and dropped; the master reruns the map once the output is declared lost
    and a later reply names the new attempt. A fetch the master says is stale (its map
    output was lost or replaced) is abandoned the same way. Completed fetches are kept:
    their data was read whole, whatever happened to the mapper since.
    """
    spec = ctx.job.spec
    metrics = ctx.metrics
    metrics.set("kubemr_fetch_sources_capacity", spec.shuffle.parallel_fetches)
    done: dict[int, shuffle.FetchedRun] = {}
    inflight: dict[int, tuple[pb.MapOutput, Path | None, asyncio.Task[shuffle.FetchedRun]]] = {}
    failures: dict[int, int] = {}
    gate = asyncio.Semaphore(spec.shuffle.parallel_fetches)
    loop = asyncio.get_running_loop()
    started = loop.time()
    waited = 0.0
    total: int | None = None
    idle_poll = False  # the last reply had nothing new: do not spin on the master

    async def fetch(ref: pb.MapOutput, spill_to: Path | None) -> shuffle.FetchedRun:
        delay = FETCH_RETRY_DELAY * failures.get(ref.map_task, 0)
        if delay:
            await asyncio.sleep(delay)
        queued = time.perf_counter()
        metrics.add("kubemr_fetch_sources_waiting", 1)
        try:
            await gate.acquire()
        finally:
            metrics.add("kubemr_fetch_sources_waiting", -1)
        metrics.observe("kubemr_fetch_slot_wait_seconds", time.perf_counter() - queued)
        metrics.add("kubemr_fetch_sources_active", 1)
        try:
            return await shuffle.fetch_run(
                ctx.channel(ref.address), ctx.job.metadata.name, ref, task.index, spill_to, buffer
            )
        finally:
            metrics.add("kubemr_fetch_sources_active", -1)
            gate.release()

    async def poll(delay: float) -> pb.MapOutputsReply:
        if delay:
            await asyncio.sleep(delay)
        return await ctx.stub.AwaitMapOutputs(
            pb.MapOutputsRequest(
                worker_id=ctx.worker_id,
                attempt_id=task.attempt_id,
                have=sorted({*done, *inflight}),
                fetching=sorted(ref.attempt_id for ref, _, _ in inflight.values()),
            )
        )

    def drop(index: int) -> None:
        ref, spill_to, pending = inflight.pop(index)
        pending.cancel()
        if spill_to is None:
            buffer.unreserve(ref.bytes)
        else:
            spill_to.unlink(missing_ok=True)

    async def harvest() -> None:
        for index, (ref, _, pending) in list(inflight.items()):
            if not pending.done():
                continue
            exc = pending.exception()
            if exc is None:
                inflight.pop(index)
                done[index] = pending.result()
                if total:
                    ctx.progress[task.attempt_id] = FETCH_SHARE * len(done) / total
            elif isinstance(exc, grpc.aio.AioRpcError | runs.FrameError):
                # Unreachable, or it sent bytes that are not frames (a corrupt disk, a
                # hostile peer): the stream is dropped and the map output reported, so
                # the master re-runs that map; this reduce attempt carries on.
                drop(index)
                failures[index] = failures.get(index, 0) + 1
                reason = (
                    f"{exc.code().name}: {exc.details()}"
                    if isinstance(exc, grpc.aio.AioRpcError)
                    else f"corrupt data: {exc}"
                )
                log.warning(
                    "%s: fetch of %s from %s failed: %s",
                    task.attempt_id,
                    ref.attempt_id,
                    ref.address,
                    reason,
                )
                await ctx.stub.ReportFetchFailure(
                    pb.FetchFailure(
                        worker_id=ctx.worker_id,
                        attempt_id=task.attempt_id,
                        map_task=ref.map_task,
                        map_attempt_id=ref.attempt_id,
                        error=reason,
                    )
                )
            else:
                raise exc

    poller: asyncio.Task[pb.MapOutputsReply] | None = None
    try:
        while True:
            await harvest()
            if total is not None and len(done) >= total:
                break
            if poller is None:
                poller = asyncio.create_task(poll(ctx.heartbeat_interval if idle_poll else 0.0))
            poll_started = loop.time()
            await asyncio.wait(
                [poller, *(pending for _, _, pending in inflight.values())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not poller.done():
                continue
            waited += loop.time() - poll_started
            metrics.observe("kubemr_map_output_wait_seconds", loop.time() - poll_started)
            reply = poller.result()
            poller = None
            if reply.cancelled:
                raise asyncio.CancelledError("reduce attempt no longer wanted")
            total = reply.total
            for index in reply.lost:
                if index in inflight:
                    log.info(
                        "%s: map %d output is stale, dropping its fetch", task.attempt_id, index
                    )
                    drop(index)
            for ref in reply.outputs:
                if ref.map_task in done or ref.map_task in inflight:
                    continue
                spill_to = None if buffer.reserve(ref.bytes) else _spill_path(scratch, ref)
                inflight[ref.map_task] = (ref, spill_to, asyncio.create_task(fetch(ref, spill_to)))
            idle_poll = reply.complete and not reply.outputs and not reply.lost
    finally:
        if poller is not None:
            poller.cancel()
        for _, _, pending in inflight.values():
            pending.cancel()
    timings = {"shuffle_fetch": loop.time() - started, "shuffle_wait": waited}
    return [done[i] for i in sorted(done)], timings


def _spill_path(scratch: Path, ref: pb.MapOutput) -> Path:
    return scratch / f"fetched-m{ref.map_task:06d}-{ref.attempt_id}.run"


async def _run_reduce(ctx: Context, task: Assignment) -> pb.TaskReport:
    scratch = ctx.config.work_dir / "reduce" / task.attempt_id
    scratch.mkdir(parents=True, exist_ok=True)
    spec = ctx.job.spec
    buffer = shuffle.FetchBuffer(
        spec.shuffle.buffer_size, ctx.metrics, coarse=ctx.config.coarse_fetch_lock
    )
    try:
        fetched, timings = await _fetch_all(ctx, task, scratch, buffer)
        sources: list[list[bytes] | Path] = [
            r.path if r.path is not None else r.frames for r in fetched
        ]
        records = max(sum(r.records for r in fetched), 1)

        def reduced(done: int) -> None:
            ctx.progress[task.attempt_id] = FETCH_SHARE + (1 - FETCH_SHARE) * done / records

        ctx.progress[task.attempt_id] = FETCH_SHARE
        async with buffer.reducing():
            result = await asyncio.to_thread(
                run_reduce,
                ctx.app,
                sources,
                task.temp_path,
                scratch,
                metrics=ctx.metrics,
                progress=reduced,
                storage=ctx.job.spec.storage,
                codec=ctx.job.spec.output.compression,
                max_skipped=spec.fault_tolerance.max_skipped_records,
                partition=task.index,
                output_format=spec.output.format,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    counters = dict(result.counters)
    counters["shuffle_bytes"] = sum(r.bytes for r in fetched)
    counters["shuffle_runs_spilled"] = sum(r.path is not None for r in fetched)
    return pb.TaskReport(
        ok=True,
        counters=with_app_counters(counters, result.app_counters),
        timings={**timings, **result.timings},
        skipped=result.skipped,
    )


async def _run_task(ctx: Context, task: Assignment) -> None:
    """Run one attempt and report it; abandon it if the registration is lost meanwhile
    (the master that assigned it is gone, or forgot this worker)."""
    ctx.running.add(task.attempt_id)
    ctx.cancel[task.attempt_id] = threading.Event()
    started, outcome = time.perf_counter(), "abandoned"
    body = _run_map(ctx, task) if task.kind == Assignment.MAP else _run_reduce(ctx, task)
    work = asyncio.create_task(body)
    lost = asyncio.create_task(ctx.lost.wait())
    try:
        await asyncio.wait([work, lost], return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            log.warning("abandoning attempt %s: lost the master", task.attempt_id)
            ctx.cancel[task.attempt_id].set()
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            return
        report = work.result()
        outcome = "succeeded"
    except (asyncio.CancelledError, MapCancelledError):
        outcome = "cancelled"
        log.info("attempt %s cancelled", task.attempt_id)
        return
    except grpc.aio.AioRpcError as exc:  # a call to the master failed mid-task
        log.warning(
            "abandoning attempt %s: a call to the master failed: %s",
            task.attempt_id,
            exc.code().name,
        )
        ctx.lost.set()
        return
    except TooManyBadRecordsError as exc:  # the master fails the job: retrying cannot help
        log.warning("attempt %s failed: %s", task.attempt_id, exc)
        outcome = "failed"
        report = pb.TaskReport(
            ok=False,
            error=f"{task.attempt_id}: {exc}",
            counters={"skipped_records": exc.skipped.count},
            skipped=exc.skipped.locations,
        )
    except Exception as exc:  # the user's code failed: report it, keep serving
        log.warning("attempt %s failed: %r", task.attempt_id, exc)
        outcome = "failed"
        report = pb.TaskReport(ok=False, error=f"{task.attempt_id}: {_error_text(exc)}")
    finally:
        kind = "map" if task.kind == Assignment.MAP else "reduce"
        ctx.metrics.observe(
            "kubemr_task_duration_seconds", time.perf_counter() - started, kind, outcome
        )
        lost.cancel()
        ctx.running.discard(task.attempt_id)
        ctx.cancel.pop(task.attempt_id, None)
        ctx.progress.pop(task.attempt_id, None)
    report.worker_id = ctx.worker_id
    report.attempt_id = task.attempt_id
    report.peak_rss = peak_rss()
    try:
        await ctx.stub.ReportTask(report)
    except grpc.aio.AioRpcError as exc:
        log.warning("cannot report %s, abandoning it: %s", task.attempt_id, exc.code().name)
        ctx.lost.set()


async def _reconnect(
    ctx: Context, stub: pb_grpc.MasterStub, config: WorkerConfig, address: str
) -> Context:
    """Register again under the same name and shuffle address (within
    ``connect_timeout``): the master gives this worker back its map outputs."""
    log.warning("%s: registration %s is over; registering again", config.name, ctx.worker_id)
    fresh = await _context(stub, config, address, ctx.metrics)
    fresh.channels = ctx.channels
    if fresh.job != ctx.job:  # the next step of a multi-step job: its attempt ids start over
        log.info(
            "%s: a new step (%s); dropping the last step's map outputs",
            config.name,
            fresh.job.spec.app.ref,
        )
        shutil.rmtree(shuffle.map_outputs(config.work_dir), ignore_errors=True)
    log.warning("%s re-registered as %s", config.name, fresh.worker_id)
    return fresh


async def run_worker(config: WorkerConfig) -> int:
    """Serve until the master says the job is over; return the exit code."""
    config.work_dir.mkdir(parents=True, exist_ok=True)
    server: grpc.aio.Server | None = None
    address = ""
    metrics = metrics_.RuntimeMetrics(config.role)
    monitor = await monitoring.start(config, metrics)
    probe = asyncio.create_task(metrics.probe_loop())
    servicer = shuffle.ShuffleServicer(config.work_dir, chunk_size=2**20, metrics=metrics)
    if config.role == "mapper":
        server = grpc.aio.server(
            options=GRPC_OPTIONS,
            interceptors=[
                *auth.server_interceptors(config.token, "shuffle", metrics),
                metrics.server_interceptor(),
            ],
        )
        pb_grpc.add_ShuffleServicer_to_server(servicer, server)
        port = server.add_insecure_port(f"{config.bind}:{config.shuffle_port}")
        await server.start()
        address = f"{config.advertise_host}:{port}"
    channel = grpc.aio.insecure_channel(
        config.master,
        options=MASTER_CHANNEL_OPTIONS,
        interceptors=[*auth.client_interceptors(config.token), *metrics.client_interceptors()],
    )
    stub = pb_grpc.MasterStub(channel)
    stop = asyncio.Event()
    try:
        ctx = await _context(stub, config, address, metrics)
        servicer.chunk_size = ctx.job.spec.shuffle.chunk_size
        log.info("%s registered as %s", config.name, ctx.worker_id)
        beats = asyncio.create_task(_heartbeats(ctx, stop))
        while not stop.is_set():
            if ctx.lost.is_set():
                beats.cancel()
                ctx = await _reconnect(ctx, stub, config, address)
                beats = asyncio.create_task(_heartbeats(ctx, stop))
                continue
            try:
                task = await stub.RequestTask(pb.TaskRequest(worker_id=ctx.worker_id))
            except grpc.aio.AioRpcError as exc:
                log.warning("lost the master at %s: %s", config.master, exc.code().name)
                ctx.lost.set()
                continue
            if task.kind == Assignment.EXIT:
                break
            if task.kind == Assignment.REREGISTER:  # declared dead, or a new master
                ctx.lost.set()
                continue
            if task.kind in (Assignment.MAP, Assignment.REDUCE):
                await _run_task(ctx, task)
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await beats
        for other in ctx.channels.values():
            await other.close()
        log.info("exiting at %.6f: the master says the job is over", time.time())
        return 0
    finally:
        stop.set()
        await channel.close()
        if server is not None:
            await server.stop(grace=1.0)
        probe.cancel()
        await monitoring.finish(monitor, metrics, config.metrics_snapshot)
