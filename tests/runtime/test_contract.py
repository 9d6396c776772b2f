"""The app contract's features through `kubemr run`, each against the sequential oracle:
map-only jobs, counters, bad-record skipping, task hooks, record formats, tuple keys.

Every test runs the manifest distributed (several workers, several tasks) and with
``--sequential``, and compares; the purpose-built apps are in apps/contract.py.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from testjobs import APPS, BOOKS, manifest, run_cli, sorted_output, write_manifest

BOOK_PATHS = [str(BOOKS / "pg-metamorphosis.txt"), str(BOOKS / "pg-being_ernest.txt")]


def app(name: str) -> dict[str, str]:
    return {"module": f"{APPS / 'contract.py'}:{name}"}


def run_both(tmp_path: Path, doc: dict[str, Any]) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Run ``doc`` distributed and sequentially; return both output dirs and summaries."""
    outputs, summaries = [], []
    for flags, name in (((), "dist"), (("--sequential",), "seq")):
        doc["spec"]["output"] = {"path": str(tmp_path / name), "overwrite": True}
        result = run_cli("run", str(write_manifest(tmp_path, doc)), "--quiet", *flags)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(tmp_path / name)
        summaries.append(json.loads((tmp_path / name / "_summary.json").read_text()))
    return outputs[0], outputs[1], summaries


def job(name: str, app_name: str, paths: list[str], **spec: Any) -> dict[str, Any]:
    return manifest(
        name,
        app(app_name),
        paths,
        Path("unset"),
        mapper={"replicas": 2},
        reducer={"replicas": 2},
        **spec,
    )


# ---- map-only ------------------------------------------------------------------------


def test_a_map_only_job_commits_one_part_per_map_task_in_input_order(tmp_path: Path) -> None:
    doc = job(
        "maponly",
        "CountedWords",
        BOOK_PATHS,
        input={"splitSize": "24Ki"},
        reduceTasks=0,
    )
    dist, seq, (summary, _) = run_both(tmp_path, doc)
    maps = summary["mapTasks"]
    assert maps > len(BOOK_PATHS) and summary["reduceTasks"] == 0
    names = [f"part-{i:05d}" for i in range(maps)]
    assert sorted(p.name for p in dist.glob("part-*")) == names
    for name in names:  # the same lines in the same order: part by part, byte for byte
        assert (dist / name).read_bytes() == (seq / name).read_bytes(), name
    first = (dist / names[0]).read_text().splitlines()[:3]
    assert first == ["the\t1", "project\t1", "gutenberg\t1"]  # map's pairs, unreduced
    # A built-in with a block fast path and a combiner: neither may reorder or combine.
    doc["spec"]["app"] = {"builtin": "wordcount"}
    doc["spec"]["combine"] = True
    dist, seq, _ = run_both(tmp_path, doc)
    for name in names:
        assert (dist / name).read_bytes() == (seq / name).read_bytes(), name
    assert (dist / names[0]).read_text().splitlines()[:2] == ["The\t1", "Project\t1"]
    assert (dist / "_SUCCESS").exists() and not (dist / "_temporary").exists()
    assert summary["attempts"].get("reduce_succeeded", 0) == 0


# ---- counters ------------------------------------------------------------------------


def test_counters_count_committed_attempts_only(tmp_path: Path) -> None:
    doc = job(
        "counters",
        "Flaky",
        BOOK_PATHS,
        input={"splitSize": "48Ki"},
        reduceTasks=3,
        combine=False,  # combine's count depends on how often it runs
        faultTolerance={"maxTaskAttempts": 4, "speculative": True},
    )
    dist, seq, (summary, oracle) = run_both(tmp_path, doc)
    assert sorted_output(dist) == sorted_output(seq)
    assert summary["attempts"]["map_failed"] > 0 and summary["attempts"]["reduce_failed"] > 0
    assert summary["appCounters"] == oracle["appCounters"]
    counters = oracle["appCounters"]
    assert counters["lines"] == summary["counters"]["map_input_records"]
    assert counters["distinct_words"] == len(sorted_output(seq))
    assert set(counters) == {"lines", "words", "long.words", "distinct_words"}


# ---- bad records -----------------------------------------------------------------------


def poisoned_input(directory: Path) -> tuple[list[str], list[int]]:
    """Two files of words, a few lines poisoned; the byte offsets of those lines."""
    rng = random.Random(5)
    words = ["alpha", "beta", "gamma", "delta", "cursed"]
    offsets: list[int] = []
    paths = []
    for index in range(2):
        lines = [" ".join(rng.choices(words, k=6)) for _ in range(3000)]
        for at in (100 + index, 1700, 2999):
            lines[at] = f"alpha POISON beta {at}"
        data = "".join(line + "\n" for line in lines)
        path = directory / f"poisoned{index}.txt"
        path.write_text(data)
        paths.append(str(path))
        offsets += [len("".join(line + "\n" for line in lines[:at])) for at in (100 + index,)]
    return paths, offsets


def test_bad_records_are_skipped_counted_and_located(tmp_path: Path) -> None:
    paths, offsets = poisoned_input(tmp_path)
    doc = job(
        "skipping",
        "Poisoned",
        paths,
        input={"splitSize": "16Ki"},
        reduceTasks=2,
        faultTolerance={"maxSkippedRecords": 7},
    )
    dist, seq, (summary, oracle) = run_both(tmp_path, doc)
    lines = sorted_output(dist)
    assert lines == sorted_output(seq)
    assert not [line for line in lines if line.startswith(("cursed", "poison"))]
    assert summary["skippedRecords"]["count"] == oracle["skippedRecords"]["count"] == 7
    listed = summary["skippedRecords"]["records"]
    assert sorted(listed) == sorted(oracle["skippedRecords"]["records"])
    assert f"{paths[0]}@{offsets[0]}: ValueError: poisoned line" in " ".join(listed)
    assert any(r.startswith("key 'cursed' (partition ") for r in listed)
    # Each poisoned line's words are gone, not only the pairs after the raise.
    alpha = next(int(x.split("\t")[1]) for x in lines if x.startswith("alpha\t"))
    plain = sum(Path(p).read_text().count("alpha") for p in paths)
    assert alpha == plain - 6


def test_more_bad_records_than_allowed_fail_the_job(tmp_path: Path) -> None:
    paths, _ = poisoned_input(tmp_path)
    doc = job(
        "toomany",
        "Poisoned",
        paths,
        input={"splitSize": "16Ki"},
        reduceTasks=2,
        faultTolerance={"maxSkippedRecords": 6, "maxTaskAttempts": 4},
    )
    for flags, name in (((), "dist"), (("--sequential",), "seq")):
        doc["spec"]["output"]["path"] = str(tmp_path / name)
        result = run_cli("run", str(write_manifest(tmp_path, doc)), "--quiet", *flags)
        assert result.returncode != 0, flags
        assert "more than spec.faultTolerance.maxSkippedRecords = 6" in result.stderr, (
            flags,
            result.stderr[-2000:],
        )
        assert not (tmp_path / name / "_SUCCESS").exists()
        assert not list((tmp_path / name).glob("part-*"))


def test_without_skipping_a_bad_record_fails_the_job_as_before(tmp_path: Path) -> None:
    paths, _ = poisoned_input(tmp_path)
    doc = job("noskip", "Poisoned", paths[:1], faultTolerance={"maxTaskAttempts": 1})
    doc["spec"]["output"]["path"] = str(tmp_path / "out")
    result = run_cli("run", str(write_manifest(tmp_path, doc)), "--quiet")
    assert result.returncode != 0
    assert "poisoned line" in result.stderr
    assert not (tmp_path / "out" / "_SUCCESS").exists()


# ---- hooks -------------------------------------------------------------------------------


def test_teardown_pairs_give_in_mapper_combining(tmp_path: Path) -> None:
    doc = job("inmapper", "InMapper", BOOK_PATHS, input={"splitSize": "32Ki"}, reduceTasks=3)
    dist, seq, (summary, oracle) = run_both(tmp_path, doc)
    words = sorted_output(seq)
    assert sorted_output(dist) == words
    reference = job("reference", "CountedWords", BOOK_PATHS, combine=False)
    reference["spec"]["output"]["path"] = str(tmp_path / "ref")
    result = run_cli("run", str(write_manifest(tmp_path, reference)), "--sequential")
    assert result.returncode == 0, result.stderr
    assert words == sorted_output(tmp_path / "ref")
    assert summary["appCounters"] == oracle["appCounters"]
    assert summary["appCounters"]["reduce_tasks_with_keys"] == 3
    assert (
        summary["appCounters"]["emitted_at_teardown"] == summary["counters"]["map_output_records"]
    )


# ---- formats -------------------------------------------------------------------------------


def test_jsonl_records_and_malformed_lines_as_bad_records(tmp_path: Path) -> None:
    rng = random.Random(3)
    path = tmp_path / "events.jsonl"
    rows = [
        json.dumps({"user": f"u{rng.randint(0, 40)}", "n": rng.randint(1, 9)}) for _ in range(4000)
    ]
    rows[10] = '{"user": "u1", "n": '  # malformed
    rows[2500] = ""  # blank lines are no records
    path.write_text("\n".join(rows) + "\n")
    doc = job(
        "jsonl",
        "JsonFields",
        [str(path)],
        input={"format": "jsonl", "splitSize": "16Ki"},
        reduceTasks=2,
        faultTolerance={"maxSkippedRecords": 1},
    )
    dist, seq, (summary, _) = run_both(tmp_path, doc)
    lines = sorted_output(dist)
    assert lines == sorted_output(seq)
    expected: dict[str, int] = {}
    for row in rows[11:2500] + rows[:10] + rows[2501:]:
        record = json.loads(row)
        expected[record["user"]] = expected.get(record["user"], 0) + record["n"]
    assert lines == sorted(f"{u}\t{n}" for u, n in expected.items())
    offset = sum(len(r) + 1 for r in rows[:10])
    assert summary["skippedRecords"]["records"][0].startswith(f"{path}@{offset}: JSONDecodeError")


def test_whole_file_records_one_split_per_file(tmp_path: Path) -> None:
    books = tmp_path / "books"
    books.mkdir()
    for name in ("pg-grimm.txt", "pg-metamorphosis.txt", "pg-dorian_gray.txt"):
        shutil.copy(BOOKS / name, books / name)
    doc = job(
        "wholefile",
        "FileSizes",
        [str(books)],
        input={"format": "whole-file", "splitSize": "4Ki"},
        reduceTasks=2,
    )
    dist, seq, (summary, _) = run_both(tmp_path, doc)
    assert summary["mapTasks"] == 3
    lines = sorted_output(dist)
    assert lines == sorted_output(seq)
    for line in lines:
        name, value = line.split("\t")
        data = (BOOKS / name).read_bytes()
        assert json.loads(value) == [len(data), data.count(b"\n")]


# ---- tuple keys ----------------------------------------------------------------------------


def test_tuple_keys_sort_element_by_element_for_secondary_sort(tmp_path: Path) -> None:
    rng = random.Random(9)
    events = [(f"user{rng.randint(0, 30)}", rng.randint(-500, 10**6), f"p{i}") for i in range(5000)]
    path = tmp_path / "clicks.txt"
    path.write_text("".join(f"{u} {t} {p}\n" for u, t, p in events))
    doc = job("sessions", "Sessions", [str(path)], input={"splitSize": "16Ki"}, reduceTasks=4)
    dist, seq, _ = run_both(tmp_path, doc)
    lines = sorted_output(dist)
    assert lines == sorted_output(seq)
    expected: dict[str, list[tuple[int, str]]] = {}
    for user, time, page in events:
        expected.setdefault(user, []).append((time, page))
    # Ties in time keep input order (values of one key arrive in input order).
    want = {u: [p for _, p in sorted(v, key=lambda e: e[0])] for u, v in expected.items()}
    got = {line.split("\t")[0]: json.loads(line.split("\t")[1]) for line in lines}
    assert got == want  # one line per user: all a user's keys reached one reduce task
