"""Sorted runs: sequences of length-prefixed ``RecordBatch`` frames.

A run is what a spill, a map output partition and a fetched shuffle stream all are:
records sorted by encoded key, packed into batches. A frame is a 4-byte little-endian
length followed by a serialized :class:`RecordBatch`. The same bytes go to disk and on
the wire, so the shuffle server streams files without parsing them.

The frame decoder is strict: a truncated frame, a frame longer than ``MAX_FRAME`` or
bytes that do not parse raise :class:`FrameError`, and memory stays bounded by the
largest legal frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError

from kubemr.proto import mapreduce_pb2

Record = tuple[bytes, bytes]
"""An encoded (key, value) pair."""

_LENGTH = struct.Struct("<I")
BATCH_BYTES = 64 * 1024
"""Target payload of one frame, bytes. A single larger record makes a larger frame."""
READ_BUFFER = 64 * 1024
"""Read buffer of each open run, bytes: a merge keeps MERGE_FACTOR runs open at once."""
MAX_FRAME = 256 * 2**20
"""Largest frame accepted by a decoder, bytes (a record may be as large as one line)."""


class FrameError(ValueError):
    """Bytes that are not a well-formed sequence of frames."""


def encode_frames(records: Iterable[Record], batch_bytes: int = BATCH_BYTES) -> Iterator[bytes]:
    """Pack records into frames of about ``batch_bytes`` payload each."""
    keys: list[bytes] = []
    values: list[bytes] = []
    size = 0
    for key, value in records:
        keys.append(key)
        values.append(value)
        size += len(key) + len(value) + 6
        if size >= batch_bytes:
            yield _frame(keys, values)
            keys, values, size = [], [], 0
    if keys:
        yield _frame(keys, values)


def _frame(keys: list[bytes], values: list[bytes]) -> bytes:
    payload = mapreduce_pb2.RecordBatch(keys=keys, values=values).SerializeToString()
    return _LENGTH.pack(len(payload)) + payload


def decode_batch(payload: bytes) -> list[Record]:
    """Parse one frame's payload into records."""
    batch = mapreduce_pb2.RecordBatch()
    try:
        batch.ParseFromString(payload)
    except DecodeError as exc:
        raise FrameError(f"corrupt record batch: {exc}") from None
    if len(batch.keys) != len(batch.values):
        raise FrameError(
            f"corrupt record batch: {len(batch.keys)} keys, {len(batch.values)} values"
        )
    return list(zip(batch.keys, batch.values, strict=True))


def whole_frames(data: bytes | bytearray | memoryview) -> list[tuple[int, int]]:
    """The (start, end) payload spans of the whole frames at the front of ``data``."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while len(data) - pos >= 4:
        (length,) = _LENGTH.unpack_from(data, pos)
        if length > MAX_FRAME:
            raise FrameError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
        if len(data) - pos - 4 < length:
            break
        spans.append((pos + 4, pos + 4 + length))
        pos += 4 + length
    return spans


def split_frames(data: bytes | bytearray) -> tuple[list[bytes], int]:
    """Cut whole frames off the front of ``data``; return their payloads and the bytes
    consumed."""
    spans = whole_frames(data)
    return [bytes(data[a:b]) for a, b in spans], (spans[-1][1] if spans else 0)


def iter_frames(stream: BinaryIO) -> Iterator[bytes]:
    """Yield each frame payload of a binary stream, strictly."""
    while True:
        head = stream.read(4)
        if not head:
            return
        if len(head) < 4:
            raise FrameError("truncated frame header")
        (length,) = _LENGTH.unpack(head)
        if length > MAX_FRAME:
            raise FrameError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
        payload = stream.read(length)
        if len(payload) < length:
            raise FrameError(f"truncated frame: {len(payload)} of {length} bytes")
        yield payload


def read_run(path: Path) -> Iterator[Record]:
    """Yield the records of a run file, in order."""
    with path.open("rb", buffering=READ_BUFFER) as stream:
        for payload in iter_frames(stream):
            yield from decode_batch(payload)


def records_of_frames(frames: Iterable[bytes]) -> Iterator[Record]:
    """Yield the records of in-memory frame payloads, in order."""
    for payload in frames:
        yield from decode_batch(payload)


class RunWriter:
    """Write a sorted run to a file, counting records and bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = 0
        self.bytes = 0
        self._file = path.open("wb", buffering=1 << 20)

    def write(self, records: Iterable[Record]) -> None:
        for frame in encode_frames(self._counted(records)):
            self._file.write(frame)
            self.bytes += len(frame)

    def _counted(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.records += 1
            yield record

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chunk_file(path: Path, offset: int, chunk_size: int) -> Iterator[bytes]:
    """Read whole frames of a run file from ``offset`` in chunks of at most ``chunk_size``
    bytes (a single larger frame makes a larger chunk)."""
    with path.open("rb") as stream:
        stream.seek(offset)
        pending = b""
        while True:
            data = stream.read(chunk_size)
            if not data:
                if pending:
                    raise FrameError(f"{path}: truncated run ({len(pending)} trailing bytes)")
                return
            pending += data
            spans = whole_frames(pending)
            used = spans[-1][1] if spans else 0
            if used:
                yield pending[:used]
                pending = pending[used:]


Source = list[bytes] | Path
"""A sorted run: frame payloads in memory, or a run file on local disk."""


def source_records(source: Source) -> Iterator[Record]:
    """The records of a run, wherever it is."""
    if isinstance(source, Path):
        return read_run(source)
    return records_of_frames(source)


def merge_in_passes(
    sources: list[Source],
    factor: int,
    scratch: Path,
    name: str,
    merge: Callable[[list[Source]], Iterable[Record]],
) -> tuple[list[Source], int]:
    """Merge consecutive runs into files until at most ``factor`` remain, so that a final
    merge holds a bounded number of runs open. Order is kept (a key's values keep theirs);
    merged run files are deleted. Returns the remaining runs and how many merges ran."""
    generation = merges = 0
    while len(sources) > factor:
        merged: list[Source] = []
        for start in range(0, len(sources), factor):
            group = sources[start : start + factor]
            if len(group) == 1:
                merged.append(group[0])
                continue
            path = scratch / f"merge-{generation}-{start:05d}-{name}.run"
            with RunWriter(path) as writer:
                writer.write(merge(group))
            for source in group:
                if isinstance(source, Path):
                    source.unlink(missing_ok=True)
            merged.append(path)
            merges += 1
        sources = merged
        generation += 1
    return sources, merges
