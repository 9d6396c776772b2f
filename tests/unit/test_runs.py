"""Frames: encoding, strict decoding, chunking on frame boundaries."""

import heapq
import random
from operator import itemgetter
from pathlib import Path

import pytest
from kubemr import runs


def sample_records(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"k%06d" % i, b"v" * (i % 50)) for i in range(n)]


def test_run_file_round_trip_and_chunks(tmp_path: Path) -> None:
    records = sample_records(20_000)
    path = tmp_path / "r.run"
    with runs.RunWriter(path) as writer:
        writer.write(records)
    assert writer.records == len(records) and writer.bytes == path.stat().st_size
    assert list(runs.read_run(path)) == records
    chunks = list(runs.chunk_file(path, 0, 4096 * 4))
    assert len(chunks) >= 2
    assert all(len(c) <= max(4096 * 4, runs.BATCH_BYTES * 2) for c in chunks)
    frames = [f for c in chunks for f in runs.split_frames(c)[0]]
    assert list(runs.records_of_frames(frames)) == records


def test_truncated_and_garbage_frames_raise(tmp_path: Path) -> None:
    frame = next(runs.encode_frames(sample_records(10)))
    truncated = tmp_path / "t.run"
    truncated.write_bytes(frame[:-3])
    with pytest.raises(runs.FrameError, match="truncated"):
        list(runs.read_run(truncated))
    huge = (runs.MAX_FRAME + 1).to_bytes(4, "little")
    with pytest.raises(runs.FrameError, match="exceeds"):
        runs.split_frames(huge + b"x")
    with pytest.raises(runs.FrameError, match="corrupt"):
        runs.decode_batch(b"\xff\xff\xff\xff")
    frames, used = runs.split_frames(frame + frame[:5])
    assert len(frames) == 1 and used == len(frame)


@pytest.mark.parametrize("seed", range(12))
def test_merge_equals_a_stable_heap_merge(tmp_path: Path, seed: int) -> None:
    """The batch merge gives the records of a stable k-way merge: key order, and equal
    keys in run order then in their order within a run, whatever the batch edges."""
    rng = random.Random(seed)
    sources: list[runs.Source] = []
    every: list[list[tuple[bytes, bytes]]] = []
    for index in range(rng.randint(2, 7)):
        keys = sorted(
            b"k%d" % rng.randrange(rng.choice([3, 50, 5000])) for _ in range(rng.randint(0, 3000))
        )
        records = [(key, b"%d:%d" % (index, i)) for i, key in enumerate(keys)]
        every.append(records)
        frames = list(runs.encode_frames(records, batch_bytes=rng.choice([40, 300, 5000])))
        if rng.random() < 0.5:
            path = tmp_path / f"run{index}.run"
            path.write_bytes(b"".join(frames))
            sources.append(path)
        else:
            sources.append([f[4:] for f in frames])
    want = list(heapq.merge(*every, key=itemgetter(0)))
    assert list(runs.merge(sources)) == want


def test_frames_stay_bounded_when_record_sizes_jump() -> None:
    records = [(b"k", b"v")] * 5000 + [(b"K", b"x" * 100_000)] * 50 + [(b"z", b"")] * 10
    frames = list(runs.encode_frames(records))
    assert max(len(f) for f in frames) <= 2 * runs.BATCH_BYTES + 200_000
    assert list(runs.records_of_frames(f[4:] for f in frames)) == records
