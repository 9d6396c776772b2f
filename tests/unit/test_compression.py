"""Compressed input is recognised by its first bytes, read whole, and never read short."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from kubemr import compression, inputs
from kubemr.splits import Split, plan_splits

TEXT = b"".join(b"line %d of the input\n" % i for i in range(8_000))
COMPRESSORS: dict[compression.Codec, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
}


def decompress(data: bytes, codec: compression.Codec) -> bytes:
    return b"".join(compression.decompress_stream(io.BytesIO(data), codec, "f.bin"))


@pytest.mark.parametrize("codec", COMPRESSORS)
def test_each_codec_is_recognised_and_round_trips(codec: compression.Codec) -> None:
    data = COMPRESSORS[codec](TEXT)
    assert compression.detect(data[: compression.SNIFF_BYTES]) == codec
    assert decompress(data, codec) == TEXT


@pytest.mark.parametrize("codec", COMPRESSORS)
def test_concatenated_members_read_as_one_stream(codec: compression.Codec) -> None:
    compress = COMPRESSORS[codec]
    assert decompress(compress(TEXT) + compress(b"tail\n"), codec) == TEXT + b"tail\n"


@pytest.mark.parametrize("codec", COMPRESSORS)
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_data_raises_naming_the_file(codec: compression.Codec, keep: float) -> None:
    data = COMPRESSORS[codec](TEXT)
    with pytest.raises(compression.CompressionError, match=r"f\.bin: truncated"):
        decompress(data[: max(compression.SNIFF_BYTES, int(len(data) * keep))], codec)


@pytest.mark.parametrize("codec", COMPRESSORS)
def test_corrupt_data_raises_naming_the_file(codec: compression.Codec) -> None:
    data = bytearray(COMPRESSORS[codec](TEXT))
    for at in range(len(data) // 3, len(data) // 3 + 64):
        data[at] ^= 0x5A
    with pytest.raises(compression.CompressionError, match=r"f\.bin: (corrupt|truncated)"):
        decompress(bytes(data), codec)


def test_plain_data_and_near_misses_are_not_compressed() -> None:
    assert compression.detect(b"hello\n") is None
    assert compression.detect(b"BZh is not bzip2") is None  # no block-size digit
    assert compression.detect(b"") is None
    assert compression.decompress_bytes(b"plain") == b"plain"


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_output_compression_round_trips(codec: compression.OutputCodec) -> None:
    closed: list[bytes] = []

    class Sink(io.BytesIO):
        def close(self) -> None:
            closed.append(self.getvalue())
            super().close()

    writer = compression.compressing(Sink(), codec)
    writer.write(TEXT)
    writer.close()
    assert compression.decompress_bytes(closed[0]) == TEXT
    assert compression.EXTENSIONS[codec] in (".gz", ".zst")


@pytest.mark.parametrize("codec", COMPRESSORS)
def test_a_compressed_file_is_one_split_read_by_magic_not_name(
    tmp_path: Path, codec: compression.Codec
) -> None:
    path = tmp_path / "misleading.txt"  # the name says text; the bytes say otherwise
    path.write_bytes(COMPRESSORS[codec](TEXT))
    size = path.stat().st_size
    assert inputs.sniff(str(path)) == codec
    splits = plan_splits([(str(path), size)], 1000, whole={str(path)})
    assert splits == [Split(str(path), 0, size)]
    blocks = list(inputs.read_blocks_at(splits[0], block_bytes=4096))
    assert b"".join(b for _, b in blocks) == TEXT
    offset = 0
    for at, block in blocks:  # offsets are into the decompressed data
        assert at == offset and block.endswith(b"\n")
        offset += len(block)
    assert list(inputs.read_lines(splits[0]))[:2] == ["line 0 of the input", "line 1 of the input"]
    sample = inputs.sample_lines(splits, 16)
    assert sample and all(line.startswith("line ") for line in sample)


def test_a_truncated_input_file_fails_the_read_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    data = gzip.compress(TEXT)
    path.write_bytes(data[: len(data) // 2])
    split = Split(str(path), 0, path.stat().st_size)
    with pytest.raises(compression.CompressionError, match=r"cut\.gz: truncated gzip"):
        list(inputs.read_blocks(split))
