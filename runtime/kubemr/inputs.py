"""Reading the input: resolving paths and globs, and reading the lines of a split.

Input is UTF-8 text split on ``\\n``; a ``\\r`` before the ``\\n`` is removed too, so
CRLF files read like LF files. Bytes that are not valid UTF-8 are decoded with
``surrogateescape``: they never break a job, never count as letters, and are written
back unchanged if a line reaches the output.

Errors name the manifest field and the path, before any task starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from kubemr import compression, stores
from kubemr.spec import StorageSpec
from kubemr.splits import Split

BLOCK_BYTES = 4 * 2**20
"""How many bytes a split reader reads at a time (a block holds whole lines)."""


class InputError(ValueError):
    """An input path that does not exist, matches nothing or cannot be read."""


def _is_data_file(name: str) -> bool:
    return not name.startswith((".", "_"))


def resolve_inputs(
    patterns: Sequence[str], storage: StorageSpec | None = None
) -> list[tuple[str, int]]:
    """Expand ``spec.input.paths`` into (path, size) pairs, in order, without duplicates.

    Local paths and ``s3://`` URIs alike. A directory (an S3 prefix ending in ``/``, or
    one that holds objects) stands for the files directly inside it (names starting with
    ``.`` or ``_`` are skipped, as Hadoop does). Every problem is reported at once,
    naming the field and the path: no such file, no such bucket, access denied, an
    unreachable endpoint.
    """
    found: dict[str, int] = {}
    problems: list[str] = []
    for index, pattern in enumerate(patterns):
        field = f"spec.input.paths[{index}]"
        store = stores.store_for(pattern, storage)
        try:
            matches = _expand(store, pattern)
        except stores.StoreError as exc:
            problems.append(f"{field}: {exc}")
            continue
        if matches is None:
            missing = "no such file or directory"
            if stores.is_s3(pattern):
                missing = "no such key or prefix"
            problems.append(f"{field}: {missing}: {pattern!r}")
        elif not matches and stores.has_magic(pattern):
            problems.append(f"{field}: {pattern!r} matches no files")
        for path, size in matches or []:
            if not stores.is_s3(path):
                try:
                    with open(path, "rb"):
                        pass
                except OSError as exc:
                    problems.append(f"{field}: cannot read {path!r}: {exc.strerror}")
                    continue
            found.setdefault(path, size)
    if problems:
        raise InputError("\n".join(problems))
    return list(found.items())


def _expand(store: stores.Store, pattern: str) -> list[tuple[str, int]] | None:
    """The (path, size) pairs ``pattern`` stands for; None if it names nothing."""
    if stores.has_magic(pattern):
        return store.glob(pattern)
    if not pattern.endswith("/"):
        size = store.size(pattern)
        if size is not None:
            return [(pattern, size)]
    if store.is_dir(pattern):
        return [
            (e.path, e.size)
            for e in store.listdir(pattern)
            if not e.is_dir and _is_data_file(e.name)
        ]
    return None


def sniff(path: str, storage: StorageSpec | None = None) -> compression.Codec | None:
    """The compression of the file at ``path``, from its first bytes (None: plain)."""
    store = stores.store_for(path, storage)
    with store.open_range(path, 0, compression.SNIFF_BYTES) as stream:
        head = stream.read(compression.SNIFF_BYTES)
    return compression.detect(head)


def read_blocks(
    split: Split, block_bytes: int = BLOCK_BYTES, storage: StorageSpec | None = None
) -> Iterator[bytes]:
    """Yield blocks of whole lines (each ending in ``\\n``, except perhaps the file's last
    line) that together hold exactly the lines starting inside ``split``.

    The split is read from one byte before its start (to find where its first line
    starts) with ranged reads (:meth:`kubemr.stores.Store.open_range`), never the whole
    file or object. A line longer than ``block_bytes`` becomes one block of its own
    length; each read is searched once for newlines, so a long line costs linear time
    whatever the block size. A compressed file (recognised by its first bytes, see
    :mod:`kubemr.compression`) is one split, starting at 0: it is decompressed as it is
    read, and its blocks hold every line of the decompressed data.
    """
    for _, block in read_blocks_at(split, block_bytes, storage):
        yield block


class _Prefixed:
    """A reader that first returns ``head`` (bytes already read), then reads on."""

    def __init__(self, head: bytes, stream: stores.Reader) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int) -> bytes:
        if self.head:
            head, self.head = self.head[:size], self.head[size:]
            return head
        return self.stream.read(size)


def read_blocks_at(
    split: Split, block_bytes: int = BLOCK_BYTES, storage: StorageSpec | None = None
) -> Iterator[tuple[int, bytes]]:
    """:func:`read_blocks`, each block with the byte offset of its first byte in the file
    (in the decompressed data, for a compressed file)."""
    store = stores.store_for(split.path, storage)
    with store.open_range(split.path, max(split.start - 1, 0), split.end) as raw:
        stream: stores.Reader | _Prefixed = raw
        if split.start == 0:
            head = raw.read(compression.SNIFF_BYTES)
            codec = compression.detect(head)
            if codec is not None:
                chunks = compression.decompress_stream(
                    _Prefixed(head, raw),  # type: ignore[arg-type]
                    codec,
                    split.path,
                )
                yield from _line_blocks(chunks, block_bytes)
                return
            stream = _Prefixed(head, raw)
        carry = bytearray()
        carry_at = split.start  # offset of carry[0] in the file
        if split.start > 0:  # skip the line that started before the split
            offset = split.start - 1
            while True:
                data = stream.read(64 * 1024)
                if not data:
                    return
                newline = data.find(b"\n")
                if newline != -1:
                    carry_at = offset + newline + 1
                    carry += data[newline + 1 :]
                    break
                offset += len(data)
        scanned = 0  # carry[:scanned] holds no newline
        while carry_at < split.end:
            limit = split.end - carry_at  # lines must start before carry[limit]
            if len(carry) > limit:
                cut = carry.find(b"\n", max(limit - 1, scanned, 0))
                if cut != -1:
                    yield carry_at, bytes(carry[: cut + 1])
                    return
            else:
                last = carry.rfind(b"\n", scanned)
                if last != -1:
                    yield carry_at, bytes(carry[: last + 1])
                    del carry[: last + 1]
                    carry_at += last + 1
                    scanned = len(carry)
                    continue
            scanned = len(carry)
            data = stream.read(block_bytes)
            if not data:
                if carry:
                    yield carry_at, bytes(carry)
                return
            carry += data


def _line_blocks(chunks: Iterable[bytes], block_bytes: int) -> Iterator[tuple[int, bytes]]:
    """Regroup a stream of byte chunks into blocks of whole lines of at least about
    ``block_bytes`` (the last may lack its newline), with their offsets."""
    carry = bytearray()
    offset = 0
    for chunk in chunks:
        carry += chunk
        if len(carry) < block_bytes:
            continue
        last = carry.rfind(b"\n")
        if last != -1:
            yield offset, bytes(carry[: last + 1])
            del carry[: last + 1]
            offset += last + 1
    if carry:
        yield offset, bytes(carry)


def read_whole(path: str, storage: StorageSpec | None = None) -> bytes:
    """The whole content of the file at ``path``, decompressed if it is compressed."""
    store = stores.store_for(path, storage)
    return compression.decompress_bytes(store.read_bytes(path), path)


def lines_of_block(block: bytes) -> list[str]:
    """Decode a block into its lines, without line endings."""
    text = block.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" not in text:
        return lines
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(split: Split, storage: StorageSpec | None = None) -> Iterator[str]:
    """Yield the lines of ``split``, decoded, without line endings."""
    for block in read_blocks(split, storage=storage):
        yield from lines_of_block(block)


def sample_lines(
    splits: Sequence[Split],
    lines_per_split: int,
    probes: int = 8,
    storage: StorageSpec | None = None,
) -> list[str]:
    """A deterministic sample of input lines: a few lines from evenly spaced points of
    every split (for the range partitioner)."""
    sample: list[str] = []
    per_probe = max(1, lines_per_split // probes)
    for split in splits:
        if split.start == 0 and sniff(split.path, storage) is not None:
            probes_of_split = [split]  # compressed: read from the start
            per_split = per_probe * probes
        else:
            step = max(1, split.length // probes)
            probes_of_split = [
                Split(split.path, start, min(split.end, start + step))
                for start in range(split.start, split.end, step)
            ]
            per_split = per_probe
        for probe in probes_of_split:
            for count, line in enumerate(read_lines(probe, storage)):
                if count >= per_split:
                    break
                sample.append(line)
    return sample
