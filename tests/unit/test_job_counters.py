"""The master's totals: each task's accepted attempt counts once, across reruns and a
master restart; app counters are bounded; skipped records past the limit fail the job."""

from __future__ import annotations

from pathlib import Path

from kubemr import apps, master, metrics
from kubemr import journal as journals
from kubemr.outputdir import OutputDir

from testjobs import small_plan


def state_for(tmp_path: Path, **extra: object) -> tuple[master.JobState, journals.Journal]:
    job = small_plan(tmp_path, **extra)
    output = OutputDir(job.job.spec.output.path)
    journal, replay = master.open_journal(output, job)
    return master.JobState(job, output, journal, replay), journal


def test_a_rerun_map_replaces_its_counters_and_a_restart_keeps_them(tmp_path: Path) -> None:
    state, journal = state_for(tmp_path)
    state.accept("m0.a1", {"map_input_records": 10, "app:lines": 10}, [])
    state.accept("m1.a1", {"map_input_records": 12, "app:lines": 12}, [])
    state.accept("m0.a2", {"map_input_records": 10, "app:lines": 10}, [])  # output lost, rerun
    state.accept("r0.a1", {"reduce_output_records": 3, "app:keys": 3}, [])
    assert state.counters == {"map_input_records": 22, "reduce_output_records": 3}
    assert state.app_counters == {"keys": 3, "lines": 22}
    journal.append(
        {
            "event": "map_done",
            "attempt": "m0.a2",
            "worker": "mapper-0",
            "address": "h:1",
            "records": 2,
            "bytes": 20,
            "counters": {"app:lines": 10},
            "timings": {},
            "skipped": ["in.txt@6: ValueError: x"],
        }
    )
    journal.append({"event": "assigned", "attempt": "r0.a1"})
    for event in ("committing", "committed"):
        journal.append(
            {
                "event": event,
                "index": 0,
                "attempt": "r0.a1",
                "counters": {"app:keys": 3, "skipped_records": 1},
                "timings": {},
            }
        )
    journal.append(
        {
            "event": "committing",
            "index": 1,
            "attempt": "r1.a1",
            "counters": {"app:keys": 9},
            "timings": {},
        }
    )
    journal.close()
    Path(state.output.final_path(0)).write_text("a\t1\n")  # r0's committed part
    state, journal = state_for(tmp_path)  # a restarted master
    journal.close()
    assert state.app_counters == {"keys": 3, "lines": 10}  # r1 never committed: not counted
    assert state.skipped() == (1, ["in.txt@6: ValueError: x"])


def test_app_counter_names_are_bounded_and_exported(tmp_path: Path) -> None:
    state, journal = state_for(tmp_path)
    journal.close()
    many = {f"app:c{i:03d}": 1 for i in range(apps.MAX_COUNTERS + 5)}
    state.accept("m0.a1", many, [])
    counters = state.app_counters
    assert len(counters) == apps.MAX_COUNTERS + 1 and counters[master.OTHER_COUNTERS] == 5
    snap = metrics.snapshot(state.metrics.exposition().decode())
    exported = {s["labels"]["counter"]: s["value"] for s in snap["kubemr_app_counter"]}
    assert exported["c000"] == 1.0 and exported[master.OTHER_COUNTERS] == 5.0
    assert len(exported) == apps.MAX_COUNTERS + 1


def test_skipped_records_past_the_limit_fail_the_job_naming_it(tmp_path: Path) -> None:
    state, journal = state_for(tmp_path, faultTolerance={"maxSkippedRecords": 3})
    journal.close()
    state.accept("m0.a1", {"skipped_records": 2}, ["a", "b"])
    assert not state.too_many_skipped("m0.a2", {"skipped_records": 3}, "c")  # replaces m0's
    assert state.scheduler.error is None
    assert state.too_many_skipped("m1.a1", {"skipped_records": 2}, "in.txt@40: KeyError: k")
    error = state.scheduler.error or ""
    assert "4 bad records skipped, more than spec.faultTolerance.maxSkippedRecords = 3" in error
    assert "in.txt@40: KeyError: k" in error
    snap = metrics.snapshot(state.metrics.exposition().decode())
    assert snap["kubemr_skipped_records"][0]["value"] == 2.0
