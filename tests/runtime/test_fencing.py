"""At most one master writes a job: two real master processes on one journal and one
output directory, and the earlier one never commits once the later one started.

Master A runs the job with its workers until every reduce attempt is open mid-write
(apps/gated.py holds them); master B then starts on the same manifest and output, and
takes the job's epoch. The gate opens: A's reducers finish and report to A, whose check
of the epoch before the commit fails. A exits superseded with no part file in place; B,
given workers of its own, finishes the job, equal to the oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubemr.contract import EXIT_SUPERSEDED
from roles import Job, journal_records, poll

from testjobs import APPS, manifest, sorted_output, word_input

Oracle = Callable[[dict[str, Any]], list[str]]

JOB_DEADLINE = 120.0
"""Seconds a master may take to end (superseded, or the job done)."""


def test_a_superseded_master_never_commits_and_the_newer_one_finishes(
    tmp_path: Path, job_roles: Callable[[dict[str, Any]], Job], oracle: Oracle
) -> None:
    gate = tmp_path / "gate"
    doc = manifest(
        "fenced",
        {"module": f"{APPS / 'gated.py'}:Gated", "args": {"gate": str(gate)}},
        word_input(tmp_path, files=2, lines=200),
        tmp_path / "out",
        input={"splitSize": "8Ki"},
        reduceTasks=2,
        reducer={"replicas": 2},
        faultTolerance={"heartbeatTimeout": "60s", "speculative": False},
    )
    job = job_roles(doc)
    first = job.master("master-a")
    job.worker("mapper", "mapper-a", master="master-a")
    for index in range(2):
        job.worker("reducer", f"reducer-a{index}", master="master-a")
    temporary = job.output / "_temporary"
    poll(
        "both reduce attempts of master A write",
        lambda: len(list(temporary.glob("r*/part-*"))) == 2,
    )

    second = job.master("master-b")
    poll("master B serves (it took the epoch)", lambda: job.serving("master-b"))
    assert [r["event"] for r in journal_records(job.output)].count("start") == 2
    gate.touch()

    assert first.wait(JOB_DEADLINE) == EXIT_SUPERSEDED, first.log()
    assert "superseded" in first.log()
    assert list(job.output.glob("part-*")) == []  # A committed nothing
    events = [r["event"] for r in journal_records(job.output)]
    assert "committing" not in events, events
    job.worker("mapper", "mapper-b", master="master-b")
    job.worker("reducer", "reducer-b", master="master-b")
    assert second.wait(JOB_DEADLINE) == 0, second.log()
    assert sorted_output(job.output) == oracle(doc)
    assert job.summary("master-b")["masterRestarts"] == 1
