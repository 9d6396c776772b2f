"""Smoke run of the wordcount benchmark at a tiny size: it runs end to end, every
contender counts the same words, and it prints its table. No timing assertions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_wordcount_bench_runs_and_prints_the_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "wordcount.py"),
            "--size-mb",
            "4",
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
    out = result.stdout
    assert "contender" in out and "wall s" in out and "MB/s" in out
    for name in ("kubemr", "python-1proc", "python-2proc"):
        assert any(line.startswith(name) for line in out.splitlines()), out
    assert "kubemr / python-2proc = " in out
    assert "kubemr / python-1proc = " in out
    assert "counts: kubemr == python-1proc == python-2proc" in out
    assert (tmp_path / "results.json").is_file()
    assert not list((tmp_path / "cache").glob("run-*")), "the run's temporary folder is left"
