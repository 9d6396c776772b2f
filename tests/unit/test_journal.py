"""The master's journal: what a restarted master resumes from, and when it starts over."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from kubemr import journal as journals
from kubemr import master, plan
from kubemr.attempts import Kind
from kubemr.outputdir import OutputDir

from testjobs import small_plan


def records(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def first_run(tmp_path: Path, job: plan.JobPlan) -> tuple[OutputDir, journals.Journal]:
    """A fresh journal with map 0 done, maps 1 and 2 assigned, reduce 0 committed."""
    output = OutputDir(job.job.spec.output.path)
    journal, replay = master.open_journal(output, job)
    assert replay is None
    for event in (
        {"event": "assigned", "attempt": "m0.a1"},
        {"event": "assigned", "attempt": "m1.a1"},
        {"event": "failed", "attempt": "m1.a1", "error": "ValueError: bad"},
        {"event": "assigned", "attempt": "m1.a2"},
        {
            "event": "map_done",
            "attempt": "m0.a1",
            "worker": "mapper-0",
            "address": "h:1",
            "records": 7,
            "bytes": 70,
            "counters": {"map_input_records": 7},
            "timings": {"map": 0.5},
        },
        {"event": "assigned", "attempt": "r0.a1"},
        {
            "event": "committing",
            "index": 0,
            "attempt": "r0.a1",
            "counters": {"reduce_output_records": 2},
            "timings": {},
        },
    ):
        journal.append(event)
    Path(output.final_path(0)).write_text("a\t1\n")
    journal.append({"event": "committed", "index": 0, "attempt": "r0.a1"})
    return output, journal


def test_a_fresh_job_starts_a_journal_under_temporary(tmp_path: Path) -> None:
    job = small_plan(tmp_path)
    output, journal = first_run(tmp_path, job)
    journal.close()
    path = Path(journals.journal_path(output.path))
    assert path == Path(output.path) / "_temporary" / "_master" / "journal.jsonl"
    header, start = records(path)[:2]
    assert header == {
        "event": "job",
        "format": journals.FORMAT,
        "job": "wc",
        "fingerprint": journals.fingerprint(job),
    }
    assert start["event"] == "start"
    assert journal.records == 10


def test_the_same_job_resumes_where_the_journal_ends(tmp_path: Path) -> None:
    job = small_plan(tmp_path)
    _, journal = first_run(tmp_path, job)
    journal.close()
    resumed, replay = master.open_journal(OutputDir(job.job.spec.output.path), job)
    assert replay is not None
    recovery = replay.recovery
    assert recovery.attempts == {(Kind.MAP, 0): 1, (Kind.MAP, 1): 2, (Kind.REDUCE, 0): 1}
    assert recovery.failures == {(Kind.MAP, 1): ["ValueError: bad"]}
    ref = recovery.map_outputs[0]
    assert (ref.attempt, ref.name, ref.address, ref.records, ref.bytes) == (
        "m0.a1",
        "mapper-0",
        "h:1",
        7,
        70,
    )
    assert list(recovery.map_outputs) == [0]
    assert recovery.committed == {0: "r0.a1"}
    assert replay.starts == 1 and replay.first_start is not None
    assert replay.totals() == ({"map_input_records": 7, "reduce_output_records": 2}, {"map": 0.5})
    resumed.close()
    assert [r["event"] for r in records(resumed.path)][-1] == "start"


def test_a_torn_last_line_is_ignored_and_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = small_plan(tmp_path)
    _, journal = first_run(tmp_path, job)
    journal.stream.write(b'{"event":"map_done","attempt":"m1.a2","wor')  # the master died here
    journal.close()
    contents = journals.read(Path(journal.path))
    assert [r["event"] for r in contents.records][-1] == "committed"
    assert contents.torn == len(b'{"event":"map_done","attempt":"m1.a2","wor')
    with caplog.at_level(logging.WARNING):
        resumed, replay = master.open_journal(OutputDir(job.job.spec.output.path), job)
    assert "ignoring a torn last line" in caplog.text
    assert replay is not None and list(replay.recovery.map_outputs) == [0]
    resumed.append({"event": "assigned", "attempt": "m1.a3"})
    resumed.close()
    assert [r["event"] for r in records(resumed.path)][-2:] == ["start", "assigned"]


def test_a_changed_manifest_starts_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, journal = first_run(tmp_path, small_plan(tmp_path))
    journal.close()
    changed = small_plan(tmp_path, reduce_tasks=3)
    output = OutputDir(changed.job.spec.output.path)
    with caplog.at_level(logging.WARNING):
        fresh, replay = master.open_journal(output, changed)
    fresh.close()
    assert replay is None
    assert "written for another job or manifest" in caplog.text
    assert "starting the job over" in caplog.text
    assert output.parts() == []  # the earlier manifest's committed output is gone
    assert [r["event"] for r in records(fresh.path)] == ["job", "start"]
    assert records(fresh.path)[0]["fingerprint"] == journals.fingerprint(changed)


def test_refusing_a_journal_leaves_the_output_to_the_caller(tmp_path: Path) -> None:
    """Opening a journal never clears output: resume says no, the master clears."""
    _, journal = first_run(tmp_path, small_plan(tmp_path))
    journal.close()
    changed = small_plan(tmp_path, reduce_tasks=3)
    output = OutputDir(changed.job.spec.output.path)
    before = Path(journal.path).read_bytes()
    assert journals.resume(output, changed) is None
    assert [Path(p).name for p in output.parts()] == ["part-00000"]
    assert Path(journal.path).read_bytes() == before


def test_an_unreadable_journal_starts_over(tmp_path: Path) -> None:
    job = small_plan(tmp_path)
    path = Path(journals.journal_path(job.job.spec.output.path))
    path.parent.mkdir(parents=True)
    path.write_text('{"event": "start", "time": 1}\n')  # no header
    fresh, replay = master.open_journal(OutputDir(job.job.spec.output.path), job)
    fresh.close()
    assert replay is None and [r["event"] for r in records(path)] == ["job", "start"]


def test_a_part_file_renamed_before_the_master_died_is_kept(tmp_path: Path) -> None:
    """``committing`` journaled, rename done, ``committed`` not journaled: keep the part."""
    job = small_plan(tmp_path)
    output, journal = first_run(tmp_path, job)
    journal.append(
        {
            "event": "committing",
            "index": 1,
            "attempt": "r1.a1",
            "counters": {"reduce_output_records": 5},
            "timings": {},
        }
    )
    Path(output.final_path(1)).write_text("b\t1\n")
    journal.close()
    resumed, replay = master.open_journal(output, job)
    resumed.close()
    assert replay is not None and replay.recovery.committed == {0: "r0.a1", 1: "r1.a1"}
    assert records(resumed.path)[-2] == {"event": "committed", "index": 1, "attempt": "r1.a1"}
    assert Path(output.final_path(1)).read_text() == "b\t1\n"
    assert replay.totals()[0] == {"map_input_records": 7, "reduce_output_records": 7}


def test_a_commit_that_never_renamed_runs_again(tmp_path: Path) -> None:
    job = small_plan(tmp_path)
    output, journal = first_run(tmp_path, job)
    journal.append(
        {
            "event": "committing",
            "index": 1,
            "attempt": "r1.a1",
            "counters": {"reduce_output_records": 5},
            "timings": {},
        }
    )
    journal.close()
    resumed, replay = master.open_journal(output, job)
    resumed.close()
    assert replay is not None and replay.recovery.committed == {0: "r0.a1"}
    assert replay.totals()[0] == {"map_input_records": 7, "reduce_output_records": 2}


def test_part_files_the_journal_does_not_vouch_for_are_not_trusted(tmp_path: Path) -> None:
    job = small_plan(tmp_path)
    output, journal = first_run(tmp_path, job)
    journal.close()
    Path(output.final_path(1)).write_text("stale\t9\n")  # never journaled as committing
    Path(output.final_path(0)).unlink()  # journaled as committed, but gone
    resumed, replay = master.open_journal(output, job)
    resumed.close()
    assert replay is not None and replay.recovery.committed == {}
    assert output.parts() == []


def test_a_newer_master_takes_the_epoch_and_the_older_one_writes_nothing(
    tmp_path: Path,
) -> None:
    job = small_plan(tmp_path)
    output = OutputDir(job.job.spec.output.path)
    older, _ = master.open_journal(output, job)
    older.append({"event": "assigned", "attempt": "m0.a1"})
    newer, replayed = master.open_journal(output, job)
    assert replayed is not None
    assert older.epoch is not None and newer.epoch is not None
    assert (older.epoch.number, newer.epoch.number) == (1, 2)
    before = Path(older.path).read_bytes()
    with pytest.raises(journals.SupersededError, match="another master holds the job"):
        older.append({"event": "assigned", "attempt": "m1.a1"})
    assert Path(older.path).read_bytes() == before
    newer.append({"event": "assigned", "attempt": "m1.a1"})
    newer.check_held()
    older.close()
    newer.close()


def test_a_job_that_ended_fences_every_master(tmp_path: Path) -> None:
    """Finishing removes the temporary area, epoch included: a late master stops."""
    job = small_plan(tmp_path)
    output = OutputDir(job.job.spec.output.path)
    journal, _ = master.open_journal(output, job)
    journal.close()
    output.finish({})
    with pytest.raises(journals.SupersededError, match="no epoch"):
        journal.check_held()


def test_concurrent_records_share_fsyncs_and_each_waits_for_its_own(tmp_path: Path) -> None:
    """Group commit: records added while a batch is written wait for the next batch, so
    64 concurrent requests take far fewer fsyncs than records; none returns before its
    record is in the file, and the file holds them in the order they were added."""
    job = small_plan(tmp_path)
    journal, _ = master.open_journal(OutputDir(job.job.spec.output.path), job)
    syncs_before, added = journal.syncs, journal.added
    early: list[str] = []

    async def request(index: int) -> None:
        attempt = f"m{index}.a1"
        await journal.durable(journal.add({"event": "assigned", "attempt": attempt}))
        if attempt not in [r.get("attempt") for r in records(journal.path)]:
            early.append(attempt)

    async def scenario() -> None:
        await asyncio.gather(*(request(i) for i in range(64)))

    asyncio.run(scenario())
    journal.close()
    assert not early, f"returned before their record was written: {early}"
    assigned = [r["attempt"] for r in records(journal.path) if r["event"] == "assigned"]
    assert assigned == [f"m{i}.a1" for i in range(64)]
    assert journal.added == added + 64 and journal.records == journal.added
    assert journal.syncs - syncs_before < 64 / 2, "batches, not one fsync per record"


def test_a_batch_that_fails_fails_every_later_record_too(tmp_path: Path) -> None:
    """A write that fails (here a real EBADF from the file's descriptor) reaches every
    waiter of its batch and every later one: no record is written after a lost one."""
    job = small_plan(tmp_path)
    journal, _ = master.open_journal(OutputDir(job.job.spec.output.path), job)
    assert isinstance(journal, journals.FileJournal)
    before = Path(journal.path).read_bytes()
    descriptor = journal.stream.fileno()
    saved = os.dup(descriptor)
    os.close(descriptor)

    async def scenario() -> list[BaseException | None]:
        first = journal.add({"event": "assigned", "attempt": "m0.a1"})
        waits = [journal.durable(first)]
        waits.append(journal.durable(journal.add({"event": "assigned", "attempt": "m1.a1"})))
        results = await asyncio.gather(*waits, return_exceptions=True)
        later = journal.add({"event": "assigned", "attempt": "m2.a1"})
        try:
            await journal.durable(later)
        except OSError as exc:
            results.append(exc)
        return list(results)

    results = asyncio.run(scenario())
    assert len(results) == 3 and all(isinstance(r, OSError) for r in results), results
    assert Path(journal.path).read_bytes() == before
    os.dup2(saved, descriptor)  # give the stream its file back, so that it closes
    os.close(saved)
    journal.close()


def test_a_superseded_master_writes_no_batch(tmp_path: Path) -> None:
    job = small_plan(tmp_path)
    output = OutputDir(job.job.spec.output.path)
    older, _ = master.open_journal(output, job)
    newer, _ = master.open_journal(output, job)
    before = Path(older.path).read_bytes()

    async def scenario() -> None:
        await older.durable(older.add({"event": "assigned", "attempt": "m1.a1"}))

    with pytest.raises(journals.SupersededError):
        asyncio.run(scenario())
    assert Path(older.path).read_bytes() == before
    older.close()
    newer.close()
