"""Smoke run of the lock-wait benchmark at a tiny size: both builds run, the figures come
from the jobs' metrics, and it prints its table. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testjobs import run_bench


@pytest.mark.bench
def test_lockwait_bench_runs_both_builds_and_reads_the_metrics(tmp_path: Path) -> None:
    result = run_bench("lockwait.py", tmp_path, "--size-mb", "2", "--repeat", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lock_wait_share" in result.stdout and "occupancy over time" in result.stdout
    medians = json.loads((tmp_path / "results.json").read_text())["medians"]
    for build in ("default", "coarse"):
        assert medians[build]["lock_acquisitions"] > 0, medians
        assert medians[build]["reducer_s"] > 0, medians
