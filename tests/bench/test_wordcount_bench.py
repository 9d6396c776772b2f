"""Smoke run of the wordcount benchmark at a tiny size: it runs end to end, every
contender counts the same words, and it prints its table. No timing assertions."""

from __future__ import annotations

from pathlib import Path

import pytest

from testjobs import run_bench


@pytest.mark.bench
def test_wordcount_bench_runs_and_prints_the_table(tmp_path: Path) -> None:
    result = run_bench("wordcount.py", tmp_path, "--size-mb", "4", "--repeat", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "contender" in out and "wall s" in out and "MB/s" in out
    for name in ("kubemr", "python-1proc", "python-2proc", "c-2thread"):
        assert any(line.startswith(name) for line in out.splitlines()), out
    assert "kubemr / python-2proc = " in out
    assert "kubemr / python-1proc = " in out
    assert "kubemr / c-2thread = " in out
    assert "counts: kubemr == python-1proc == python-2proc == c-2thread" in out
    assert (tmp_path / "results.json").is_file()
    assert not list((tmp_path / "cache").glob("run-*")), "the run's temporary folder is left"
