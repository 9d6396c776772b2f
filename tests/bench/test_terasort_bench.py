"""Smoke run of the TeraSort benchmark at a tiny size: kubemr and GNU sort sort the same
generated records and TeraValidate accepts both; TeraValidate itself rejects a file out
of order, a lost record and a changed one. No timing assertions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testjobs import ROOT, run_bench

sys.path.insert(0, str(ROOT / "bench"))
import terasort


@pytest.mark.bench
def test_terasort_bench_runs_and_validates(tmp_path: Path) -> None:
    result = run_bench(
        "terasort.py", tmp_path, "--size-mb", "2", "--repeat", "1", "--no-peers", "--pure"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "kubemr / gnu-sort = " in out
    assert "kubemr / kubemr-pure CPU = " in out
    assert out.count("validated)") == 3
    assert "teravalidate: order within and across files" in out
    assert not list((tmp_path / "cache").glob("run-*")), "the run's temporary folder is left"


@pytest.mark.bench
def test_teravalidate_rejects_disorder_loss_and_change(tmp_path: Path) -> None:
    data, meta = terasort.teragen(300 * terasort.RECORD, 3, tmp_path)
    lines = data.read_bytes().splitlines(keepends=True)
    assert len(lines) == meta["rows"] == 300 and all(len(x) == terasort.RECORD for x in lines)
    ordered = sorted(lines)
    first, second = tmp_path / "part-0", tmp_path / "part-1"
    first.write_bytes(b"".join(ordered[:150]))
    second.write_bytes(b"".join(ordered[150:]))
    assert terasort.teravalidate([first, second], meta).rows == 300
    with pytest.raises(SystemExit, match="key"):
        terasort.teravalidate([second, first], meta)  # each file sorted, not across
    second.write_bytes(b"".join(ordered[150:-1]))
    with pytest.raises(SystemExit, match="299 records"):
        terasort.teravalidate([first, second], meta)
    changed = ordered[-1][:-2] + (b"?" if ordered[-1][-2:-1] == b"!" else b"!") + b"\n"
    second.write_bytes(b"".join(ordered[150:-1]) + changed)
    with pytest.raises(SystemExit, match="checksum"):
        terasort.teravalidate([first, second], meta)
