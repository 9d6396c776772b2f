"""A map attempt runs to its sorted runs, or stops early when cancelled (a backup won)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from kubemr import runs
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


def test_an_uncancelled_attempt_writes_its_runs_and_their_index(tmp_path: Path) -> None:
    out = map_file(tmp_path, threading.Event())
    names = ["index", "part-00000.run", "part-00001.run"]
    assert sorted(p.name for p in out.iterdir()) == names
    for partition in (0, 1):  # the index holds what a reducer is told when it fetches
        run = out / runs.run_name(partition)
        records = sum(1 for _ in runs.source_records(run))
        assert runs.read_index(out, partition) == (records, run.stat().st_size)
    assert runs.read_index(out, 2) is None


def test_a_cancelled_attempt_stops_and_leaves_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(MapCancelledError):
        map_file(tmp_path, cancel)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "scratch").exists()
