"""The shuffle: mappers serve their sorted runs, reducers fetch them over gRPC.

The server side streams a run file in bounded chunks of whole frames; it never parses
records, and gRPC's flow control means a slow reader slows the stream instead of
growing memory. The client side keeps a fetched run in memory while it fits the
reducer's fetch buffer and writes it to local disk otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from kubemr import runs
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc


def map_output_dir(root: Path, attempt_id: str) -> Path:
    """Where a map attempt's runs live on the mapper's disk."""
    return root / "map-output" / attempt_id


class ShuffleServicer(pb_grpc.ShuffleServicer):
    """Streams map output partitions from this worker's disk."""

    def __init__(self, root: Path, chunk_size: int) -> None:
        self.root = root
        self.chunk_size = chunk_size

    async def FetchPartition(
        self, request: pb.FetchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Chunk]:
        path = map_output_dir(self.root, request.attempt_id) / f"part-{request.partition:05d}.run"
        if not path.is_file():
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no output for {request.attempt_id} partition {request.partition}",
            )
        for chunk in runs.chunk_file(path, request.offset, self.chunk_size):
            yield pb.Chunk(frames=chunk)


@dataclass
class FetchedRun:
    """One map output partition, as the reducer holds it."""

    map_task: int
    frames: list[bytes] = field(default_factory=list)
    path: Path | None = None
    bytes: int = 0
    records: int = 0


async def fetch_run(
    channel: grpc.aio.Channel, job: str, ref: pb.MapOutput, partition: int, spill_to: Path | None
) -> FetchedRun:
    """Fetch one partition of one map output, into memory or (``spill_to``) a file."""
    stub = pb_grpc.ShuffleStub(channel)
    request = pb.FetchRequest(
        job=job, map_task=ref.map_task, attempt_id=ref.attempt_id, partition=partition
    )
    run = FetchedRun(ref.map_task, path=spill_to, records=ref.records)
    sink = spill_to.open("wb") if spill_to is not None else None
    try:
        async for chunk in stub.FetchPartition(request):
            data = chunk.frames
            run.bytes += len(data)
            if sink is not None:
                sink.write(data)
            else:
                frames, used = runs.split_frames(data)
                if used != len(data):
                    raise runs.FrameError(f"chunk from map {ref.map_task} ends mid-frame")
                run.frames.extend(frames)
    finally:
        if sink is not None:
            sink.close()
    return run
