"""A master that finds a journal in the output directory: it resumes the job if the
journal is this job's, and starts over if the manifest changed.

Both journals are written here as a master would have left them (on Kubernetes: the
whole job's pods died, the output volume survived), then the job runs with
``kubemr run``'s launcher in this process.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubemr import journal as journals
from kubemr import master, plan, spec
from kubemr.launcher import Launcher, LaunchError, LocalRun
from kubemr.outputdir import OutputDir
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.sequential import run_sequential

from testjobs import APPS, ROOT, manifest, sorted_output, word_input

Oracle = Callable[[dict[str, Any]], list[str]]


def job_doc(tmp_path: Path, reduce_tasks: int = 3) -> dict[str, Any]:
    return manifest(
        "resume",
        {"builtin": "wordcount"},
        word_input(tmp_path),
        tmp_path / "out",
        input={"splitSize": "4Ki"},
        reduceTasks=reduce_tasks,
        mapper={"replicas": 2},
        reducer={"replicas": 2},
        faultTolerance={"heartbeatTimeout": "1s"},
    )


def plan_of(doc: dict[str, Any]) -> plan.JobPlan:
    return plan.plan_job(spec.parse_job(doc, "recovery test"), [ROOT])


def run(doc: dict[str, Any]) -> tuple[LocalRun, str]:
    """Run the job; return its result and the (first) master's log."""
    launcher = Launcher(plan_of(doc), search=[ROOT], keep_workdir=True)
    try:
        result = launcher.run()
        return result, (launcher.workdir / "logs" / "master.log").read_text()
    finally:
        shutil.rmtree(launcher.workdir, ignore_errors=True)


def leave_journal(doc: dict[str, Any], committed: dict[int, str]) -> journals.Journal:
    """A journal as a master of ``doc`` leaves it: every map done on mapper-0 (at an
    address nothing listens on now) and the given part files committed."""
    job = plan_of(doc)
    output = OutputDir(job.job.spec.output.path)
    journal, _ = master.open_journal(output, job)
    for index in range(len(job.splits)):
        journal.append({"event": "assigned", "attempt": f"m{index}.a1"})
        journal.append(
            {
                "event": "map_done",
                "attempt": f"m{index}.a1",
                "worker": "mapper-0",
                "address": "127.0.0.1:1",
                "records": job.reduce_tasks,
                "bytes": job.reduce_tasks,
                "counters": {},
                "timings": {},
            }
        )
    for index, text in committed.items():
        attempt = f"r{index}.a1"
        journal.append({"event": "assigned", "attempt": attempt})
        journal.append(
            {
                "event": "committing",
                "index": index,
                "attempt": attempt,
                "counters": {},
                "timings": {},
            }
        )
        Path(output.final_path(index)).write_text(text)
        journal.append({"event": "committed", "index": index, "attempt": attempt})
    journal.close()
    return journal


def test_a_restarted_job_keeps_committed_output_and_reruns_unreachable_maps(
    tmp_path: Path, oracle: Oracle
) -> None:
    """The journal's reduce 1 is kept as it is; its map outputs were on a mapper whose
    name comes back at another address (a new pod, an empty disk): the maps run again."""
    doc = job_doc(tmp_path)
    expected = oracle(doc)
    reference = tmp_path / "reference"
    sequential = {**doc, "spec": {**doc["spec"], "output": {"path": str(reference)}}}
    run_sequential(plan_of(sequential), [ROOT])
    leave_journal(doc, {1: (reference / "part-00001").read_text()})
    kept = Path(doc["spec"]["output"]["path"]) / "part-00001"
    before = os.stat(kept)
    result, master_log = run(doc)
    assert "resuming job resume (master restart 1)" in master_log
    summary = result.summary
    assert summary["masterRestarts"] == 1
    assert summary["recovered"] == {"maps": 0, "reduces": 1}
    assert summary["attempts"]["map_lost"] == summary["mapTasks"]
    assert summary["attempts"]["reduce_succeeded"] == 2
    after = os.stat(kept)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted_output(Path(doc["spec"]["output"]["path"])) == expected


def test_a_stale_journal_of_a_changed_manifest_starts_the_job_over(
    tmp_path: Path, oracle: Oracle
) -> None:
    doc = job_doc(tmp_path)
    leave_journal(job_doc(tmp_path, reduce_tasks=2), {0: "stale\t999\n"})
    result, master_log = run(doc)
    assert "written for another job or manifest" in master_log
    assert "starting the job over" in master_log
    assert result.summary["masterRestarts"] == 0
    assert result.summary["recovered"] == {"maps": 0, "reduces": 0}
    assert sorted_output(Path(doc["spec"]["output"]["path"])) == oracle(doc)


def test_a_master_that_keeps_crashing_exhausts_its_restart_limit(tmp_path: Path) -> None:
    """Every master is killed as soon as it reports progress: with a limit of one restart,
    the second kill fails the job, and no output is left. (The reduce waits on a gate
    never opened, so no master can finish the job before its first report, however
    slowly the status is read.)"""
    doc = job_doc(tmp_path)
    gate = str(tmp_path / "never-opened")
    doc["spec"]["app"] = {"module": f"{APPS / 'gated.py'}:Gated", "args": {"gate": gate}}
    killed: list[str] = []

    def strike(status: pb.JobStatus) -> None:
        master = launcher.master
        if master is not None and master.name not in killed:
            killed.append(master.name)
            master.signal(signal.SIGKILL)

    launcher = Launcher(plan_of(doc), search=[ROOT], progress=strike, master_restart_limit=1)
    with pytest.raises(LaunchError, match=r"master-r1 exited with code -9 and the master restart"):
        launcher.run()
    assert killed == ["master", "master-r1"] and launcher.master_restarts == 1
    assert not list(Path(doc["spec"]["output"]["path"]).glob("*"))
