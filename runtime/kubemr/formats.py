"""Record formats (``spec.input.format``): how a split's bytes become what ``map`` gets.

- ``text``: each line, decoded UTF-8 (``surrogateescape``), without its line ending.
- ``jsonl``: each line parsed as JSON (any JSON value); lines of only whitespace are
  skipped. A line that is not JSON is a bad record (:mod:`kubemr.badrecords`).
- ``whole-file``: the file's whole content as bytes (decompressed if it is compressed);
  every file is one split, so one map call per file.
- ``records``: files of record frames (:mod:`kubemr.runs`, the shuffle's encoding) that
  kubemr wrote as ``output.format: records`` (a step's intermediate output): ``map`` gets
  each record's key and value, decoded with their types (:mod:`kubemr.records`); every
  file is one split. A file that is not whole frames fails its task.

Every record comes with its byte offset in the file (in the decompressed data of a
compressed file), which names it when it is skipped as bad.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kubemr import inputs, runs, stores
from kubemr import records as encoding
from kubemr.spec import StorageSpec
from kubemr.splits import Split

WHOLE_FORMATS = ("whole-file", "records")
"""Formats whose every file is one split (read from its start)."""

Record = tuple[int, Any]
"""A record's byte offset in its file, and its raw value (a line, or the file's bytes)."""


def lines_at(blocks: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, str]]:
    """The lines of blocks of whole lines (:func:`kubemr.inputs.read_blocks_at`), each
    with the offset of its first byte, decoded as :func:`kubemr.inputs.lines_of_block`
    decodes them."""
    for offset, block in blocks:
        start, size = 0, len(block)
        while start < size:
            end = block.find(b"\n", start)
            stop = end + 1
            if end == -1:
                end = stop = size
            line = block[start:end]
            if line.endswith(b"\r"):
                line = line[:-1]
            yield offset + start, line.decode("utf-8", "surrogateescape")
            start = stop


def raw_records(
    record_format: str,
    split: Split,
    blocks: Iterable[tuple[int, bytes]],
    storage: StorageSpec | None = None,
) -> Iterator[Record]:
    """The raw records of ``split`` (``blocks`` are its blocks; whole-file reads the file
    itself). Parse each with :func:`parser` before ``map`` gets it."""
    if record_format == "whole-file":
        yield 0, inputs.read_whole(split.path, storage)
        return
    if record_format == "records":
        yield from record_frames(split.path, storage)
        return
    skip_blank = record_format == "jsonl"
    for offset, line in lines_at(blocks):
        if skip_blank and not line.strip():
            continue
        yield offset, line


READ_BYTES = 1 << 20
"""Bytes read at a time from a records file."""


def record_frames(path: str, storage: StorageSpec | None = None) -> Iterator[Record]:
    """The decoded (key, value) pairs of a records file, each with its frame's offset."""
    decode_key, decode_value = encoding.decode_key, encoding.decode_value
    store = stores.store_for(path, storage)
    size = store.size(path) or 0
    buffer, consumed = bytearray(), 0
    with store.open_range(path, 0, size) as stream:
        while chunk := stream.read(READ_BYTES):
            buffer += chunk
            spans = runs.whole_frames(buffer)
            for start, end in spans:
                for key, value in runs.decode_batch(bytes(buffer[start:end])):
                    yield consumed + start - 4, (decode_key(key), decode_value(value))
            if spans:
                del buffer[: spans[-1][1]]
                consumed += spans[-1][1]
    if buffer:
        raise runs.FrameError(f"{path}: truncated record frame at byte {consumed}")


def map_arguments(record_format: str, path: str) -> Callable[[Any], tuple[Any, Any]]:
    """Turns a raw record of ``path`` into ``map``'s arguments: ``(path, parsed record)``,
    or for ``records`` the record's own ``(key, value)``; raises ValueError on a bad one."""
    if record_format == "records":
        return _identity
    parse = parser(record_format)
    return lambda raw: (path, parse(raw))


def _identity(value: Any) -> Any:
    return value


def parser(record_format: str) -> Callable[[Any], Any]:
    """Turns a raw record into the value ``map`` gets; raises ValueError on a bad one."""
    return json.loads if record_format == "jsonl" else _identity


def records(
    record_format: str, split: Split, storage: StorageSpec | None = None
) -> Iterator[tuple[int, Any]]:
    """The parsed records of ``split`` (for sampling and tests; a bad one raises); a
    ``records`` file's are (key, value) pairs."""
    parse = parser(record_format)
    blocks = inputs.read_blocks_at(split, storage=storage)
    for offset, raw in raw_records(record_format, split, blocks, storage):
        yield offset, parse(raw)
