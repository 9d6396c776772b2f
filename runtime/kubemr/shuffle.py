"""The shuffle: mappers serve their sorted runs, reducers fetch them over gRPC.

The server side streams a run file in bounded chunks of whole frames; it never parses
records, and gRPC's flow control means a slow reader slows the stream instead of
growing memory. The client side keeps a fetched run in memory while it fits the
reducer's fetch buffer (:class:`FetchBuffer`) and writes it to local disk otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import grpc

from kubemr import runs
from kubemr.metrics import RuntimeMetrics
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc


def map_outputs(root: Path) -> Path:
    """Where the map attempts' runs live on the mapper's disk, one directory each."""
    return root / "map-output"


def map_output_dir(root: Path, attempt_id: str) -> Path:
    """Where a map attempt's runs live on the mapper's disk."""
    return map_outputs(root) / attempt_id


class ShuffleServicer(pb_grpc.ShuffleServicer):
    """Streams map output partitions from this worker's disk."""

    def __init__(self, root: Path, chunk_size: int, metrics: RuntimeMetrics | None = None) -> None:
        self.root = root
        self.chunk_size = chunk_size
        self.metrics = metrics

    async def FetchPartition(
        self, request: pb.FetchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Chunk]:
        directory = map_output_dir(self.root, request.attempt_id)
        size = runs.read_index(directory, request.partition)
        path = directory / runs.run_name(request.partition)
        if size is None or not path.is_file():
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no output for {request.attempt_id} partition {request.partition}",
            )
            return
        header: pb.RunSize | None = pb.RunSize(records=size[0], bytes=size[1])
        for chunk in runs.chunk_file(path, request.offset, self.chunk_size):
            if self.metrics is not None:
                self.metrics.stage("shuffle_serve", bytes_out=len(chunk))
            yield pb.Chunk(frames=chunk, size=header)
            header = None
        if header is not None:  # an empty run: its size alone
            yield pb.Chunk(size=header)


@dataclass
class FetchedRun:
    """One map output partition, as the reducer holds it."""

    map_task: int
    frames: list[bytes] = field(default_factory=list)
    path: Path | None = None
    bytes: int = 0
    records: int = 0


class FetchBuffer:
    """The reducer's in-memory fetch buffer, shared by its fetch streams and its reduce.

    A map output whose size fits what is left of ``capacity`` is fetched into memory, any
    other streams to local disk. Fetch streams append chunks under the buffer's lock and
    the reduce takes the runs under it. Frames are cut out of a chunk (parsed) in a
    thread, outside the lock, so the lock is only held to append; with ``coarse`` (test
    builds, ``KUBEMR_COARSE_LOCK=1``) it is held while parsing and for the whole reduce,
    the mistake that serialises a reducer. Waits and holds are measured.
    """

    def __init__(self, capacity: int, metrics: RuntimeMetrics, coarse: bool = False) -> None:
        self.capacity = capacity
        self.metrics = metrics
        self.coarse = coarse
        self.reserved = 0
        """Bytes promised to in-memory fetches (their announced sizes)."""
        self.held = 0
        """Bytes received into memory."""
        self.records = 0
        self.lock = asyncio.Lock()
        metrics.set("kubemr_fetch_buffer_capacity_bytes", capacity)
        self._publish()

    def _publish(self) -> None:
        self.metrics.set("kubemr_fetch_buffer_bytes", self.held)
        self.metrics.set("kubemr_fetch_buffer_records", self.records)

    def reserve(self, size: int) -> bool:
        """Whether a map output of ``size`` bytes is fetched into memory (it is reserved)."""
        if self.reserved + size > self.capacity:
            self.metrics.inc("kubemr_fetched_runs_spilled_total")
            return False
        self.reserved += size
        return True

    def unreserve(self, size: int) -> None:
        """An in-memory fetch was dropped before it started holding data."""
        self.reserved -= size

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the buffer's lock, measuring the wait and the hold."""
        started = time.perf_counter()
        async with self.lock:
            acquired = time.perf_counter()
            self.metrics.observe("kubemr_fetch_buffer_lock_wait_seconds", acquired - started)
            try:
                yield
            finally:
                self.metrics.observe(
                    "kubemr_fetch_buffer_lock_hold_seconds", time.perf_counter() - acquired
                )

    async def add(self, run: FetchedRun, data: bytes) -> None:
        """Parse a chunk of whole frames into ``run`` (held in memory)."""
        if self.coarse:
            async with self.locked():
                frames = await asyncio.to_thread(_whole_frames, data, run.map_task)
                run.frames.extend(frames)
                self.held += len(data)
        else:
            frames = await asyncio.to_thread(_whole_frames, data, run.map_task)
            async with self.locked():
                run.frames.extend(frames)
                self.held += len(data)
        self._publish()

    def completed(self, run: FetchedRun, records: int) -> None:
        """An in-memory run is complete: count its records."""
        del run
        self.records += records
        self._publish()

    def discard(self, run: FetchedRun) -> None:
        """A partial in-memory run is dropped (its fetch failed or went stale); its
        reservation is returned with :meth:`unreserve`."""
        self.held -= run.bytes
        run.frames.clear()
        self._publish()

    @contextlib.asynccontextmanager
    async def reducing(self) -> AsyncIterator[None]:
        """Take the runs for the reduce; the lock is held throughout only when coarse."""
        if self.coarse:
            async with self.locked():
                yield
        else:
            async with self.locked():
                pass
            yield
        self.held = self.records = self.reserved = 0
        self._publish()


def _whole_frames(data: bytes, map_task: int) -> list[bytes]:
    frames, used = runs.split_frames(data)
    if used != len(data):
        raise runs.FrameError(f"chunk from map {map_task} ends mid-frame")
    return frames


async def fetch_run(
    channel: grpc.aio.Channel,
    job: str,
    ref: pb.MapOutput,
    partition: int,
    spill_to: Path,
    buffer: FetchBuffer,
) -> FetchedRun:
    """Fetch one partition of one map output: into ``buffer`` if the size the mapper
    announces first fits what is left of it, else into the file ``spill_to``. A fetch
    that fails or is cancelled gives back what it took (reservation, memory, file)."""
    stub = pb_grpc.ShuffleStub(channel)
    request = pb.FetchRequest(
        job=job, map_task=ref.map_task, attempt_id=ref.attempt_id, partition=partition
    )
    metrics = buffer.metrics
    run = FetchedRun(ref.map_task)
    sink: BinaryIO | None = None
    announced: int | None = None
    started = time.perf_counter()
    complete = False
    try:
        async for chunk in stub.FetchPartition(request):
            if announced is None:
                if not chunk.HasField("size"):
                    raise runs.FrameError(f"map {ref.map_task} sent no run size first")
                run.records, announced = chunk.size.records, chunk.size.bytes
                if not buffer.reserve(announced):
                    run.path, sink = spill_to, spill_to.open("wb")
            data = chunk.frames
            metrics.add("kubemr_fetch_inflight_bytes", len(data))
            if sink is not None:
                sink.write(data)
            else:
                await buffer.add(run, data)
            run.bytes += len(data)
            metrics.stage("shuffle_fetch", bytes_in=len(data))
        if announced is None:
            raise runs.FrameError(f"map {ref.map_task} sent an empty stream")
        if announced != run.bytes:
            raise runs.FrameError(
                f"map {ref.map_task} sent {run.bytes} bytes of a run of {announced}"
            )
        complete = True
    finally:
        if sink is not None:
            sink.close()
        metrics.add("kubemr_fetch_inflight_bytes", -run.bytes)
        if not complete and announced is not None:
            _give_back(run, announced, buffer)
    if run.path is None:
        buffer.completed(run, run.records)
    metrics.stage("shuffle_fetch", records_in=run.records)
    metrics.observe("kubemr_phase_duration_seconds", time.perf_counter() - started, "shuffle_fetch")
    return run


def _give_back(run: FetchedRun, reserved: int, buffer: FetchBuffer) -> None:
    """A fetch that did not complete: drop what it holds and what it took."""
    if run.path is not None:
        run.path.unlink(missing_ok=True)
    else:
        buffer.discard(run)
        buffer.unreserve(reserved)
