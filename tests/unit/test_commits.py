"""The commit sequence (kubemr.commits) over a real journal and output directory: with
group commit an await separates the intent from the rename, yet a task commits once, and
never an attempt lost meanwhile."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from kubemr import master
from kubemr.attempts import Kind
from kubemr.outputdir import OutputDir
from kubemr.partitionsizes import OutputSizes

from testjobs import small_plan


def finished_reduce(tmp_path: Path) -> tuple[master.JobState, str]:
    """A job with every map done and reduce task 0's attempt finished, its part file
    written."""
    job = small_plan(tmp_path, reduce_tasks=1)
    output = OutputDir(job.job.spec.output.path)
    journal, _ = master.open_journal(output, job)
    state = master.JobState(job, output, journal)
    scheduler = state.scheduler
    mapper = scheduler.register("mapper-0", Kind.MAP, "h:1", 0.0)
    while (task := scheduler.assign(mapper, 0.0)) is not None:
        assert state.map_output(task.attempt, OutputSizes.of([(1, 1)]), {}, {}, [], 0.0)
    task = scheduler.assign(scheduler.register("reducer-0", Kind.REDUCE, "", 0.0), 0.0)
    assert task is not None
    temp = Path(output.temp_path(task.attempt, 0))
    temp.parent.mkdir(parents=True, exist_ok=True)
    temp.write_text(f"{task.attempt}\n")
    return state, task.attempt


def events(state: master.JobState) -> list[tuple[str, str]]:
    lines = Path(state.journal.path).read_text().splitlines()
    return [(r["event"], r.get("attempt", "")) for r in map(json.loads, lines)]


def test_a_report_repeated_while_its_commit_is_journaled_commits_once(
    tmp_path: Path,
) -> None:
    """The worker's report arrives twice (a retried call) while the first one's intent is
    being made durable: the second waits for the task, finds it done, commits nothing."""
    state, attempt = finished_reduce(tmp_path)

    async def scenario() -> list[float | None]:
        reports = [state.commits.commit(attempt, {}, {}, [], 1.0) for _ in range(3)]
        results = await asyncio.gather(*reports)
        await state.durable()
        return list(results)

    results = asyncio.run(scenario())
    state.journal.close()
    assert [r is not None for r in results] == [True, False, False]
    assert Path(state.output.final_path(0)).read_text() == f"{attempt}\n"
    commits = [e for e in events(state) if e[0] in ("committing", "committed", "failed")]
    assert commits == [("committing", attempt), ("committed", attempt)]
    assert state.scheduler.reduces_done == 1
    assert state.scheduler.attempts_by_outcome().get("reduce_failed") is None


def test_an_attempt_lost_while_its_intent_is_written_is_not_committed(tmp_path: Path) -> None:
    state, attempt = finished_reduce(tmp_path)
    worker = state.scheduler.attempts[attempt].worker

    async def scenario() -> float | None:
        commit = asyncio.ensure_future(state.commits.commit(attempt, {}, {}, [], 1.0))
        await asyncio.sleep(0)  # the intent is recorded, its batch being written
        state.scheduler.worker_lost(worker, 2.0)  # the reducer dies meanwhile
        return await commit

    assert asyncio.run(scenario()) is None
    state.journal.close()
    assert not Path(state.output.final_path(0)).exists()
    assert ("committing", attempt) in events(state)
    assert ("committed", attempt) not in events(state)
    assert state.scheduler.reduces_done == 0
