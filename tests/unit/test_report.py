"""The job report: a projection of the scheduler's state (driven through its real rules)."""

from __future__ import annotations

import pytest
from kubemr import report as reports
from kubemr.attempts import Kind
from kubemr.partitionsizes import OutputSizes
from kubemr.scheduler import Scheduler
from kubemr.splits import Split

SPLITS = [Split("a.txt", 0, 100), Split("a.txt", 100, 250), Split("b.txt", 0, 50)]


def figures(**extra: object) -> reports.Figures:
    fields: dict[str, object] = {"job": "wc", "app": "wordcount", "started": 1000.0}
    fields.update(extra)
    return reports.Figures(**fields)  # type: ignore[arg-type]


def running_job() -> tuple[Scheduler, dict[str, str]]:
    """Map 0 done, map 1 half done, map 2 idle, reduce 0 running; times 0..5."""
    s = Scheduler(SPLITS, 2, barrier=False, max_attempts=2, heartbeat_timeout=10.0)
    mapper = s.register("mapper-0", Kind.MAP, "10.0.0.1:7071", 0.0)
    reducer = s.register("reducer-0", Kind.REDUCE, "", 0.0)
    first = s.assign(mapper, 1.0)
    assert first is not None
    assert s.map_succeeded(first.attempt, OutputSizes.of([(3, 30), (1, 10)]), 3.0)
    second = s.assign(mapper, 3.0)
    assert second is not None and s.progress(second.attempt, 0.5, 4.0)
    reduce = s.assign(reducer, 2.0)
    assert reduce is not None
    return s, {"m0": first.attempt, "m1": second.attempt, "r0": reduce.attempt}


def test_progress_rows_and_workers_of_a_running_job() -> None:
    s, ids = running_job()
    counters = {ids["m0"]: {"map_output_records": 4}}
    got = reports.project(s, figures(counters={"x": 2}, attempt_counters=counters), 5.0, 1005.0)
    assert got.phase == "Mapping" and not got.final and got.elapsed == 5.0
    assert got.maps == reports.PhaseProgress(total=3, done=1, running=1, failed_attempts=0)
    assert got.reduces.done == 0 and got.reduces.running == 1
    assert got.step == "map 1/3 done, 1 running; reduce 0/2 committed (2 workers)"
    rows = {(t.kind, t.index): t for t in got.tasks}
    done, half, idle, reducing = rows["map", 0], rows["map", 1], rows["map", 2], rows["reduce", 0]
    assert (done.state, done.worker, done.seconds, done.progress) == ("done", "mapper-0", 2.0, 1.0)
    assert (done.bytes_in, done.bytes_out, done.records_out) == (100, 40, 4)
    assert done.label == "a.txt[0:100]"
    assert (half.state, half.attempt, half.seconds, half.progress) == (
        "running",
        ids["m1"],
        2.0,
        0.5,
    )
    assert half.bytes_out is None
    assert (idle.state, idle.attempt, idle.seconds, idle.worker) == ("idle", "", None, "")
    assert (reducing.state, reducing.bytes_in, reducing.label) == ("running", 30, "partition 0")
    assert got.counters == {"x": 2}
    workers = {w.name: w for w in got.workers}
    assert workers["mapper-0"].attempt == ids["m1"] and workers["mapper-0"].succeeded == 1
    assert workers["mapper-0"].last_heartbeat == 2.0 and workers["mapper-0"].alive
    assert [(p.index, p.bytes, p.ratio) for p in got.partitions] == [(0, 30, 1.5), (1, 10, 0.5)]
    assert got.failure is None


def test_slowest_tasks_compare_with_the_median_of_their_kind() -> None:
    s, _ = running_job()
    got = reports.project(s, figures(), 5.0, 1005.0)
    # The running reduce task waits for maps (it started at once): not a straggler yet.
    assert [(x.kind, x.index, x.seconds, x.running) for x in got.slowest] == [
        ("map", 0, 2.0, False),
        ("map", 1, 2.0, True),
    ]
    assert [x.ratio for x in got.slowest] == [1.0, 1.0]
    s.map_succeeded(next(iter(s.maps[1].running)), OutputSizes.of([(1, 1), (1, 1)]), 6.0)
    s.assign(next(w.id for w in s.workers.values() if w.kind is Kind.MAP), 6.0)
    s.map_succeeded(next(iter(s.maps[2].running)), OutputSizes.of([(1, 1), (1, 1)]), 7.0)
    later = reports.project(s, figures(), 12.0, 1012.0)
    first = later.slowest[0]
    assert (first.kind, first.index, first.seconds, first.running) == ("reduce", 0, 10.0, True)
    assert first.ratio is None  # no reduce task finished: nothing to compare with


def test_throughput_spreads_each_attempts_bytes_over_its_run() -> None:
    """Summed over the chart, the rates give back the bytes read: map 0 whole (100), and
    half of map 1 (75) while it runs."""
    s, _ = running_job()
    points = reports.project(s, figures(), 5.0, 1005.0).throughput
    assert len(points) == reports.THROUGHPUT_BUCKETS
    width = 5.0 / reports.THROUGHPUT_BUCKETS
    assert sum(p.map_bytes_per_second * width for p in points) == pytest.approx(175, abs=1)
    early = [p for p in points if p.t < 1.0]
    assert early and all(p.map_bytes_per_second == 0 for p in early)
    during = [p for p in points if 1.0 < p.t < 3.0]
    assert all(p.map_bytes_per_second == pytest.approx(50, abs=0.1) for p in during)


def test_a_backup_attempt_marks_its_task_speculative() -> None:
    s = Scheduler(SPLITS[:2], 1, barrier=True, max_attempts=2, heartbeat_timeout=10.0)
    s.speculative = True
    fast = s.register("mapper-0", Kind.MAP, "a:1", 0.0)
    slow = s.register("mapper-1", Kind.MAP, "b:1", 0.0)
    one, two = s.assign(fast, 0.0), s.assign(slow, 0.0)
    assert one is not None and two is not None
    s.map_succeeded(one.attempt, OutputSizes.of([(1, 1)]), 1.0)
    backup = s.assign(fast, 10.0)
    assert backup is not None and backup.index == two.index
    rows = reports.project(s, figures(), 11.0, 1011.0).tasks
    assert [r.speculative for r in rows if r.kind == "map"] == [False, True]


def test_a_failed_job_names_the_task_its_error_workers_and_logs() -> None:
    s, ids = running_job()
    assert s.attempt_failed(ids["r0"], "Traceback...\nValueError: first", 6.0)
    reducer = next(w.id for w in s.workers.values() if w.kind is Kind.REDUCE)
    again = s.assign(reducer, 6.0)
    assert again is not None
    assert s.attempt_failed(again.attempt, "Traceback...\nValueError: <b>second</b>", 7.0)
    got = reports.project(s, figures(logs="kubectl logs {worker}"), 8.0, 1008.0)
    assert got.phase == "Failed" and got.final
    failure = got.failure
    assert failure is not None
    assert failure.task == "reduce task 0 (partition 0)" and failure.attempts == 2
    assert failure.error.endswith("ValueError: <b>second</b>")
    assert failure.workers == ["reducer-0"] and failure.logs == ["kubectl logs reducer-0"]
    assert got.step == "failed: reduce task 0 (partition 0)"
    assert next(t for t in got.tasks if t.kind == "reduce" and t.index == 0).state == "failed"
    assert got.reduces.failed_attempts == 2
    assert next(w for w in got.workers if w.name == "reducer-0").failed == 2


def test_a_job_failed_for_another_reason_keeps_the_error() -> None:
    s, _ = running_job()
    s.fail("the journal is gone")
    failure = reports.project(s, figures(), 8.0, 1008.0).failure
    assert failure is not None and (failure.task, failure.error) == ("", "the journal is gone")


def test_the_json_form_reads_back_and_a_bad_one_names_the_field() -> None:
    s, _ = running_job()
    got = reports.project(s, figures(phase_seconds={"map": 1.5}), 5.0, 1005.0)
    document = got.dump()
    assert "bytesIn" in document["tasks"][0] and "phaseSeconds" in document
    assert reports.load({"phase": "Failed", "report": document}, "x/_FAILED") == got
    assert reports.load(document, "bare.json") == got
    del document["maps"]["total"]
    with pytest.raises(reports.ReportError, match=r"x/_FAILED: .*maps\.total"):
        reports.load({"report": document}, "x/_FAILED")
