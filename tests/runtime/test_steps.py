"""Multi-step jobs (``spec.steps``): each step's output feeds the next with its types
kept, the distributed engine matches the sequential oracle, and no intermediate output
is left behind."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from pathlib import Path
from typing import Any

from kubemr import journal as journals
from kubemr import master, plan, spec, steps
from kubemr.config import MasterConfig
from kubemr.launcher import Launcher
from kubemr.outputdir import OutputDir
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.sequential import run_sequential
from roles import journal_records

from testjobs import (
    APPS,
    ROOT,
    Runner,
    manifest,
    run_cli,
    sorted_output,
    word_input,
    write_manifest,
)


def two_step_doc(tmp_path: Path, output: Path, second: str = "TopByLength", **args: str) -> dict:
    app = str(APPS / "twostep.py")
    second_app: dict[str, Any] = {"module": f"{app}:{second}", "args": args}
    return manifest(
        "twostep",
        {"module": f"{app}:CountWords"},
        word_input(tmp_path),
        output,
        input={"splitSize": "4Ki"},
        mapper={"replicas": 2},
        reducer={"replicas": 2},
        steps=[{"reduceTasks": 3}, {"app": second_app, "reduceTasks": 2}],
        faultTolerance={"heartbeatTimeout": "2s"},
    )


def test_two_steps_distributed_equal_sequential(tmp_path: Path, run_job: Runner) -> None:
    sequential = tmp_path / "seq"
    doc = two_step_doc(tmp_path, sequential)
    result = run_cli("run", str(write_manifest(tmp_path, doc)), "--sequential")
    assert result.returncode == 0, result.stderr
    expected = sorted_output(sequential)
    assert expected and all(json.loads(line.split("\t")[1])["top"] for line in expected)

    distributed = tmp_path / "dist"
    result = run_job(two_step_doc(tmp_path, distributed))
    assert result.returncode == 0, result.stderr
    assert sorted_output(distributed) == expected
    assert sorted(p.name for p in distributed.glob("part-*")) == ["part-00000", "part-00001"]
    assert not (distributed / "_temporary").exists()
    summary = json.loads((distributed / "_summary.json").read_text())
    assert [s["reduceTasks"] for s in summary["steps"]] == [3, 2]
    assert summary["counters"]["reduce_output_records"] == len(expected)


def test_a_master_killed_during_step_two_resumes_at_step_two(tmp_path: Path) -> None:
    """The master is killed once step 2 has a map output in its journal file (the status
    counts a map before its record is written, so the kill is decided from the file):
    the restarted master skips step 1 (committed), resumes step 2 from its journal, and
    the output is the sequential runner's. (Heartbeat timeout 10s: the window in which
    mappers claim their outputs from the new master, wide enough for a loaded machine.)"""
    doc = two_step_doc(tmp_path, tmp_path / "dist", "StallingTopByLength", map_delay="0.02")
    doc["spec"]["faultTolerance"]["heartbeatTimeout"] = "10s"  # mappers' window to claim
    job_plan = plan.plan_job(spec.parse_job(doc, "steps recovery test"), [ROOT])
    assert len(job_plan.steps) == 2
    killed: list[str] = []

    step_two = Path(steps.step_path(str(tmp_path / "dist"), 1))

    def strike(status: pb.JobStatus) -> None:
        master = launcher.master
        if killed or master is None or status.step != 2:
            return
        if any(r.get("event") == "map_done" for r in journal_records(step_two)):
            killed.append(master.name)
            master.signal(signal.SIGKILL)

    launcher = Launcher(job_plan, search=[ROOT], progress=strike, keep_workdir=True)
    try:
        result = launcher.run()
        restarted = (launcher.workdir / "logs" / "master-r1.log").read_text()
    finally:
        shutil.rmtree(launcher.workdir, ignore_errors=True)
    assert killed == ["master"]
    assert "step 1 of 2 was done before a master restart" in restarted
    assert "at step 2 of 2 (master restart 1)" in restarted
    step_two = result.summary["steps"][1]
    assert step_two["masterRestarts"] == 1 and step_two["recovered"]["maps"] >= 1

    oracle = {**doc, "spec": {**doc["spec"], "output": {"path": str(tmp_path / "seq")}}}
    run_sequential(plan.plan_job(spec.parse_job(oracle, "oracle"), [ROOT]), [ROOT])
    assert sorted_output(tmp_path / "dist") == sorted_output(tmp_path / "seq")


def test_a_master_restarted_mid_promotion_moves_the_rest_and_commits(tmp_path: Path) -> None:
    """Every step is done (each step directory holds _SUCCESS) and one part file was
    moved into the output when the master died: its successor runs no step, moves the
    other part and commits the job."""
    doc = two_step_doc(tmp_path, tmp_path / "dist")
    job_plan = plan.plan_job(spec.parse_job(doc, "promotion test"), [ROOT])
    final = OutputDir.of(job_plan.job.spec)
    assert not steps.begin(final, False, journals.fingerprint(job_plan))
    for step_job in job_plan.steps:  # each step's output, as its master left it
        run_sequential(plan.plan_job(step_job, [ROOT], check_output=False), [ROOT])
    last = OutputDir.of(job_plan.steps[-1].spec)
    moved = last.parts()[0]
    Path(moved).rename(tmp_path / "dist" / Path(moved).name)

    config = MasterConfig(port=0, search_path=(ROOT,), summary_file=tmp_path / "summary.json")
    assert asyncio.run(master.serve(job_plan, config)) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["outputs"] == ["part-00000", "part-00001"] and len(summary["steps"]) == 2
    assert (tmp_path / "dist" / "_SUCCESS").exists()
    assert not (tmp_path / "dist" / "_temporary").exists()

    oracle = {**doc, "spec": {**doc["spec"], "output": {"path": str(tmp_path / "seq")}}}
    run_sequential(plan.plan_job(spec.parse_job(oracle, "oracle"), [ROOT]), [ROOT])
    assert sorted_output(tmp_path / "dist") == sorted_output(tmp_path / "seq")
