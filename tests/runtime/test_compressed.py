"""Compressed input and output through `kubemr run`, against the sequential oracle.

gzip, bzip2, xz and zstd input, named misleadingly (recognised by magic bytes), give the
output the same books give uncompressed, one map task per compressed file; a truncated
file fails the job naming it, without `_SUCCESS`; compressed output has the codec's
extension on every part and decompresses to the oracle's lines.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from testjobs import BOOKS, Runner, manifest, run_cli, sorted_output, write_manifest

Oracle = Callable[[dict[str, Any]], list[str]]
BOOK_NAMES = ["pg-grimm.txt", "pg-metamorphosis.txt", "pg-being_ernest.txt", "pg-tom_sawyer.txt"]


def compressed_books(directory: Path) -> list[str]:
    """The four books, one per codec, under names that do not say which."""
    writers: list[Callable[[bytes], bytes]] = [
        gzip.compress,
        bz2.compress,
        lzma.compress,
        lambda d: zstandard.ZstdCompressor(write_checksum=True).compress(d),
    ]
    paths = []
    for index, (name, compress) in enumerate(zip(BOOK_NAMES, writers, strict=True)):
        path = directory / f"book{index}.txt" if index % 2 else directory / f"{name}.gz"
        path.write_bytes(compress((BOOKS / name).read_bytes()))
        paths.append(str(path))
    return paths


def test_compressed_input_gives_the_uncompressed_oracle(
    tmp_path: Path, run_job: Runner, oracle: Oracle
) -> None:
    paths = compressed_books(tmp_path)
    plain = manifest(
        "plain", {"builtin": "wordcount"}, [str(BOOKS / n) for n in BOOK_NAMES], tmp_path / "unused"
    )
    doc = manifest(
        "compressed",
        {"builtin": "wordcount"},
        paths,
        tmp_path / "out",
        input={"splitSize": "16Ki"},  # far smaller than any file: still one split each
        reduceTasks=3,
        mapper={"replicas": 2},
        reducer={"replicas": 2},
    )
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    assert sorted_output(tmp_path / "out") == oracle(plain)
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert summary["mapTasks"] == len(paths)
    sizes = sum((BOOKS / n).stat().st_size for n in BOOK_NAMES)
    assert summary["counters"]["map_input_bytes"] == sizes


def test_a_truncated_compressed_file_fails_the_job_naming_it(
    tmp_path: Path, run_job: Runner
) -> None:
    good = tmp_path / "good.txt"
    shutil.copy(BOOKS / "pg-grimm.txt", good)
    data = gzip.compress((BOOKS / "pg-metamorphosis.txt").read_bytes())
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    doc = manifest(
        "truncated",
        {"builtin": "wordcount"},
        [str(good), str(cut)],
        tmp_path / "out",
        faultTolerance={"maxTaskAttempts": 2},
    )
    for flags in ((), ("--sequential",)):
        result = run_job(doc, *flags)
        assert result.returncode != 0, flags
        assert "cut.txt.gz: truncated gzip data" in result.stderr, (flags, result.stderr[-2000:])
        assert not (tmp_path / "out" / "_SUCCESS").exists()
        assert not list((tmp_path / "out").glob("part-*"))


@pytest.mark.parametrize(("codec", "extension"), [("gzip", ".gz"), ("zstd", ".zst")])
def test_compressed_output_has_the_extension_and_the_oracle_lines(
    tmp_path: Path, run_job: Runner, oracle: Oracle, codec: str, extension: str
) -> None:
    doc = manifest(
        f"out-{codec}",
        {"builtin": "wordcount"},
        [str(BOOKS / n) for n in BOOK_NAMES[:2]],
        tmp_path / "out",
        reduceTasks=2,
    )
    doc["spec"]["output"]["compression"] = codec
    for flags, out in (((), "out"), (("--sequential",), "seq")):
        doc["spec"]["output"]["path"] = str(tmp_path / out)
        result = run_cli("run", str(write_manifest(tmp_path, doc)), "--quiet", *flags)
        assert result.returncode == 0, result.stderr
        parts = sorted(p.name for p in (tmp_path / out).glob("part-*"))
        assert parts == [f"part-0000{i}{extension}" for i in range(2)]
        assert sorted_output(tmp_path / out) == oracle(doc)
