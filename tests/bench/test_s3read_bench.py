"""Smoke run of the split-read benchmark at a tiny size: MinIO starts, every split reads
back the same bytes from S3 as from disk, and it prints its table. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import s3server
from testjobs import run_bench


@pytest.mark.bench
def test_s3read_bench_reads_every_split_from_both_sources(tmp_path: Path) -> None:
    if not s3server.built():
        pytest.skip(s3server.SKIP_REASON)
    result = run_bench("s3read.py", tmp_path, "--size-mb", "4", "--split-mb", "1", "--repeat", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ratio  s3 / local throughput" in result.stdout
    body = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert body["requestsPerSplit"] and all(n >= 1 for n in body["requestsPerSplit"])
