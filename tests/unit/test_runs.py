"""Frames: encoding, strict decoding, chunking on frame boundaries."""

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
