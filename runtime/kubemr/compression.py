"""Compressed input and output: gzip, bzip2, xz and zstd.

Input files are recognised by their first bytes (magic numbers), whatever their names:
a ``.txt`` that holds gzip is read as gzip, a ``.gz`` that holds text as text. A
compressed file cannot be cut at arbitrary byte offsets, so it is read whole by one map
task (one split; see :func:`kubemr.splits.plan_splits`). Multi-member gzip files (``cat
a.gz b.gz``) and multi-frame zstd files read as their concatenation, as ``zcat`` does.

A truncated or corrupt file raises :class:`CompressionError` naming the file, so the
task fails and then the job: never a silently short output.

Output (``spec.output.compression``) is written through :func:`compressing` with the
codec's file extension on every part file.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import typing
import zlib
from collections.abc import Iterator
from typing import BinaryIO, Literal

import zstandard
from typing_extensions import Buffer

Codec = Literal["gzip", "bzip2", "xz", "zstd"]
OutputCodec = Literal["none", "gzip", "zstd"]

MAGIC: dict[bytes, Codec] = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}
"""Leading bytes of each format."""
SNIFF_BYTES = max(len(m) for m in MAGIC)
"""How many leading bytes :func:`detect` needs."""
EXTENSIONS: dict[str, str] = {"none": "", "gzip": ".gz", "zstd": ".zst"}
"""File name extension of output part files per ``spec.output.compression``."""
READ_BYTES = 2**20
"""Compressed bytes read at a time."""
GZIP_LEVEL = 6
"""gzip level of compressed output (zlib's default)."""
ZSTD_LEVEL = 3
"""zstd level of compressed output (zstd's default)."""


class CompressionError(ValueError):
    """A compressed input that is truncated or corrupt; the message names the file."""


def detect(head: bytes) -> Codec | None:
    """The codec whose magic number ``head`` starts with, or None for plain data."""
    for magic, codec in MAGIC.items():
        if head.startswith(magic):
            if codec == "bzip2" and not (len(head) > 3 and head[3:4].isdigit()):
                continue  # "BZh" then the block size digit 1-9
            return codec
    return None


def _decompressor(codec: Codec) -> tuple[object, type[Exception] | tuple[type[Exception], ...]]:
    if codec == "gzip":
        return zlib.decompressobj(wbits=31), zlib.error
    if codec == "bzip2":
        return bz2.BZ2Decompressor(), (OSError, ValueError)
    if codec == "xz":
        return lzma.LZMADecompressor(), lzma.LZMAError
    return zstandard.ZstdDecompressor().decompressobj(), zstandard.ZstdError


def decompress_stream(stream: BinaryIO, codec: Codec, name: str) -> Iterator[bytes]:
    """Yield the decompressed bytes of ``stream``; concatenated members or frames are
    read one after another. Raises :class:`CompressionError` naming ``name`` if the data
    is corrupt or ends before its end-of-stream marker."""
    decoder, errors = _decompressor(codec)
    pending = b""
    finished = False  # the current member/frame ended exactly at the data seen so far
    while True:
        data = pending or stream.read(READ_BYTES)
        pending = b""
        if not data:
            break
        if finished:  # another member or frame follows (zero padding at the end is allowed)
            if not data.strip(b"\x00"):
                continue
            decoder, errors = _decompressor(codec)
            finished = False
        try:
            out = decoder.decompress(data)  # type: ignore[attr-defined]
        except errors as exc:
            raise CompressionError(f"{name}: corrupt {codec} data: {exc}") from None
        if out:
            yield out
        if getattr(decoder, "eof", False):
            finished = True
            pending = getattr(decoder, "unused_data", b"")
    if not finished:
        raise CompressionError(
            f"{name}: truncated {codec} data (the file ends before its end-of-stream marker)"
        )


def compressing(stream: BinaryIO, codec: OutputCodec) -> BinaryIO:
    """A writable stream that compresses into ``stream`` with ``codec`` (``none``: the
    stream itself). Closing it finishes the compressed data and closes ``stream``."""
    if codec == "none":
        return stream
    if codec == "gzip":
        gz = gzip.GzipFile(fileobj=_Closing(stream), mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
        return typing.cast(BinaryIO, gz)
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
    return compressor.stream_writer(stream, closefd=True)


class _Closing(io.RawIOBase):
    """Passes writes to ``inner`` and closes it when closed (GzipFile closes only the
    file objects it opened itself)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        if not self.closed:
            super().close()
            self.inner.close()


def decompress_bytes(data: bytes, name: str = "data") -> bytes:
    """``data`` decompressed if it starts with a known magic number, else as it is."""
    codec = detect(data[:SNIFF_BYTES])
    if codec is None:
        return data
    return b"".join(decompress_stream(io.BytesIO(data), codec, name))
