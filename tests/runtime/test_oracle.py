"""Distributed output equals the sequential oracle, sorted, across the job-shape matrix.

M in {1, 8, 40}, R in {1, 3, 10}, 1-4 workers, both shuffle modes, combiner on and off,
for all four built-ins on the Gutenberg books. A representative slice runs by default (a
few cells also with the native core off: the pure-Python path);
the whole matrix is the `slow` tier.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubemr import native

from testjobs import BOOKS, Runner, manifest, sorted_output

APP_SPECS: dict[str, dict[str, Any]] = {
    "wordcount": {"builtin": "wordcount"},
    "grep": {"builtin": "grep", "args": {"pattern": "[Hh]olmes|Watson|Gregor"}},
    "indexer": {"builtin": "indexer"},
    "sort": {"builtin": "sort"},
}
COMBINABLE = {"wordcount", "indexer"}


def inputs_for(maps: int) -> tuple[list[str], int]:
    """Input paths and a split size that make exactly ``maps`` map tasks."""
    books = sorted(BOOKS.glob("*.txt"))
    if maps == 1:
        return [str(books[0])], 64 * 2**20
    sizes = [os.path.getsize(b) for b in books]
    if maps == len(books):
        return [str(b) for b in books], 64 * 2**20
    for split in range(max(sizes), 1000, -97):
        if sum(math.ceil(s / split) for s in sizes) == maps:
            return [str(b) for b in books], split
    raise AssertionError(f"no split size gives {maps} map tasks")


def run_cell(
    tmp_path: Path,
    run_job: Runner,
    oracle: Callable[[dict[str, Any]], list[str]],
    app: str,
    maps: int,
    reduces: int,
    workers: int,
    mode: str,
    combine: bool | None,
) -> None:
    paths, split = inputs_for(maps)
    extra: dict[str, Any] = {} if combine is None else {"combine": combine}
    doc = manifest(
        f"{app}-m{maps}",
        APP_SPECS[app],
        paths,
        tmp_path / "out",
        input={"splitSize": split},
        reduceTasks=reduces,
        mapper={"replicas": workers},
        reducer={"replicas": max(1, workers - 1)},
        shuffle={"mode": mode},
        **extra,
    )
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    parts = sorted(p.name for p in (tmp_path / "out").glob("part-*"))
    assert parts == [f"part-{i:05d}" for i in range(reduces)]
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert sorted_output(tmp_path / "out") == oracle(doc)
    if app == "sort":
        ordered = [
            line
            for p in sorted((tmp_path / "out").glob("part-*"))
            for line in p.read_bytes().decode("utf-8", "surrogateescape").splitlines()
        ]
        assert ordered == sorted(ordered), "part files read in order must be globally sorted"


REPRESENTATIVE = [
    # app, M, R, workers, mode, combine
    ("wordcount", 8, 3, 2, "streaming", True),
    ("wordcount", 40, 10, 4, "barrier", False),
    ("wordcount", 1, 1, 1, "streaming", None),
    ("grep", 40, 3, 3, "streaming", None),
    ("indexer", 8, 10, 2, "barrier", True),
    ("indexer", 40, 1, 3, "streaming", False),
    ("sort", 40, 3, 4, "streaming", None),
    ("sort", 8, 10, 2, "barrier", None),
]


def _full_matrix() -> list[tuple[Any, ...]]:
    cells = []
    workers = itertools.cycle([1, 2, 3, 4])
    for app, maps, reduces, mode in itertools.product(
        APP_SPECS, (1, 8, 40), (1, 3, 10), ("barrier", "streaming")
    ):
        for combine in (True, False) if app in COMBINABLE else (None,):
            cells.append((app, maps, reduces, next(workers), mode, combine))
    return cells


CELLS = REPRESENTATIVE + [
    pytest.param(*cell, marks=pytest.mark.slow)
    for cell in _full_matrix()
    if cell not in REPRESENTATIVE
]


@pytest.mark.parametrize(("app", "maps", "reduces", "workers", "mode", "combine"), CELLS, ids=str)
def test_matrix(
    tmp_path: Path,
    run_job: Runner,
    oracle: Callable[[dict[str, Any]], list[str]],
    app: str,
    maps: int,
    reduces: int,
    workers: int,
    mode: str,
    combine: bool | None,
) -> None:
    run_cell(tmp_path, run_job, oracle, app, maps, reduces, workers, mode, combine)


PURE_PATH = [
    ("wordcount", 8, 3, 2, "streaming", True),
    ("indexer", 8, 10, 2, "barrier", True),
    ("grep", 40, 3, 3, "streaming", None),
    ("sort", 8, 10, 2, "barrier", None),
]
"""Cells also run with the native core switched off (the pure-Python reference path)."""


@pytest.mark.parametrize("cell", PURE_PATH, ids=str)
def test_pure_path(
    tmp_path: Path,
    run_job: Runner,
    oracle: Callable[[dict[str, Any]], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    cell: tuple[str, int, int, int, str, bool | None],
) -> None:
    monkeypatch.setenv(native.ENV, "0")  # kubemr run passes it on to master and workers
    run_cell(tmp_path, run_job, oracle, *cell)
