"""The reducer's fetch loop: asks the master for map outputs, fetches them, reports failures.

A thin async driver over :class:`kubemr.fetches.Fetches` (what is fetched, in flight,
stale or failed): it long-polls ``AwaitMapOutputs``, starts at most
``spec.shuffle.parallelFetches`` fetches at a time (:func:`kubemr.shuffle.fetch_run`),
keeps a fetched run in memory while the fetch buffer has room and spills it to local disk
otherwise, and reports every failed fetch to the master (``ReportFetchFailure``), which
reruns the map once its output is declared lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Protocol

import grpc

from kubemr import metrics as metrics_
from kubemr import runs, shuffle
from kubemr import spec as specs
from kubemr.fetches import Fetches
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc

log = logging.getLogger("kubemr.worker")


class Reducer(Protocol):
    """What the fetch loop uses of a registered worker (``kubemr.worker.Context``)."""

    stub: pb_grpc.MasterStub
    worker_id: str
    job: specs.MapReduceJob
    heartbeat_interval: float
    metrics: metrics_.RuntimeMetrics
    progress: dict[str, float]

    def channel(self, address: str) -> grpc.aio.Channel: ...


def spill_path(scratch: Path, ref: pb.MapOutput) -> Path:
    """Where a fetched run that does not fit the fetch buffer goes."""
    return scratch / f"fetched-m{ref.map_task:06d}-{ref.attempt_id}.run"


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"corrupt data: {exc}"


async def fetch_all(
    ctx: Reducer, task: pb.TaskAssignment, scratch: Path, buffer: shuffle.FetchBuffer
) -> tuple[list[shuffle.FetchedRun], dict[str, float]]:
    """Fetch this reduce task's partition of every map output, as they are reported;
    return the runs in map task order and the seconds spent fetching and waiting."""
    spec = ctx.job.spec
    metrics = ctx.metrics
    metrics.set("kubemr_fetch_sources_capacity", spec.shuffle.parallel_fetches)
    book: Fetches[pb.MapOutput, shuffle.FetchedRun] = Fetches()
    handles: dict[int, tuple[Path | None, asyncio.Task[shuffle.FetchedRun]]] = {}
    gate = asyncio.Semaphore(spec.shuffle.parallel_fetches)
    loop = asyncio.get_running_loop()
    started = loop.time()
    waited = 0.0

    async def fetch(ref: pb.MapOutput, spill_to: Path | None) -> shuffle.FetchedRun:
        if delay := book.retry_delay(ref.map_task):
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
                have=book.have(),
                fetching=book.fetching(),
            )
        )

    def start(ref: pb.MapOutput) -> None:
        spill_to = None if buffer.reserve(ref.bytes) else spill_path(scratch, ref)
        handles[ref.map_task] = (spill_to, asyncio.create_task(fetch(ref, spill_to)))

    def drop(ref: pb.MapOutput) -> None:
        spill_to, pending = handles.pop(ref.map_task)
        pending.cancel()
        if spill_to is None:
            buffer.unreserve(ref.bytes)
        else:
            spill_to.unlink(missing_ok=True)

    async def harvest() -> None:
        for index, (_, pending) in list(handles.items()):
            if not pending.done():
                continue
            exc = pending.exception()
            if exc is None:
                handles.pop(index)
                if (share := book.fetched(index, pending.result())) is not None:
                    ctx.progress[task.attempt_id] = share
            elif isinstance(exc, grpc.aio.AioRpcError | runs.FrameError):
                # Unreachable, or it sent bytes that are not frames (a corrupt disk, a
                # hostile peer): the stream is dropped and the map output reported, so
                # the master re-runs that map; this reduce attempt carries on.
                ref = book.failed(index)
                drop(ref)
                reason = _failure_text(exc)
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
            if book.complete:
                break
            if poller is None:
                idle = ctx.heartbeat_interval if book.idle_poll else 0.0
                poller = asyncio.create_task(poll(idle))
            poll_started = loop.time()
            await asyncio.wait(
                [poller, *(pending for _, pending in handles.values())],
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
            stale, new = book.answered(reply.total, reply.lost, reply.outputs, reply.complete)
            for ref in stale:
                log.info(
                    "%s: map %d output is stale, dropping its fetch", task.attempt_id, ref.map_task
                )
                drop(ref)
            for ref in new:
                start(ref)
    finally:
        if poller is not None:
            poller.cancel()
        for _, pending in handles.values():
            pending.cancel()
    timings = {"shuffle_fetch": loop.time() - started, "shuffle_wait": waited}
    return book.runs(), timings
