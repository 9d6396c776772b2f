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
    return await _FetchLoop(ctx, task, scratch, buffer).run()


class _FetchLoop:
    """One reduce attempt's fetches in flight: the calls, the slots, the spill files."""

    def __init__(
        self, ctx: Reducer, task: pb.TaskAssignment, scratch: Path, buffer: shuffle.FetchBuffer
    ) -> None:
        self.ctx = ctx
        self.task = task
        self.scratch = scratch
        self.buffer = buffer
        self.metrics = ctx.metrics
        self.book: Fetches[pb.MapOutput, shuffle.FetchedRun] = Fetches()
        self.handles: dict[int, asyncio.Task[shuffle.FetchedRun]] = {}
        self.gate = asyncio.Semaphore(ctx.job.spec.shuffle.parallel_fetches)

    async def run(self) -> tuple[list[shuffle.FetchedRun], dict[str, float]]:
        self.metrics.set(
            "kubemr_fetch_sources_capacity", self.ctx.job.spec.shuffle.parallel_fetches
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        waited = 0.0
        poller: asyncio.Task[pb.MapOutputsReply] | None = None
        try:
            while True:
                await self.harvest()
                if self.book.complete:
                    break
                if poller is None:
                    idle = self.ctx.heartbeat_interval if self.book.idle_poll else 0.0
                    poller = asyncio.create_task(self.poll(idle))
                poll_started = loop.time()
                await asyncio.wait(
                    [poller, *self.handles.values()],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not poller.done():
                    continue
                waited += loop.time() - poll_started
                self.metrics.observe("kubemr_map_output_wait_seconds", loop.time() - poll_started)
                reply = poller.result()
                poller = None
                if reply.cancelled:
                    raise asyncio.CancelledError("reduce attempt no longer wanted")
                self.answered(reply)
        finally:
            if poller is not None:
                poller.cancel()
            for pending in self.handles.values():
                pending.cancel()
        timings = {"shuffle_fetch": loop.time() - started, "shuffle_wait": waited}
        return self.book.runs(), timings

    async def poll(self, delay: float) -> pb.MapOutputsReply:
        """Ask the master for map outputs not fetched yet (a long poll)."""
        if delay:
            await asyncio.sleep(delay)
        return await self.ctx.stub.AwaitMapOutputs(
            pb.MapOutputsRequest(
                worker_id=self.ctx.worker_id,
                attempt_id=self.task.attempt_id,
                have=self.book.have(),
                fetching=self.book.fetching(),
            )
        )

    def answered(self, reply: pb.MapOutputsReply) -> None:
        stale, new = self.book.answered(reply.total, reply.lost, reply.outputs, reply.complete)
        for ref in stale:
            log.info(
                "%s: map %d output is stale, dropping its fetch", self.task.attempt_id, ref.map_task
            )
            self.drop(ref)
        for ref in new:
            self.handles[ref.map_task] = asyncio.create_task(self.fetch(ref))

    async def fetch(self, ref: pb.MapOutput) -> shuffle.FetchedRun:
        """One map output's run, once a fetch slot is free (after a delay if it failed):
        in memory if the size its mapper announces fits the fetch buffer, else on disk."""
        if delay := self.book.retry_delay(ref.map_task):
            await asyncio.sleep(delay)
        metrics = self.metrics
        queued = time.perf_counter()
        metrics.add("kubemr_fetch_sources_waiting", 1)
        try:
            await self.gate.acquire()
        finally:
            metrics.add("kubemr_fetch_sources_waiting", -1)
        metrics.observe("kubemr_fetch_slot_wait_seconds", time.perf_counter() - queued)
        metrics.add("kubemr_fetch_sources_active", 1)
        try:
            channel = self.ctx.channel(ref.address)
            job = self.ctx.job.metadata.name
            spill_to = spill_path(self.scratch, ref)
            return await shuffle.fetch_run(
                channel, job, ref, self.task.index, spill_to, self.buffer
            )
        finally:
            metrics.add("kubemr_fetch_sources_active", -1)
            self.gate.release()

    def drop(self, ref: pb.MapOutput) -> None:
        """Stop fetching ``ref`` (the fetch gives back its buffer space or file)."""
        self.handles.pop(ref.map_task).cancel()

    async def harvest(self) -> None:
        """Take in the fetches that ended: keep the runs, report the failures."""
        for index, pending in list(self.handles.items()):
            if not pending.done():
                continue
            exc = pending.exception()
            if exc is None:
                self.handles.pop(index)
                if (share := self.book.fetched(index, pending.result())) is not None:
                    self.ctx.progress[self.task.attempt_id] = share
            elif isinstance(exc, grpc.aio.AioRpcError | runs.FrameError):
                # Unreachable, or it sent bytes that are not frames (a corrupt disk, a
                # hostile peer): the stream is dropped and the map output reported, so
                # the master re-runs that map; this reduce attempt carries on.
                ref = self.book.failed(index)
                self.drop(ref)
                await self.report(ref, _failure_text(exc))
            else:
                raise exc

    async def report(self, ref: pb.MapOutput, reason: str) -> None:
        log.warning(
            "%s: fetch of %s from %s failed: %s",
            self.task.attempt_id,
            ref.attempt_id,
            ref.address,
            reason,
        )
        await self.ctx.stub.ReportFetchFailure(
            pb.FetchFailure(
                worker_id=self.ctx.worker_id,
                attempt_id=self.task.attempt_id,
                map_task=ref.map_task,
                map_attempt_id=ref.attempt_id,
                error=reason,
            )
        )
