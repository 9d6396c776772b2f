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

A worker told to stop (SIGTERM: its pod is being deleted; the entry point sets
``terminate``) takes no further task, cancels the attempt it is running (its thread stops
at the next block of input or the next key), removes the attempt's unfinished files,
tells the master it leaves (within :data:`LEAVE_TIMEOUT`, so the attempt and the worker's
map outputs run again at once, as lost rather than failed) and returns
:data:`kubemr.contract.EXIT_TERMINATED`.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import grpc

from kubemr import address as addresses
from kubemr import apps, auth, contract, fetcher, monitoring, rpcmetrics, shuffle, stores
from kubemr import metrics as metrics_
from kubemr import spec as specs
from kubemr.apps import APP_COUNTER_PREFIX
from kubemr.badrecords import TooManyBadRecordsError
from kubemr.config import GRPC_OPTIONS, WorkerConfig
from kubemr.fetches import FETCH_SHARE
from kubemr.maptask import MapCancelledError, run_map
from kubemr.partitioning import make_partitioner
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc
from kubemr.reducetask import ReduceCancelledError, run_reduce
from kubemr.splits import Split

log = logging.getLogger("kubemr.worker")
Assignment = pb.TaskAssignment
P = ParamSpec("P")
T = TypeVar("T")

ABANDON_DEADLINE = 3.0
"""Seconds an abandoned attempt's thread is given to notice its cancellation (checked
before each block of input and each key) before the worker removes its files anyway."""
LEAVE_TIMEOUT = 1.0
"""Seconds a stopping worker gives the master to hear that it leaves."""

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
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the worker is told to stop (SIGTERM): the running attempt is abandoned."""
    threads: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    """The thread running each attempt's body, so an abandoned attempt can wait for it."""

    def channel(self, address: str) -> grpc.aio.Channel:
        if address not in self.channels:
            self.channels[address] = grpc.aio.insecure_channel(
                address,
                options=GRPC_OPTIONS,
                interceptors=[
                    *auth.client_interceptors(self.config.token),
                    *rpcmetrics.client_interceptors(self.metrics),
                ],
            )
        return self.channels[address]


async def _unless(stopping: asyncio.Event, awaitable: Awaitable[T]) -> T | None:
    """The result of ``awaitable``, or None (it is cancelled) once ``stopping`` is set."""
    work = asyncio.ensure_future(awaitable)
    stop = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait([work, stop], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if work.done():
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return None


async def _off_loop(
    ctx: Context, attempt_id: str, body: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run an attempt's body in a thread, off the loop; the thread is kept in
    ``ctx.threads`` (cancelling the caller does not stop a thread)."""
    thread = asyncio.ensure_future(asyncio.to_thread(body, *args, **kwargs))
    ctx.threads[attempt_id] = thread
    return await asyncio.shield(thread)


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
    combiner = getattr(ctx.app, "combine", None) if spec.combine else None  # decided by the plan
    root = ctx.config.work_dir
    result = await _off_loop(
        ctx,
        task.attempt_id,
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
        partition_records=[records for records, _ in result.partitions],
        partition_bytes=[size for _, size in result.partitions],
        counters=with_app_counters(result.counters, result.app_counters),
        timings=result.timings,
        skipped=result.skipped,
    )


def with_app_counters(counters: dict[str, int], app: dict[str, int]) -> dict[str, int]:
    """A report's counters: the engine's, and the app's named ``app:<name>``."""
    return {**counters, **{APP_COUNTER_PREFIX + k: v for k, v in app.items()}}


async def _run_reduce(ctx: Context, task: Assignment) -> pb.TaskReport:
    scratch = ctx.config.work_dir / "reduce" / task.attempt_id
    scratch.mkdir(parents=True, exist_ok=True)
    spec = ctx.job.spec
    buffer = shuffle.FetchBuffer(
        spec.shuffle.buffer_size, ctx.metrics, coarse=ctx.config.coarse_fetch_lock
    )
    try:
        fetched, timings = await fetcher.fetch_all(ctx, task, scratch, buffer)
        sources: list[list[bytes] | Path] = [
            r.path if r.path is not None else r.frames for r in fetched
        ]
        records = max(sum(r.records for r in fetched), 1)

        def reduced(done: int) -> None:
            ctx.progress[task.attempt_id] = FETCH_SHARE + (1 - FETCH_SHARE) * done / records

        ctx.progress[task.attempt_id] = FETCH_SHARE
        async with buffer.reducing():
            result = await _off_loop(
                ctx,
                task.attempt_id,
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
                cancel=ctx.cancel.get(task.attempt_id),
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


async def _abandon(ctx: Context, task: Assignment, work: asyncio.Task[pb.TaskReport]) -> None:
    """Stop an attempt and remove its unfinished files: its temporary part file in the
    output's ``_temporary`` area, and its map output and spills on the local disk."""
    ctx.cancel[task.attempt_id].set()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await work
    thread = ctx.threads.get(task.attempt_id)
    if thread is not None:
        try:
            await asyncio.wait_for(asyncio.shield(thread), ABANDON_DEADLINE)
        except TimeoutError:
            log.warning(
                "attempt %s: its thread (the app's code) did not stop within %.0fs",
                task.attempt_id,
                ABANDON_DEADLINE,
            )
        except (asyncio.CancelledError, Exception):
            pass  # it ended: cancelled as asked, or failed; either way it stopped
    if task.temp_path:
        store = stores.store_for(task.temp_path, ctx.job.spec.storage)
        await asyncio.to_thread(store.remove_tree, task.temp_path.rsplit("/", 1)[0])
    root = ctx.config.work_dir
    for local in (shuffle.map_output_dir(root, task.attempt_id), root / "spill" / task.attempt_id):
        shutil.rmtree(local, ignore_errors=True)


async def _run_task(ctx: Context, task: Assignment) -> None:
    """Run one attempt and report it; abandon it if the registration is lost meanwhile
    (the master that assigned it is gone, or forgot this worker) or the worker stops."""
    ctx.running.add(task.attempt_id)
    ctx.cancel[task.attempt_id] = threading.Event()
    started, outcome = time.perf_counter(), "abandoned"
    body = _run_map(ctx, task) if task.kind == Assignment.MAP else _run_reduce(ctx, task)
    work = asyncio.create_task(body)
    lost = asyncio.create_task(ctx.lost.wait())
    stopping = asyncio.create_task(ctx.stopping.wait())
    try:
        await asyncio.wait([work, lost, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            why = "the worker is stopping" if ctx.stopping.is_set() else "lost the master"
            log.warning("abandoning attempt %s: %s", task.attempt_id, why)
            await _abandon(ctx, task, work)
            return
        report = work.result()
        outcome = "succeeded"
    except (asyncio.CancelledError, MapCancelledError, ReduceCancelledError):
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
        stopping.cancel()
        ctx.threads.pop(task.attempt_id, None)
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


async def _leave(ctx: Context, reason: str) -> None:
    """Tell the master this worker leaves (bounded by :data:`LEAVE_TIMEOUT`; a master
    that does not hear it declares the worker dead at its heartbeat timeout)."""
    try:
        await ctx.stub.Leave(
            pb.LeaveRequest(worker_id=ctx.worker_id, reason=reason), timeout=LEAVE_TIMEOUT
        )
    except grpc.aio.AioRpcError as exc:
        log.warning("could not tell the master that %s leaves: %s", ctx.worker_id, exc.code().name)


async def run_worker(config: WorkerConfig, terminate: asyncio.Event | None = None) -> int:
    """Serve until the master says the job is over (0), or until ``terminate`` is set
    (:data:`~kubemr.contract.EXIT_TERMINATED`); return the exit code."""
    terminate = terminate or asyncio.Event()
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
                rpcmetrics.server_interceptor(metrics),
            ],
        )
        pb_grpc.add_ShuffleServicer_to_server(servicer, server)
        port = server.add_insecure_port(addresses.join(config.bind, config.shuffle_port))
        await server.start()
        address = addresses.join(config.advertise_host, port)
    channel = grpc.aio.insecure_channel(
        config.master,
        options=MASTER_CHANNEL_OPTIONS,
        interceptors=[
            *auth.client_interceptors(config.token),
            *rpcmetrics.client_interceptors(metrics),
        ],
    )
    stub = pb_grpc.MasterStub(channel)
    stop = asyncio.Event()
    beats: asyncio.Task[None] | None = None
    try:
        # The first line of a worker's log names it: a pod that never reaches the master
        # (it started after the job ended, or the master is gone) still says who it is.
        log.info(
            "%s (%s) serving shuffle at %s; registering with the master at %s",
            config.name,
            config.role,
            address,
            config.master,
        )
        ctx = await _unless(terminate, _context(stub, config, address, metrics))
        if ctx is None:
            log.warning("%s stopping (SIGTERM) before it registered", config.name)
            return contract.EXIT_TERMINATED
        ctx.stopping = terminate
        servicer.chunk_size = ctx.job.spec.shuffle.chunk_size
        log.info("%s registered as %s", config.name, ctx.worker_id)
        beats = asyncio.create_task(_heartbeats(ctx, stop))
        while not stop.is_set() and not terminate.is_set():
            if ctx.lost.is_set():
                beats.cancel()
                fresh = await _unless(terminate, _reconnect(ctx, stub, config, address))
                if fresh is None:
                    break
                ctx, ctx.stopping = fresh, terminate
                beats = asyncio.create_task(_heartbeats(ctx, stop))
                continue
            try:
                task = await _unless(
                    terminate, stub.RequestTask(pb.TaskRequest(worker_id=ctx.worker_id))
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("lost the master at %s: %s", config.master, exc.code().name)
                ctx.lost.set()
                continue
            if task is None or task.kind == Assignment.EXIT:
                break
            if task.kind == Assignment.REREGISTER:  # declared dead, or a new master
                ctx.lost.set()
                continue
            if task.kind in (Assignment.MAP, Assignment.REDUCE):
                await _run_task(ctx, task)
        if terminate.is_set():
            beats.cancel()
            log.warning("%s stopping (SIGTERM): it takes no further task", ctx.worker_id)
            if not ctx.lost.is_set():
                await _leave(ctx, "SIGTERM")
            return contract.EXIT_TERMINATED
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await beats
        for other in ctx.channels.values():
            await other.close()
        log.info("exiting at %.6f: the master says the job is over", time.time())
        return 0
    finally:
        stop.set()
        if beats is not None:
            beats.cancel()
        await channel.close()
        if server is not None:
            await server.stop(grace=0 if terminate.is_set() else 1.0)
        probe.cancel()
        await monitoring.finish(monitor, metrics, config.metrics_snapshot)
