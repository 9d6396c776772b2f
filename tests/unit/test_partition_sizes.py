"""The master's location state is O(M + R): a map output's per-partition sizes are added to
running sums per reduce partition (once per map task) and journaled as checkpoints, not
kept per output; a restarted master restores them from the last checkpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from kubemr import journal as journals
from kubemr import master
from kubemr import report as reports
from kubemr.attempts import Kind
from kubemr.outputdir import OutputDir
from kubemr.partitionsizes import CHECKPOINT, OutputSizes, PartitionSizes
from kubemr.plan import JobPlan
from kubemr.scheduler import Scheduler
from kubemr.splits import Split

from testjobs import small_plan


def test_each_map_task_is_counted_once() -> None:
    sizes = PartitionSizes(maps=3, reduces=2)
    assert sizes.add(0, OutputSizes.of([(1, 10), (2, 20)]))
    assert sizes.add(2, OutputSizes.of([(3, 30), (0, 0)]))
    rerun = OutputSizes.of([(5, 50), (5, 50)])
    assert not sizes.add(0, rerun)  # a rerun of map 0: its first sizes stand
    assert sizes.sizes() == [(4, 40), (2, 20)]
    assert sizes.counted == 2


def test_an_output_without_r_sizes_of_each_is_not_counted() -> None:
    """The report's two columns come from a mapper: a short one is ignored, not zipped."""
    sizes = PartitionSizes(maps=3, reduces=2)
    assert not sizes.add(0, OutputSizes([1, 2], [10]))
    assert not sizes.add(1, OutputSizes([1], [10, 20]))
    assert sizes.add(2, OutputSizes([1, 2], [10, 20]))
    assert sizes.sizes() == [(1, 10), (2, 20)] and sizes.counted == 1


def test_a_checkpoint_is_due_once_the_journal_grew_by_the_last_ones_size() -> None:
    sizes = PartitionSizes(maps=4, reduces=2)
    assert not sizes.checkpoint_due(0)  # nothing counted since the last
    sizes.add(0, OutputSizes.of([(1, 10), (1, 10)]))
    assert sizes.checkpoint_due(0)
    record = sizes.checkpoint()
    assert record == {"event": CHECKPOINT, "maps": [0], "records": [1, 1], "bytes": [10, 10]}
    sizes.checkpointed(1000, 1100)  # it took 100 bytes
    sizes.add(1, OutputSizes.of([(1, 10), (1, 10)]))
    assert not sizes.checkpoint_due(1150)
    assert sizes.checkpoint_due(1200)
    assert sizes.checkpoint_due(1150, map_phase_over=True)  # the last map output is in
    assert sizes.checkpoint()["maps"] == [1]
    assert not sizes.checkpoint_due(5000, map_phase_over=True)  # nothing new since


def test_restore_takes_the_sums_and_marks_their_maps_counted() -> None:
    sizes = PartitionSizes(maps=3, reduces=2)
    sizes.restore([4, 2], [40, 20], [0, 2])
    assert sizes.sizes() == [(4, 40), (2, 20)] and sizes.counted == 2
    assert not sizes.add(2, OutputSizes.of([(1, 1), (1, 1)]))
    assert sizes.add(1, OutputSizes.of([(1, 1), (1, 1)]))
    assert sizes.sizes() == [(5, 41), (3, 21)]


def test_a_lost_output_rerun_is_not_counted_twice_and_the_report_shows_the_sums() -> None:
    splits = [Split("in.txt", i * 10, i * 10 + 10) for i in range(2)]
    state = Scheduler(splits, 2, barrier=False, max_attempts=4, heartbeat_timeout=10.0)
    mapper = state.register("mapper-0", Kind.MAP, "h:1", 0.0)
    first = state.assign(mapper, 0.0)
    assert first is not None and state.map_succeeded(
        first.attempt, OutputSizes.of([(3, 30), (1, 10)]), 1.0
    )
    output = state.maps[0].output
    assert output is not None and (output.records, output.bytes) == (4, 40)
    state.worker_lost(mapper, 2.0)  # map 0's output is gone with its worker
    again = state.register("mapper-1", Kind.MAP, "h:2", 2.0)
    rerun = state.assign(again, 2.0)
    assert rerun is not None and rerun.index == 0
    assert state.map_succeeded(rerun.attempt, OutputSizes.of([(3, 30), (1, 10)]), 3.0)
    assert state.sizes.sizes() == [(3, 30), (1, 10)]
    got = reports.project(state, reports.Figures(job="wc", app="wc", started=0.0), 3.0, 3.0)
    assert [(p.index, p.bytes, p.records) for p in got.partitions] == [(0, 30, 3), (1, 10, 1)]
    assert got.sized_maps == 1
    rows = {(r.kind, r.index): r for r in got.tasks}
    assert (rows["map", 0].bytes_out, rows["map", 0].records_out) == (40, 4)
    assert rows["reduce", 1].bytes_in == 10


def fresh(tmp_path: Path) -> tuple[JobPlan, OutputDir, journals.Journal]:
    """A small job (2 reduce tasks) and its new journal."""
    job = small_plan(tmp_path, reduce_tasks=2)
    output = OutputDir(job.job.spec.output.path)
    journal, _ = master.open_journal(output, job)
    return job, output, journal


def restart(job: JobPlan, output: OutputDir) -> master.JobState:
    """A restarted master's state, resumed from the journal (closed again)."""
    journal, replay = master.open_journal(output, job)
    journal.close()
    return master.JobState(job, output, journal, replay)


def test_the_journal_holds_totals_and_checkpoints_and_a_restart_restores_them(
    tmp_path: Path,
) -> None:
    job, output, journal = fresh(tmp_path)
    state = master.JobState(job, output, journal)
    mapper = state.scheduler.register("mapper-0", Kind.MAP, "h:1", 0.0)
    for index, partitions in enumerate(([(3, 30), (1, 10)], [(2, 20), (2, 20)])):
        assignment = state.scheduler.assign(mapper, 0.0)
        assert assignment is not None and assignment.index == index
        assert state.map_output(assignment.attempt, OutputSizes.of(partitions), {}, {}, [], 1.0)
    asyncio.run(state.durable())  # as ReportTask does before it answers
    journal.close()
    lines = [json.loads(line) for line in Path(journal.path).read_text().splitlines()]
    done = [r for r in lines if r["event"] == "map_done"]
    assert [(r["records"], r["bytes"]) for r in done] == [(4, 40), (4, 40)]
    assert not any("partitions" in r for r in done)
    checkpoints = [r for r in lines if r["event"] == CHECKPOINT]
    assert checkpoints[-1]["records"] == [5, 3] and checkpoints[-1]["bytes"] == [50, 30]
    assert sorted(i for c in checkpoints for i in c["maps"]) == [0, 1]

    restarted = restart(job, output)
    assert restarted.scheduler.sizes.sizes() == [(5, 50), (3, 30)]
    assert restarted.scheduler.sizes.counted == 2
    recovered = restarted.scheduler.maps[1].output
    assert recovered is not None and (recovered.records, recovered.bytes) == (4, 40)


def test_outputs_journaled_after_the_last_checkpoint_are_recovered_without_sizes(
    tmp_path: Path,
) -> None:
    job, output, journal = fresh(tmp_path)
    journal.append({"event": "assigned", "attempt": "m0.a1"})
    journal.append(
        {
            "event": "map_done",
            "attempt": "m0.a1",
            "worker": "mapper-0",
            "address": "h:1",
            "records": 4,
            "bytes": 40,
            "counters": {},
            "timings": {},
        }
    )  # the master died before a checkpoint counted it
    journal.close()
    restarted = restart(job, output)
    sizes = restarted.scheduler.sizes
    assert sizes.sizes() == [(0, 0), (0, 0)] and sizes.counted == 0
    assert restarted.scheduler.maps_done == 1
    now = 0.0
    report = reports.project(
        restarted.scheduler, reports.Figures(job="wc", app="wc", started=0.0), now, now
    )
    assert report.sized_maps == 0 and report.maps.done == 1
