"""Smoke run of the user-apps benchmark at a tiny size: every app runs on kubemr and
alone in two processes, the outputs agree line for line, and the table prints. Dask and
PySpark are left out (their JVM and schedulers take minutes to start on a busy machine;
`make bench-userapps` runs them). No timing assertions."""

from __future__ import annotations

from pathlib import Path

import pytest

from testjobs import run_bench


@pytest.mark.bench
def test_userapps_bench_runs_and_checks_outputs(tmp_path: Path) -> None:
    result = run_bench("userapps.py", tmp_path, "--size-mb", "2", "--repeat", "1", "--no-peers")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for app in ("wordcount:", "index:", "grep:"):
        assert app in out.splitlines(), out
    assert out.count("kubemr / alone-2proc = ") == 3
    assert "skipped: dask-bag, pyspark-rdd (--no-peers)" in out
    assert "outputs: every contender == kubemr, line for line" in out
    assert (tmp_path / "results.json").is_file()
    assert not list((tmp_path / "cache").glob("run-*")), "the run's temporary folder is left"
