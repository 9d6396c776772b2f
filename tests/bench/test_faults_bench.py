"""Smoke run of the faults benchmark at a tiny size: every scenario runs end to end, every
output equals the sequential oracle, and it prints its table. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testjobs import run_bench


@pytest.mark.bench
def test_faults_bench_runs_every_scenario_and_prints_the_table(tmp_path: Path) -> None:
    result = run_bench(
        "faults.py",
        tmp_path,
        "--size-mb",
        "4",
        "--map-tasks",
        "8",
        "--repeat",
        "1",
        "--calibrate-mb",
        "1",
        "--calibrate-repeat",
        "1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for name in ("healthy", "slow-spec", "slow-nospec", "kill"):
        assert any(line.startswith(name) for line in out.splitlines()), out
    assert "slow-worker hook, single mapper" in out
    assert "every run == the sequential oracle" in out
    runs = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["runs"]
    assert runs["kill"][0]["restarts"] >= 2
    assert not list((tmp_path / "cache").glob("faults-*")), "the run's temporary folder is left"
