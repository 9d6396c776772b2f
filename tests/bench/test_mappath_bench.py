"""Smoke run of the map path benchmark at a tiny size: every app, the native core and the
pure path side by side. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testjobs import run_bench


@pytest.mark.bench
def test_mappath_bench_runs_both_paths(tmp_path: Path) -> None:
    result = run_bench("mappath.py", tmp_path, "--size-mb", "0.25", "--repeat", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "native core: built" in result.stdout
    rows = [line.split()[0] for line in result.stdout.splitlines()[2:]]
    assert rows == ["wordcount", "index", "grep", "terasort"]
    measured = json.loads((tmp_path / "results.json").read_text())["cpu_seconds"]
    for seconds in measured.values():
        assert set(seconds) == {"alone", "map native", "reduce native", "map pure", "reduce pure"}
