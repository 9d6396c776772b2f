"""Reading the input: resolving paths and globs, and reading the lines of a split.

Input is UTF-8 text split on ``\\n``; a ``\\r`` before the ``\\n`` is removed too, so
CRLF files read like LF files. Bytes that are not valid UTF-8 are decoded with
``surrogateescape``: they never break a job, never count as letters, and are written
back unchanged if a line reaches the output.

Errors name the manifest field and the path, before any task starts.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from kubemr.splits import Split

BLOCK_BYTES = 4 * 2**20
"""How many bytes a split reader reads at a time (a block holds whole lines)."""


class InputError(ValueError):
    """An input path that does not exist, matches nothing or cannot be read."""


def _is_data_file(name: str) -> bool:
    return not name.startswith((".", "_"))


def resolve_inputs(patterns: Sequence[str]) -> list[tuple[str, int]]:
    """Expand ``spec.input.paths`` into (path, size) pairs, in order, without duplicates.

    A directory stands for the files directly inside it (names starting with ``.`` or
    ``_`` are skipped, as Hadoop does). Every problem is reported at once.
    """
    found: dict[str, int] = {}
    problems: list[str] = []
    for index, pattern in enumerate(patterns):
        field = f"spec.input.paths[{index}]"
        if glob.has_magic(pattern):
            matches = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
            if not matches:
                problems.append(f"{field}: {pattern!r} matches no files")
        elif os.path.isdir(pattern):
            matches = sorted(
                str(Path(pattern) / n)
                for n in os.listdir(pattern)
                if _is_data_file(n) and os.path.isfile(Path(pattern) / n)
            )
        elif os.path.exists(pattern):
            matches = [pattern]
        else:
            problems.append(f"{field}: no such file or directory: {pattern!r}")
            continue
        for path in matches:
            try:
                with open(path, "rb"):
                    pass
                found.setdefault(path, os.path.getsize(path))
            except OSError as exc:
                problems.append(f"{field}: cannot read {path!r}: {exc.strerror}")
    if problems:
        raise InputError("\n".join(problems))
    return list(found.items())


def read_blocks(split: Split, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Yield blocks of whole lines (each ending in ``\\n``, except perhaps the file's last
    line) that together hold exactly the lines starting inside ``split``.

    A line longer than ``block_bytes`` becomes one block of its own length; each read
    is searched once for newlines, so a long line costs linear time whatever the block
    size.
    """
    with open(split.path, "rb", buffering=0) as stream:
        pos = split.start
        if pos > 0:
            pos = _next_line_start(stream, pos)
        if pos >= split.end:
            return
        stream.seek(pos)
        carry = bytearray()
        carry_at = pos  # file offset of carry[0]
        while True:
            data = stream.read(block_bytes)
            if not data:
                if carry:
                    yield bytes(carry)
                return
            scanned = len(carry)  # carry holds no newline: only the new data can
            carry += data
            limit = split.end - carry_at  # lines must start before carry[limit]
            if len(carry) > limit:
                cut = carry.find(b"\n", max(limit - 1, scanned, 0))
                if cut != -1:
                    yield bytes(carry[: cut + 1])
                    return
                continue  # a line that crosses the split's end: read on to its newline
            last = carry.rfind(b"\n", scanned)
            if last == -1:
                continue  # a line longer than a block
            yield bytes(carry[: last + 1])
            del carry[: last + 1]
            carry_at += last + 1
            if carry_at >= split.end:
                return


def _next_line_start(stream: io.FileIO, pos: int) -> int:
    """The offset of the first line that starts at or after ``pos`` (> 0)."""
    stream.seek(pos - 1)
    offset = pos - 1
    while True:
        data = stream.read(64 * 1024)
        if not data:
            return offset
        newline = data.find(b"\n")
        if newline != -1:
            return offset + newline + 1
        offset += len(data)


def lines_of_block(block: bytes) -> list[str]:
    """Decode a block into its lines, without line endings."""
    text = block.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(split: Split) -> Iterator[str]:
    """Yield the lines of ``split``, decoded, without line endings."""
    for block in read_blocks(split):
        yield from lines_of_block(block)


def sample_lines(splits: Sequence[Split], lines_per_split: int, probes: int = 8) -> list[str]:
    """A deterministic sample of input lines: a few lines from evenly spaced points of
    every split (for the range partitioner)."""
    sample: list[str] = []
    per_probe = max(1, lines_per_split // probes)
    for split in splits:
        step = max(1, split.length // probes)
        for start in range(split.start, split.end, step):
            probe = Split(split.path, start, min(split.end, start + step))
            for count, line in enumerate(read_lines(probe)):
                if count >= per_probe:
                    break
                sample.append(line)
    return sample
