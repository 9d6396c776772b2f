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
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError

from kubemr import native
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


_first = itemgetter(0)


class FrameError(ValueError):
    """Bytes that are not a well-formed sequence of frames."""


def encode_frames(records: Iterable[Record], batch_bytes: int = BATCH_BYTES) -> Iterator[bytes]:
    """Pack records into frames of about ``batch_bytes`` payload each."""
    for frame, _ in _framed(records, batch_bytes):
        yield frame


FIRST_GROUP = 64
"""Records in the first frame of a run; later frames take as many as the records seen
so far say fit ``batch_bytes``."""
MAX_GROUP = 1 << 16
"""Most records in one frame."""


def _framed(records: Iterable[Record], batch_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Frames and their record counts. Records are taken in groups sized from the sizes
    seen so far (no Python step per record); a group that came out larger than twice
    ``batch_bytes`` is halved until it fits or holds one record."""
    source = iter(records)
    take = FIRST_GROUP
    sized, framed = _codec()
    while group := list(islice(source, take)):
        size = sized(group, 0, len(group))
        yield from _split_frames(group, 0, len(group), size, batch_bytes, sized, framed)
        take = max(1, min(MAX_GROUP, batch_bytes * len(group) // max(size, 1)))


Sized = Callable[[list[Record], int, int], int]
Framed = Callable[[list[Record], int, int], bytes]


def _split_frames(
    group: list[Record],
    start: int,
    stop: int,
    size: int,
    batch_bytes: int,
    sized: Sized,
    framed: Framed,
) -> Iterator[tuple[bytes, int]]:
    if size <= 2 * batch_bytes or stop - start == 1:
        yield framed(group, start, stop), stop - start
        return
    half = start + (stop - start) // 2
    for a, b in ((start, half), (half, stop)):
        yield from _split_frames(group, a, b, sized(group, a, b), batch_bytes, sized, framed)


def records_size(group: list[Record], start: int, stop: int) -> int:
    """The payload estimate of ``group[start:stop]``: key and value bytes plus 6 per record."""
    keys = [k for k, _ in group[start:stop]]
    values = [v for _, v in group[start:stop]]
    return sum(map(len, keys)) + sum(map(len, values)) + 6 * (stop - start)


def frame(group: list[Record], start: int, stop: int) -> bytes:
    """The frame of ``group[start:stop]``: the payload's length and a ``RecordBatch``."""
    keys = [k for k, _ in group[start:stop]]
    values = [v for _, v in group[start:stop]]
    payload = mapreduce_pb2.RecordBatch(keys=keys, values=values).SerializeToString()
    return _LENGTH.pack(len(payload)) + payload


def _codec() -> tuple[Sized, Framed]:
    """:func:`records_size` and :func:`frame`, native when the native core is in use (each
    falls back to the reference for records that are not pairs of bytes)."""
    core = native.core
    if core is None:
        return records_size, frame

    def sized(group: list[Record], start: int, stop: int) -> int:
        size: int | None = core.records_size(group, start, stop)
        return records_size(group, start, stop) if size is None else size

    def framed(group: list[Record], start: int, stop: int) -> bytes:
        data: bytes | None = core.frame(group, start, stop)
        return frame(group, start, stop) if data is None else data

    return sized, framed


def decode_batch(payload: bytes) -> list[Record]:
    """Parse one frame's payload into records (natively when the native core is in use
    and the payload is a plain batch; anything else through protobuf)."""
    if native.core is not None:
        parsed: list[Record] | None = native.core.decode_batch(payload)
        if parsed is not None:
            return parsed
    return parse_batch(payload)


def parse_batch(payload: bytes) -> list[Record]:
    """Parse one frame's payload into records with protobuf (the reference)."""
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


def sort_records(group: list[Record]) -> None:
    """Sort records in no particular order by key in place, stably (natively when the
    native core is in use; for concatenated sorted pieces, ``list.sort`` is faster)."""
    if native.core is None or not native.core.sort_records(group):
        group.sort(key=_first)


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
    return chain.from_iterable(_run_batches(path))


def _run_batches(path: Path) -> Iterator[list[Record]]:
    with path.open("rb", buffering=READ_BUFFER) as stream:
        for payload in iter_frames(stream):
            yield decode_batch(payload)


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
        for frame, count in _framed(records, BATCH_BYTES):
            self._file.write(frame)
            self.bytes += len(frame)
            self.records += count

    def write_frames(self, frames: Iterable[tuple[bytes, int]]) -> None:
        """Write frames made elsewhere (frame, records in it)."""
        for frame, count in frames:
            self._file.write(frame)
            self.bytes += len(frame)
            self.records += count

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


INDEX = "index"
"""A map output's index file, beside its runs (as Hadoop's ``file.out.index``)."""
_SIZES = struct.Struct("<qq")


def run_name(partition: int) -> str:
    """The file name of a map output's run for ``partition``."""
    return f"part-{partition:05d}.run"


def write_index(directory: Path, sizes: Iterable[tuple[int, int]]) -> None:
    """Write a map output's index: each partition's (records, bytes), in partition order.

    The sizes stay with the map output (the master keeps only its totals): a reducer
    learns its partition's size from the mapper when it fetches (:func:`read_index`).
    Written last and renamed into place, so an index means the runs beside it are whole.
    """
    temporary = directory / f"{INDEX}.tmp"
    temporary.write_bytes(b"".join(_SIZES.pack(records, size) for records, size in sizes))
    temporary.replace(directory / INDEX)


def read_index(directory: Path, partition: int) -> tuple[int, int] | None:
    """A map output's (records, bytes) for ``partition``; None if the output has no
    index (it is not there, or not complete) or no such partition."""
    path = directory / INDEX
    if partition < 0 or not path.is_file():
        return None
    with path.open("rb") as stream:
        stream.seek(partition * _SIZES.size)
        entry = stream.read(_SIZES.size)
    if len(entry) != _SIZES.size:
        return None
    records, size = _SIZES.unpack(entry)
    return records, size


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
    return chain.from_iterable(source_batches(source))


def source_batches(source: Source) -> Iterator[list[Record]]:
    """The records of a run, a decoded frame at a time."""
    if isinstance(source, Path):
        return _run_batches(source)
    return map(decode_batch, source)


def merge(sources: list[Source]) -> Iterator[Record]:
    """The records of sorted runs in key order; records of equal keys in source order
    (so a key's values keep the order of the runs, then their order within each run).

    A batch merge rather than a record-at-a-time heap: each round takes the smallest of
    the current batches' last keys as a bound, moves every record below it from every
    batch into one list and sorts that list (timsort merges its sorted pieces at C
    speed), then passes the records equal to the bound source by source. Each round
    finishes at least one batch, and memory stays one decoded batch per run plus one
    round's records."""
    return chain.from_iterable(merge_batches(sources))


def merge_batches(sources: list[Source]) -> Iterator[list[Record]]:
    """:func:`merge`, as lists of records (a heap merge in the native core when it is in
    use: the same records in the same order)."""
    if len(sources) == 1:
        return source_batches(sources[0])
    batches = [source_batches(s) for s in sources]
    if native.core is not None:
        return native.core.Merger(batches)  # type: ignore[no-any-return]
    return _merged_batches(batches)


def _next_batch(batches: Iterator[list[Record]]) -> list[Record] | None:
    for batch in batches:
        if batch:
            return batch
    return None


def _merged_batches(sources: list[Iterator[list[Record]]]) -> Iterator[list[Record]]:
    heads: list[tuple[list[Record], int, Iterator[list[Record]]]] = []
    for batches in sources:
        batch = _next_batch(batches)
        if batch is not None:
            heads.append((batch, 0, batches))
    while len(heads) > 1:
        bound = min(batch[-1][0] for batch, _, _ in heads)
        below: list[Record] = []
        for i, (batch, pos, batches) in enumerate(heads):
            cut = bisect_left(batch, bound, pos, key=_first)
            if cut > pos:
                below += batch[pos:cut]
                heads[i] = (batch, cut, batches)
        if below:
            below.sort(key=_first)  # sorted pieces: timsort merges them in linear time
            yield below
        left: list[tuple[list[Record], int, Iterator[list[Record]]]] = []
        for batch, start, batches in heads:
            current: list[Record] | None = batch
            pos = start
            while current is not None:
                cut = bisect_right(current, bound, pos, key=_first)
                if cut > pos:
                    yield current[pos:cut]
                if cut < len(current):
                    left.append((current, cut, batches))
                    break
                current, pos = _next_batch(batches), 0
        heads = left
    for batch, pos, batches in heads:
        yield batch[pos:] if pos else batch
        yield from batches


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
