"""Pieces of the app contract: counters, hooks, record formats, bad-record accounting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubemr import apps, badrecords, formats, inputs
from kubemr.splits import Split, plan_splits


def test_counters_validate_names_and_amounts() -> None:
    counters = apps.Counters()
    counters.increment("lines")
    counters.increment("lines", 4)
    counters.increment("a.b-c_d", -2)
    assert counters.values == {"lines": 5, "a.b-c_d": -2}
    for name in ("", "1st", "has space", "x" * 65, 3):
        with pytest.raises(apps.CounterError):
            counters.increment(name)  # type: ignore[arg-type]
    with pytest.raises(apps.CounterError, match="amount"):
        counters.increment("lines", 1.5)  # type: ignore[arg-type]
    many = apps.Counters()
    for i in range(apps.MAX_COUNTERS):
        many.increment(f"c{i}")
    with pytest.raises(apps.CounterError, match="at most"):
        many.increment("one_more")
    many.increment("c0")  # known names still count


def test_start_task_gives_fresh_counters_and_hooks_are_optional() -> None:
    class App:
        counters: apps.Counters

        def map_teardown(self) -> list[tuple[str, int]]:
            return [("k", 1)]

        def reduce_setup(self) -> None:
            return None

    app = App()
    first = apps.start_task(app)  # type: ignore[arg-type]
    app.counters.increment("x")
    assert apps.start_task(app) is not first and app.counters.values == {}  # type: ignore[arg-type]
    assert apps.call_hook(app, "map_teardown") == [("k", 1)]  # type: ignore[arg-type]
    assert apps.call_hook(app, "reduce_setup") == []  # type: ignore[arg-type]
    assert apps.call_hook(app, "map_setup") == []  # type: ignore[arg-type]


def test_line_offsets_agree_with_the_lines(tmp_path: Path) -> None:
    data = b"first\r\n\nthird line\nno newline at the end"
    path = tmp_path / "f.txt"
    path.write_bytes(data)
    for size in (1, 3, 7, 100):
        splits = plan_splits([(str(path), len(data))], size)
        found = [
            record
            for split in splits
            for record in formats.lines_at(inputs.read_blocks_at(split, block_bytes=2))
        ]
        lines = [line for split in splits for line in inputs.read_lines(split)]
        assert [line for _, line in found] == lines
        for offset, line in found:
            assert data[offset:].startswith(line.encode())


def test_jsonl_and_whole_file_records(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n\n  \n[2, 3]\n"s"\nnot json\n')
    split = Split(str(path), 0, path.stat().st_size)
    parse = formats.parser("jsonl")
    raw = list(formats.raw_records("jsonl", split, inputs.read_blocks_at(split)))
    assert [offset for offset, _ in raw] == [0, 13, 20, 24]
    assert [parse(r) for _, r in raw[:3]] == [{"a": 1}, [2, 3], "s"]
    with pytest.raises(json.JSONDecodeError):
        parse(raw[3][1])
    whole = list(formats.records("whole-file", split))
    assert whole == [(0, path.read_bytes())]


def test_bad_records_are_counted_listed_and_bounded() -> None:
    bad = badrecords.BadRecords(limit=badrecords.LISTED + 5)
    for i in range(badrecords.LISTED + 5):
        bad.skip(f"f@{i}", ValueError(f"bad {i}\nsecond line"))
    assert bad.count == badrecords.LISTED + 5 and len(bad.locations) == badrecords.LISTED
    assert bad.locations[0] == "f@0: ValueError: bad 0"
    with pytest.raises(badrecords.TooManyBadRecordsError, match=r"f@999: KeyError"):
        bad.skip("f@999", KeyError("k"))
