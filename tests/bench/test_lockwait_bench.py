"""Smoke run of the lock-wait benchmark at a tiny size: both builds run, the figures come
from the jobs' metrics, and it prints its table. No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_lockwait_bench_runs_both_builds_and_reads_the_metrics(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "lockwait.py"),
            "--size-mb",
            "2",
            "--repeat",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
            str(tmp_path / "results.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lock_wait_share" in result.stdout and "occupancy over time" in result.stdout
    medians = json.loads((tmp_path / "results.json").read_text())["medians"]
    for build in ("default", "coarse"):
        assert medians[build]["lock_acquisitions"] > 0, medians
        assert medians[build]["reducer_s"] > 0, medians
