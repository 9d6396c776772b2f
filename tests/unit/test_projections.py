"""The master's projections (summary, /status, metric gauges) of one scheduler state and
its figures, driven through the scheduler's real rules."""

from __future__ import annotations

import json

from kubemr import contract, projections
from kubemr.attempts import Kind
from kubemr.partitionsizes import OutputSizes
from kubemr.scheduler import Scheduler
from kubemr.splits import Split

SPLITS = [Split("a.txt", 0, 100), Split("a.txt", 100, 200)]


def state() -> Scheduler:
    """Map 0 done, map 1 failed once and running again, reduce 0 running."""
    s = Scheduler(SPLITS, 1, barrier=False, max_attempts=3, heartbeat_timeout=10.0)
    mapper = s.register("mapper-0", Kind.MAP, "h:1", 0.0)
    reducer = s.register("reducer-0", Kind.REDUCE, "", 0.0)
    first = s.assign(mapper, 0.0)
    assert first is not None and s.map_succeeded(first.attempt, OutputSizes.of([(2, 20)]), 1.0)
    second = s.assign(mapper, 1.0)
    assert second is not None and s.attempt_failed(second.attempt, "ValueError: x", 2.0)
    assert s.assign(mapper, 2.0) is not None
    assert s.assign(reducer, 2.0) is not None
    return s


FIGURES = projections.Figures(
    job="wc",
    app="builtin:wordcount",
    maps=2,
    reduce_tasks=1,
    shuffle_mode="streaming",
    combine=True,
    partitioner="hash",
    started=1000.0,
    counters={"map_input_records": 5},
    app_counters={"lines": 5},
    skipped=(1, ["a.txt@3: ValueError: x"]),
    master_restarts=1,
    journal={"records": 9, "syncs": 4, "seconds": 0.01},
    outputs=["part-00000"],
    step=(0, 2),
    last_progress=1001.0,
)


def test_the_status_report_counts_tasks_workers_and_attempts() -> None:
    report = projections.status(state(), FIGURES)
    assert (report.job, report.phase) == ("wc", "Mapping")
    assert report.maps == contract.TaskCount(total=2, done=1)
    assert report.reduces == contract.TaskCount(total=1, done=0)
    assert report.workers == 2 and report.message == ""
    assert report.attempts == {"map_succeeded": 1, "map_failed": 1, "map_running": 1} | {
        "reduce_running": 1
    }
    assert (report.step, report.steps) == (1, 2)
    assert report.skipped_records == 1 and report.summary is None
    read = contract.read_status(json.loads(json.dumps(report.document())))
    assert read == report, "the operator reads back what the master serves"


def test_the_summary_holds_the_figures_and_the_final_status_carries_it() -> None:
    s = state()
    summary = projections.summary(s, FIGURES, 1010.0)
    assert summary["wallSeconds"] == 10.0
    assert summary["skippedRecords"] == {"count": 1, "records": ["a.txt@3: ValueError: x"]}
    assert summary["journal"] == {"records": 9, "syncs": 4, "seconds": 0.01}
    assert (summary["mapTasks"], summary["outputs"]) == (2, ["part-00000"])
    assert summary["workerNames"] == ["mapper-0", "reducer-0"]
    final = projections.status(s, FIGURES, summary)
    assert final.summary is not None
    assert final.document()["summary"]["wallSeconds"] == 10.0


def test_the_gauges_count_live_workers_and_attempts_by_outcome() -> None:
    gauges = projections.gauges(state(), FIGURES, 5.0)
    assert gauges.tasks == {"map": 2, "reduce": 1}
    assert gauges.completed == {"map": 1, "reduce": 0}
    assert gauges.workers == {"map": 1, "reduce": 1}
    assert gauges.max_lag == {"map": 3.0, "reduce": 3.0}
    assert gauges.attempts["map", "failed"] == 1 and gauges.attempts["reduce", "lost"] == 0
    assert gauges.running and not gauges.failed
    assert (gauges.last_progress, gauges.master_restarts) == (1001.0, 1)
