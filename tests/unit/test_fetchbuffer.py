"""The reducer's fetch buffer: what it holds, what it reserves, and how long its lock is held
(only to append by default; while parsing and reducing with the coarse test switch)."""

from __future__ import annotations

import asyncio

import pytest
from kubemr import metrics, runs, shuffle


def frames(*payloads: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "little") + p for p in payloads)


def buffer(coarse: bool = False) -> shuffle.FetchBuffer:
    return shuffle.FetchBuffer(100, metrics.RuntimeMetrics("reducer", "wc"), coarse=coarse)


def test_outputs_that_fit_are_reserved_in_memory_and_the_rest_spill() -> None:
    fetch = buffer()
    assert fetch.reserve(60)
    assert not fetch.reserve(50)  # 110 > 100: to disk
    fetch.unreserve(60)
    assert fetch.reserve(50)
    snap = metrics.snapshot(fetch.metrics.exposition().decode())
    assert snap["kubemr_fetched_runs_spilled_total"][0]["value"] == 1.0
    assert snap["kubemr_fetch_buffer_capacity_bytes"][0]["value"] == 100.0


def test_chunks_are_parsed_into_the_run_and_counted_until_dropped() -> None:
    fetch = buffer()
    run = shuffle.FetchedRun(3)

    async def scenario() -> None:
        await fetch.add(run, frames(b"ab", b"c"))
        run.bytes += 11
        assert run.frames == [b"ab", b"c"]
        assert fetch.held == 11
        fetch.discard(run)
        assert fetch.held == 0 and run.frames == []

    asyncio.run(scenario())
    with pytest.raises(runs.FrameError, match="map 3 ends mid-frame"):
        asyncio.run(fetch.add(run, frames(b"ab")[:-1]))


@pytest.mark.parametrize("coarse", [False, True])
def test_the_lock_is_held_while_parsing_and_reducing_only_when_coarse(
    coarse: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch = buffer(coarse)
    held_while_parsing: list[bool] = []
    parse = shuffle._whole_frames

    def spy(data: bytes, map_task: int) -> list[bytes]:
        held_while_parsing.append(fetch.lock.locked())
        return parse(data, map_task)

    monkeypatch.setattr(shuffle, "_whole_frames", spy)

    async def scenario() -> bool:
        await fetch.add(shuffle.FetchedRun(0), frames(b"x"))
        async with fetch.reducing():
            return fetch.lock.locked()

    held_while_reducing = asyncio.run(scenario())
    assert held_while_parsing == [coarse]
    assert held_while_reducing is coarse
    snap = metrics.snapshot(fetch.metrics.exposition().decode())
    assert snap["kubemr_fetch_buffer_lock_wait_seconds"][0]["count"] == 2.0
    assert snap["kubemr_fetch_buffer_bytes"][0]["value"] == 0.0  # handed to the reduce
