"""SIGTERM to a master or worker running as PID 1, as in a container: it stops within
seconds, leaves no unfinished file, and the job still ends equal to the oracle.

The kernel delivers to PID 1 of a PID namespace only the signals it has a handler for,
whoever sends them: without the roles' SIGTERM handler these tests fail at their exit
deadline, as a pod deletion waits out its grace period. Each role under test runs as
PID 1 of its own namespace (``unshare``, as root), the rest of the job as plain
processes; each test waits for the state that makes the signal meaningful (a reduce
attempt writing its part file, a master with journaled progress) before sending it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubemr.contract import EXIT_TERMINATED
from roles import Job, Role, journal_records, poll

from testjobs import APPS, manifest, sorted_output, word_input

Oracle = Callable[[dict[str, Any]], list[str]]

EXIT_DEADLINE = 20.0
"""Seconds a role may take from SIGTERM to exit (a pod's default grace period is 30)."""
JOB_DEADLINE = 120.0
"""Seconds the rest of a job may take once the signalled role is gone."""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unshare --pid needs root")


def slow_job(tmp_path: Path, map_delay: str, reduce_delay: str) -> dict[str, Any]:
    """First-word count over 2 x 150 lines: 3 map tasks, 1 reduce task of 200 keys,
    each line and key slowed down; no speculation (a backup attempt would hide
    whether the master reran the abandoned attempt)."""
    return manifest(
        "terminated",
        {
            "module": f"{APPS / 'slow.py'}:Slow",
            "args": {"map_delay": map_delay, "reduce_delay": reduce_delay},
        },
        word_input(tmp_path, files=2, lines=150),
        tmp_path / "out",
        input={"splitSize": "4Ki"},
        reduceTasks=1,
        faultTolerance={"heartbeatTimeout": "60s", "speculative": False},
    )


def stop_as_pid1(role: Role) -> tuple[int, float]:
    """SIGTERM ``role`` (PID 1 of its namespace); its exit code and seconds to exit."""
    assert role.namespace_pid() == 1
    sent = role.terminate()
    code = role.wait(EXIT_DEADLINE)
    return code, time.monotonic() - sent


def unfinished(output: Path) -> list[str]:
    """Attempt files in the output's temporary area, and part files in place."""
    temporary = output / "_temporary"
    attempts = [p.name for p in temporary.iterdir() if p.name != "_master"]
    return attempts + [p.name for p in output.glob("part-*")]


def test_a_worker_told_to_stop_abandons_its_attempt_cleanly_and_leaves(
    tmp_path: Path, job_roles: Callable[[dict[str, Any]], Job], oracle: Oracle
) -> None:
    doc = slow_job(tmp_path, map_delay="0", reduce_delay="0.05")
    job = job_roles(doc)
    master = job.master("master")
    job.worker("mapper", "mapper-0")
    reducer = job.worker("reducer", "reducer-0", pid1=True)
    writing = job.output / "_temporary" / "r0.a1"
    poll("reducer-0 writes its part file", lambda: any(writing.glob("part-*")))

    code, seconds = stop_as_pid1(reducer)
    print(f"reducer: SIGTERM to exit {seconds:.2f}s")

    assert code == EXIT_TERMINATED, reducer.log()
    assert unfinished(job.output) == []
    poll("the master hears reducer-0 leave", lambda: "leaves (SIGTERM)" in master.log())
    job.worker("reducer", "reducer-1")
    assert master.wait(JOB_DEADLINE) == 0, master.log()
    assert sorted_output(job.output) == oracle(doc)
    attempts = job.summary("master")["attempts"]
    assert attempts.get("reduce_lost") == 1, attempts  # lost, not failed
    assert "reduce_failed" not in attempts, attempts


def test_a_master_told_to_stop_closes_its_journal_and_a_new_one_resumes(
    tmp_path: Path, job_roles: Callable[[dict[str, Any]], Job], oracle: Oracle
) -> None:
    doc = slow_job(tmp_path, map_delay="0.02", reduce_delay="0")
    job = job_roles(doc)
    master = job.master("master", pid1=True)
    job.worker("mapper", "mapper-0")
    job.worker("reducer", "reducer-0")
    poll(
        "the master journals a finished map",
        lambda: any(r.get("event") == "map_done" for r in journal_records(job.output)),
    )

    code, seconds = stop_as_pid1(master)
    print(f"master: SIGTERM to exit {seconds:.2f}s")

    assert code == EXIT_TERMINATED, master.log()
    journal = job.output / "_temporary" / "_master" / "journal.jsonl"
    assert journal.read_bytes().endswith(b"\n")  # whole records only
    assert not (job.output / "_SUCCESS").exists()
    assert list(job.output.glob("part-*")) == []
    successor = job.master("master-r1", port=job.ports["master"])  # where the workers call
    assert successor.wait(JOB_DEADLINE) == 0, successor.log()
    assert sorted_output(job.output) == oracle(doc)
    assert job.summary("master-r1")["masterRestarts"] == 1
