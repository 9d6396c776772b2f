"""Part files' bytes: what a reduce task (or a map-only task) writes for its pairs.

``text`` (``spec.output.format``'s default): one line per pair, ``key<TAB>value``
(:func:`kubemr.records.format_line`), UTF-8 with the input's undecodable bytes given
back. ``records``: the pairs' encoded keys and values (:mod:`kubemr.records`) in the
shuffle's length-prefixed frames (:mod:`kubemr.runs`), which ``input.format: records``
reads back with their types: a multi-step job's intermediate output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

from kubemr import records, runs


def encode_pair(key: Any, value: Any) -> runs.Record:
    """A pair as the encoded record a records file holds."""
    return records.encode_key(key), records.encode_value(value)


def renderer(output_format: str) -> Callable[[Any, Any], Any]:
    """What a pair becomes before :meth:`PartWriter.write`: an output line (text), or an
    encoded record (records). Raises :class:`kubemr.records.RecordError` for a key or
    value kubemr cannot carry."""
    return encode_pair if output_format == "records" else records.format_line


class PartWriter:
    """Writes rendered pairs to a part file's (binary) stream; closes it on exit."""

    def __init__(self, stream: BinaryIO, output_format: str) -> None:
        self.stream = stream
        self.records = output_format == "records"
        self.bytes = 0
        """Bytes written (before any compression the stream applies)."""

    def write(self, rendered: list[Any]) -> None:
        """Write a batch of rendered pairs (:func:`renderer`)."""
        if self.records:
            for frame in runs.encode_frames(rendered):
                self.stream.write(frame)
                self.bytes += len(frame)
            return
        data = ("\n".join(rendered) + "\n").encode("utf-8", "surrogateescape")
        self.stream.write(data)
        self.bytes += len(data)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
