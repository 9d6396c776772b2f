"""Execution guarantees of a healthy run: parallel maps, each line mapped exactly once,
no partially written output ever visible, no process exiting before the output is final."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
from pathlib import Path

from kubemr import report as reports
from kubemr.outputdir import SUMMARY

from testjobs import APPS, BOOKS, ROOT, manifest, run_cli, write_manifest


def unique_lines_input(directory: Path, files: int = 4, lines: int = 150) -> list[str]:
    paths = []
    for f in range(files):
        path = directory / f"in{f}.txt"
        path.write_text("".join(f"f{f}l{i} payload {i * f}\n" for i in range(lines)))
        paths.append(str(path))
    return paths


def test_maps_run_in_parallel_and_exactly_once(tmp_path: Path) -> None:
    logs = tmp_path / "calls"
    logs.mkdir()
    paths = unique_lines_input(tmp_path)
    doc = manifest(
        "counting",
        {
            "module": f"{APPS / 'counting.py'}:Counting",
            # Every mapper's first map call waits until all three made theirs: each holds
            # a task at once, however late one of them starts on a loaded machine.
            "args": {"log_dir": str(logs), "delay": "0.004", "together": "3"},
        },
        paths,
        tmp_path / "out",
        input={"splitSize": "1Ki"},
        reduceTasks=2,
        mapper={"replicas": 3},
        reducer={"replicas": 1},
        # A backup attempt maps its split's lines a second time (by design).
        faultTolerance={"speculative": False},
    )
    result = run_cli("run", str(write_manifest(tmp_path, doc)), "--quiet")
    assert result.returncode == 0, result.stderr
    calls: dict[str, list[float]] = {}
    mapped: list[str] = []
    for log in logs.glob("*.log"):
        pid = log.stem
        for row in log.read_text().splitlines():
            stamp, line = row.split("\t", 1)
            calls.setdefault(pid, []).append(float(stamp))
            mapped.append(line)
    expected = [line for p in paths for line in Path(p).read_text().splitlines()]
    assert sorted(mapped) == sorted(expected), "every line mapped exactly once"
    busy = sorted((min(stamps), max(stamps)) for stamps in calls.values())
    assert len(busy) == 3, f"map calls ran in {len(busy)} processes, expected 3 mappers"
    overlaps = [a for a, b in itertools.pairwise(busy) if b[0] < a[1]]
    assert overlaps, f"no two mappers were busy at the same time: {busy}"
    # The master's per-partition sums (from the mappers' reports) are what the reducers
    # fetched (sizes announced by the mappers' indexes), and every map output is counted.
    summary = json.loads((tmp_path / "out" / SUMMARY).read_text())
    report = reports.load(summary, SUMMARY)
    inputs = [t.bytes_in for t in report.tasks if t.kind == "reduce"]
    assert sum(i or 0 for i in inputs) == summary["counters"]["shuffle_bytes"] > 0
    assert summary["counters"]["shuffle_bytes"] == summary["counters"]["map_output_run_bytes"]
    assert report.sized_maps == report.maps.total


def test_no_partial_output_and_no_early_exit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = manifest(
        "sorter",
        {"builtin": "sort"},
        [str(BOOKS / "*.txt")],
        out,
        input={"splitSize": "256Ki"},
        reduceTasks=4,
        mapper={"replicas": 2},
        reducer={"replicas": 2},
    )
    seen: dict[str, set[bytes]] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if out.exists():
                for part in out.glob("part-*"):
                    with contextlib.suppress(FileNotFoundError):
                        seen.setdefault(part.name, set()).add(part.read_bytes())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_cli(
            "run",
            str(write_manifest(tmp_path, doc)),
            "--quiet",
            "--keep-workdir",
            env={"TMPDIR": str(tmp_path)},
        )
    finally:
        stop.set()
        watcher.join()
    assert result.returncode == 0, result.stderr
    assert seen, "the watcher never saw an output file"
    for name, versions in seen.items():
        assert versions == {(out / name).read_bytes()}, f"{name} was visible before it was final"
    success = (out / "_SUCCESS").stat().st_mtime
    [workdir] = tmp_path.glob("kubemr-sorter-*")
    exits = {}
    for log in (workdir / "logs").glob("*er-*.log"):
        match = re.search(r"exiting at (\d+\.\d+)", log.read_text())
        assert match, f"{log.name} has no orderly exit"
        exits[log.stem] = float(match.group(1))
    assert len(exits) == 4
    assert all(t >= success for t in exits.values()), (success, exits)


def test_workers_run_the_apps_combiner_unless_the_job_turns_it_off(tmp_path: Path) -> None:
    """``combine`` left at its default means "when the app has one": the plan decides, and
    the mappers must get that decision (a worker that read the undecided spec ran no
    combiner and shuffled every pair: the plain wordcount was 3.6x its functions alone)."""
    book = sorted(BOOKS.glob("*.txt"))[0]
    counters = {}
    for combine in (None, False):
        extra = {} if combine is None else {"combine": combine}
        doc = manifest(
            "combining",
            {"module": f"{ROOT / 'examples' / 'apps' / 'plainwordcount.py'}:WordCount"},
            [str(book)],
            tmp_path / f"out-{combine}",
            reduceTasks=2,
            mapper={"replicas": 2},
            reducer={"replicas": 1},
            **extra,
        )
        result = run_cli("run", str(write_manifest(tmp_path, doc)), "--quiet")
        assert result.returncode == 0, result.stderr
        summary = json.loads((tmp_path / f"out-{combine}" / SUMMARY).read_text())
        assert summary["combine"] is (combine is None)
        counters[combine] = summary["counters"]
    combined, plain = counters[None], counters[False]
    assert combined["combine_input_records"] > 0
    assert combined["reduce_input_records"] < combined["map_output_records"] / 2, combined
    assert plain["combine_input_records"] == 0
    assert plain["reduce_input_records"] == plain["map_output_records"]
    assert combined["reduce_output_records"] == plain["reduce_output_records"]
