"""A map attempt runs to its sorted runs, or stops early when cancelled (a backup won)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from kubemr.maptask import MapCancelledError, run_map
from kubemr.partitioning import make_partitioner
from kubemr.splits import Split


class Words:
    def map(self, key: str, line: str) -> Iterator[tuple[str, int]]:
        for word in line.split():
            yield word, 1

    def reduce(self, key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
        yield key, sum(values)


def map_file(tmp_path: Path, cancel: threading.Event | None) -> Path:
    source = tmp_path / "in.txt"
    source.write_text("a b c\nb c\n")
    out = tmp_path / "out"
    run_map(
        Words(),
        Split(str(source), 0, source.stat().st_size),
        reduce_tasks=2,
        partitioner=make_partitioner(2, []),
        combiner=None,
        buffer_size=2**20,
        out_dir=out,
        scratch_dir=tmp_path / "scratch",
        cancel=cancel,
    )
    return out


def test_an_uncancelled_attempt_writes_its_runs(tmp_path: Path) -> None:
    out = map_file(tmp_path, threading.Event())
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.run", "part-00001.run"]


def test_a_cancelled_attempt_stops_and_leaves_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(MapCancelledError):
        map_file(tmp_path, cancel)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "scratch").exists()
