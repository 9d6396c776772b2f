"""Smoke run of the split-read benchmark at a tiny size: MinIO starts, every split reads
back the same bytes from S3 as from disk, and it prints its table. No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import s3server

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_s3read_bench_reads_every_split_from_both_sources(tmp_path: Path) -> None:
    if not s3server.built():
        pytest.skip(s3server.SKIP_REASON)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "s3read.py"),
            *("--size-mb", "4", "--split-mb", "1", "--repeat", "1"),
            *("--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "s3read.json")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ratio  s3 / local throughput" in result.stdout
    body = json.loads((tmp_path / "s3read.json").read_text(encoding="utf-8"))
    assert body["requestsPerSplit"] and all(n >= 1 for n in body["requestsPerSplit"])
