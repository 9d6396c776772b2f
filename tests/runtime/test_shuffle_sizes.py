"""A reducer learns a map output partition's size from the mapper, not the master: a real
shuffle server (on loopback) announces the size from the output's index first; the fetch
keeps the run in memory if it fits the fetch buffer, spills it to disk otherwise, and a
fetch that fails gives back its reservation, memory and file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from kubemr import metrics, runs, shuffle
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc

ATTEMPT = "m0.a1"
RECORDS = [[(f"k{i:05d}".encode(), b"v" * 40) for i in range(n)] for n in (5000, 3, 0)]
"""Partition 0 large (about 250 kB: five chunks, as its frames fall), 1 small, 2 empty."""
DEADLINE = 30.0
"""Seconds a fetch may take to get going."""


def map_output(root: Path) -> list[tuple[int, int]]:
    """A map output as a mapper leaves it: a run per partition and their index."""
    directory = shuffle.map_output_dir(root, ATTEMPT)
    directory.mkdir(parents=True)
    sizes = []
    for partition, records in enumerate(RECORDS):
        with runs.RunWriter(directory / runs.run_name(partition)) as writer:
            writer.write(records)
        sizes.append((writer.records, writer.bytes))
    runs.write_index(directory, sizes)
    return sizes


Scenario = Callable[[grpc.aio.Channel], Awaitable[None]]


class StallingServicer(shuffle.ShuffleServicer):
    """A mapper that stops sending midway through a run, as one on a hung node does: the
    stream stays open and no more chunks come."""

    def __init__(self, root: Path, chunk_size: int, stall_after: int) -> None:
        super().__init__(root, chunk_size)
        self.stall_after = stall_after

    async def FetchPartition(  # noqa: N802 (the gRPC method name)
        self, request: pb.FetchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Chunk]:
        sent = 0
        async for chunk in super().FetchPartition(request, context):
            if sent == self.stall_after:
                await asyncio.Event().wait()  # until the server stops
            yield chunk
            sent += 1


async def serving(
    root: Path, scenario: Scenario, servicer: shuffle.ShuffleServicer | None = None
) -> None:
    server = grpc.aio.server()
    servicer = servicer or shuffle.ShuffleServicer(root, 1024)
    pb_grpc.add_ShuffleServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await scenario(channel)
    finally:
        await server.stop(grace=None)


def fetch_buffer(capacity: int) -> shuffle.FetchBuffer:
    return shuffle.FetchBuffer(capacity, metrics.RuntimeMetrics("reducer", "wc"))


def fetch(
    channel: grpc.aio.Channel, partition: int, buffer: shuffle.FetchBuffer, spill: Path
) -> Awaitable[shuffle.FetchedRun]:
    ref = pb.MapOutput(map_task=0, attempt_id=ATTEMPT, address="")
    return shuffle.fetch_run(channel, "wc", ref, partition, spill, buffer)


def test_runs_that_fit_are_fetched_into_memory_and_the_rest_to_disk(tmp_path: Path) -> None:
    sizes = map_output(tmp_path / "mapper")
    buffer = fetch_buffer(sizes[0][1] - 1)  # partition 0 does not fit, 1 and 2 do
    got: dict[int, shuffle.FetchedRun] = {}

    async def scenario(channel: grpc.aio.Channel) -> None:
        for partition in range(3):
            got[partition] = await fetch(channel, partition, buffer, tmp_path / f"p{partition}")

    asyncio.run(serving(tmp_path / "mapper", scenario))
    for partition, run in got.items():
        assert (run.records, run.bytes) == sizes[partition]
        assert list(runs.source_records(run.path or run.frames)) == RECORDS[partition]
    assert got[0].path == tmp_path / "p0" and got[0].path.is_file()
    assert got[1].path is None and got[2].path is None
    assert not (tmp_path / "p1").exists()
    assert buffer.reserved == sizes[1][1] + sizes[2][1] and buffer.held == sizes[1][1]
    assert buffer.records == sizes[1][0]


def test_a_run_that_does_not_match_its_announced_size_fails_and_gives_back(
    tmp_path: Path,
) -> None:
    sizes = map_output(tmp_path / "mapper")
    directory = shuffle.map_output_dir(tmp_path / "mapper", ATTEMPT)
    runs.write_index(directory, [(r, b + 1) for r, b in sizes])  # a damaged index
    small, large = fetch_buffer(10**9), fetch_buffer(1)

    async def scenario(channel: grpc.aio.Channel) -> None:
        for buffer, spill in ((small, tmp_path / "mem"), (large, tmp_path / "disk")):
            with pytest.raises(runs.FrameError, match="bytes of a run of"):
                await fetch(channel, 0, buffer, spill)

    asyncio.run(serving(tmp_path / "mapper", scenario))
    assert (small.reserved, small.held) == (0, 0)
    assert not (tmp_path / "disk").exists()


def test_an_output_without_its_index_is_not_found(tmp_path: Path) -> None:
    map_output(tmp_path / "mapper")
    (shuffle.map_output_dir(tmp_path / "mapper", ATTEMPT) / runs.INDEX).unlink()
    buffer = fetch_buffer(10**9)

    async def scenario(channel: grpc.aio.Channel) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await fetch(channel, 1, buffer, tmp_path / "p1")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    asyncio.run(serving(tmp_path / "mapper", scenario))
    assert buffer.reserved == 0


@pytest.mark.parametrize("capacity", [10**9, 1], ids=["in-memory", "to-disk"])
def test_a_fetch_cancelled_midway_gives_back_its_memory_and_its_file(
    tmp_path: Path, capacity: int
) -> None:
    """The master says the output went stale while it streams: the fetch is cancelled
    (as the fetch loop drops it) once data arrived, and leaves nothing behind. The mapper
    stalls after two of its five chunks (66 kB, past the spill file's write buffer), so
    the fetch is still running when it is cancelled, however slow the machine."""
    map_output(tmp_path / "mapper")
    buffer = fetch_buffer(capacity)
    spill = tmp_path / "p0"

    async def scenario(channel: grpc.aio.Channel) -> None:
        fetching = asyncio.ensure_future(fetch(channel, 0, buffer, spill))
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while buffer.held == 0 and not (spill.exists() and spill.stat().st_size):
            assert not fetching.done(), "the fetch ended before it could be cancelled"
            assert asyncio.get_running_loop().time() < deadline, "no data arrived"
            await asyncio.sleep(0.001)
        fetching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fetching

    stalling = StallingServicer(tmp_path / "mapper", 1024, stall_after=2)
    asyncio.run(serving(tmp_path / "mapper", scenario, stalling))
    assert (buffer.reserved, buffer.held) == (0, 0)
    assert not spill.exists()
